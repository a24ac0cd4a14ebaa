/** The durable client input binding, shared by every trigger that talks to the order monitor. */
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { DurableMonitorClient } from '../azure/durableMonitorClient';
import type { Logger } from '../log';
import type { MonitorClient } from '../services/ports';

export const durableClientInput = df.input.durableClient();

export function monitorClientFor(context: InvocationContext, log?: Logger): MonitorClient {
  return new DurableMonitorClient(durableClient(context), log);
}

const CLIENTS_MAX = 8;
const clients = new Map<string, df.DurableClient>();

/**
 * One durable client per distinct binding data (the same for every invocation of a function app):
 * building one (an HTTP client, URL checks of every management link) costs more than most calls
 * made with it. The client keeps no per-invocation state.
 */
function durableClient(context: InvocationContext): df.DurableClient {
  const data: unknown = context.extraInputs.get(durableClientInput);
  if (data === undefined || data === null) return df.getClient(context); // its error names the missing binding
  const key = `${process.env['WEBSITE_HOSTNAME'] ?? ''} ${typeof data === 'string' ? data : JSON.stringify(data)}`;
  let client = clients.get(key);
  if (!client) {
    client = df.getClient(context);
    if (clients.size >= CLIENTS_MAX) clients.clear();
    clients.set(key, client);
  }
  return client;
}
