/** The durable client input binding, shared by every trigger that talks to the order monitor. */
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { DurableMonitorClient } from '../azure/durableMonitorClient';
import type { Logger } from '../log';
import type { MonitorClient } from '../services/ports';

export const durableClientInput = df.input.durableClient();

export function monitorClientFor(context: InvocationContext, log?: Logger): MonitorClient {
  return new DurableMonitorClient(df.getClient(context), log);
}
