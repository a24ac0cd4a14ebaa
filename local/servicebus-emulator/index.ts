/**
 * Service Bus emulator for the real `@azure/service-bus` SDK: an in-memory AMQP 1.0 broker
 * serving the topology in src/topology.ts. Start it programmatically (tests) or via cli.ts.
 */
import { durationMs, serviceBusTopology, type ServiceBusTopology } from '../../src/topology';
import { AmqpServer } from './amqp-server';
import { Namespace } from './entities';

export interface ServiceBusEmulatorOptions {
  /** 0 = a free port; default 5672. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default: serviceBusTopology from src/topology.ts. */
  topology?: ServiceBusTopology;
  /**
   * ISO 8601 lock duration for every queue and subscription instead of the topology's (e.g. `PT10S`):
   * a run that kills its receivers gets their locked messages back sooner.
   */
  lockDuration?: string;
  /** Default RootManageSharedAccessKey. */
  keyName?: string;
  /** Default SAS_KEY_VALUE (matches local.settings.json). */
  key?: string;
  log?: (msg: string) => void;
}

export interface RunningServiceBusEmulator {
  port: number;
  /** `Endpoint=sb://127.0.0.1:<port>;SharedAccessKeyName=..;SharedAccessKey=..;UseDevelopmentEmulator=true` */
  connectionString: string;
  stop(): Promise<void>;
}

export const DEFAULT_PORT = 5672;
export const DEFAULT_KEY_NAME = 'RootManageSharedAccessKey';
export const DEFAULT_KEY = 'SAS_KEY_VALUE';
/** Lock expiry, TTL, scheduled-message and duplicate-window resolution. */
const CLOCK_INTERVAL_MS = 50;

export async function startServiceBusEmulator(opts: ServiceBusEmulatorOptions = {}): Promise<RunningServiceBusEmulator> {
  const host = opts.host ?? '127.0.0.1';
  const keyName = opts.keyName ?? DEFAULT_KEY_NAME;
  const key = opts.key ?? DEFAULT_KEY;
  const log = opts.log ?? (() => undefined);
  const topology = opts.topology ?? serviceBusTopology;
  const namespace = new Namespace(opts.lockDuration === undefined ? topology : withLockDuration(topology, opts.lockDuration));
  const server = new AmqpServer({ namespace, sas: { keyName, key }, log });
  const port = await server.listen(opts.port ?? DEFAULT_PORT, host);
  const clock = setInterval(() => {
    try {
      namespace.tick();
    } catch (err) {
      log(`clock error: ${err instanceof Error ? err.stack : String(err)}`);
    }
  }, CLOCK_INTERVAL_MS);
  clock.unref();
  let stopped: Promise<void> | undefined;
  return {
    port,
    connectionString: `Endpoint=sb://${host}:${port};SharedAccessKeyName=${keyName};SharedAccessKey=${key};UseDevelopmentEmulator=true`,
    stop() {
      stopped ??= (async () => {
        clearInterval(clock);
        await server.close();
      })();
      return stopped;
    },
  };
}

/** The topology with every queue's and subscription's lock lasting `lockDuration` (checked: 1 s to 5 min, as Service Bus allows). */
export function withLockDuration(topology: ServiceBusTopology, lockDuration: string): ServiceBusTopology {
  const ms = durationMs(lockDuration);
  if (!(ms >= 1_000 && ms <= 300_000)) throw new Error(`a lock duration must be from 1 second to 5 minutes, not ${lockDuration}`);
  return {
    topics: topology.topics.map((t) => ({ ...t, subscriptions: t.subscriptions.map((sub) => ({ ...sub, lockDuration })) })),
    queues: topology.queues.map((q) => ({ ...q, lockDuration })),
  };
}
