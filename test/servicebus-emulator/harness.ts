/**
 * Starts the emulator in-process on a free port with a test topology (short locks, small delivery
 * counts), and hands out real @azure/service-bus clients that are closed after each suite.
 */
import { createHmac } from 'crypto';
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver } from '@azure/service-bus';
import rhea, { type Connection, type Sender } from 'rhea';
import { startServiceBusEmulator, type RunningServiceBusEmulator } from '../../local/servicebus-emulator';
import type { ServiceBusTopology, SubscriptionTopology } from '../../src/topology';

export const LOCK_MS = 1000;

function sub(name: string, rules: SubscriptionTopology['rules'], extra: Partial<SubscriptionTopology> = {}): SubscriptionTopology {
  return {
    name,
    maxDeliveryCount: 3,
    lockDuration: 'PT1S',
    defaultMessageTimeToLive: 'P14D',
    deadLetteringOnMessageExpiration: true,
    rules,
    ...extra,
  };
}

const serviceRule = (s: string) => [{ name: `to-${s}`, sqlFilter: `target IS NULL OR target = '${s}'` }];

export const testTopology: ServiceBusTopology = {
  topics: [
    {
      name: 'orders',
      requiresDuplicateDetection: true,
      duplicateDetectionHistoryTimeWindow: 'PT10M',
      defaultMessageTimeToLive: 'P14D',
      subscriptions: [
        sub('inventory-sub', serviceRule('inventory')),
        sub('billing-sub', serviceRule('billing')),
        sub('notification-sub', serviceRule('notification')),
      ],
    },
    {
      name: 'events',
      requiresDuplicateDetection: false,
      duplicateDetectionHistoryTimeWindow: 'PT10M',
      defaultMessageTimeToLive: 'P14D',
      subscriptions: [
        sub('all', []),
        sub('correlated', [{ name: 'c', correlationFilter: { correlationId: 'corr-1', label: 'created', properties: { region: 'eu' } } }]),
        sub('sql', [{ name: 's', sqlFilter: "sys.Label = 'created' AND (priority > 5 OR region IN ('us', 'ca')) AND NOT EXISTS(ignore)" }]),
        sub('by-id', [{ name: 'id', sqlFilter: "sys.MessageId LIKE 'vip-%'" }]),
        sub('short-ttl', [], { defaultMessageTimeToLive: 'PT0.3S', deadLetteringOnMessageExpiration: true }),
        sub('short-ttl-drop', [], { defaultMessageTimeToLive: 'PT0.3S', deadLetteringOnMessageExpiration: false }),
      ],
    },
  ],
  queues: [
    {
      name: 'work',
      maxDeliveryCount: 5,
      lockDuration: 'PT1S',
      defaultMessageTimeToLive: 'P14D',
      deadLetteringOnMessageExpiration: false,
      requiresDuplicateDetection: false,
      duplicateDetectionHistoryTimeWindow: 'PT10M',
    },
  ],
};

export interface Harness {
  emulator: RunningServiceBusEmulator;
  client: ServiceBusClient;
  newClient(connectionString?: string): ServiceBusClient;
  close(): Promise<void>;
}

/** An emulator on a free port serving `topology` (default: the test topology above). */
export async function startHarness(topology: ServiceBusTopology = testTopology): Promise<Harness> {
  const emulator = await startServiceBusEmulator({ port: 0, topology });
  const clients: ServiceBusClient[] = [];
  const newClient = (cs = emulator.connectionString) => {
    const c = new ServiceBusClient(cs, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } });
    clients.push(c);
    return c;
  };
  const client = newClient();
  return {
    emulator,
    client,
    newClient,
    async close() {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      await emulator.stop();
    },
  };
}

/** Receives exactly `n` messages (fails after `timeoutMs`). */
export async function receiveN(receiver: ServiceBusReceiver, n: number, timeoutMs = 5000): Promise<ServiceBusReceivedMessage[]> {
  const out: ServiceBusReceivedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n && Date.now() < deadline) {
    const got = await receiver.receiveMessages(n - out.length, { maxWaitTimeInMs: Math.max(50, deadline - Date.now()) });
    out.push(...got);
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let counter = 0;
/** A message id unique across the run (duplicate detection is on for `orders`). */
export const uniqueId = (prefix = 'm') => `${prefix}-${process.pid}-${Date.now()}-${++counter}`;

/** A Service Bus SAS token for `uri`, as the SDK builds one from a connection string. */
export function sasToken(uri: string, keyName: string, key: string, expirySeconds: number): string {
  const sr = encodeURIComponent(uri);
  const sig = createHmac('sha256', key).update(`${sr}\n${expirySeconds}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expirySeconds}&skn=${keyName}`;
}

/**
 * A raw AMQP sender to `entity`, authorized with a SAS token: it can send what the SDK refuses to
 * (malformed or too-large messages), and several transfers in one turn.
 */
export async function rawSender(h: Harness, entity: string): Promise<{ conn: Connection; sender: Sender }> {
  const conn = rhea.create_container().connect({ port: h.emulator.port, host: '127.0.0.1', reconnect: false });
  const token = sasToken(`sb://127.0.0.1:${h.emulator.port}/${entity}`, 'RootManageSharedAccessKey', 'SAS_KEY_VALUE', Math.floor(Date.now() / 1000) + 600);
  const cbs = conn.open_sender('$cbs');
  conn.open_receiver({ source: { address: '$cbs' }, target: { address: 'cbs-reply' }, name: 'cbs-reply' });
  await new Promise<void>((resolve) => cbs.once('sendable', () => resolve()));
  const reply = new Promise<number>((resolve) => conn.once('message', (ctx) => resolve(Number(ctx.message?.application_properties?.['status-code']))));
  cbs.send({ message_id: 'r1', reply_to: 'cbs-reply', application_properties: { operation: 'put-token', name: `sb://x/${entity}`, type: 'servicebus.windows.net:sastoken' }, body: token });
  const status = await reply;
  if (status !== 202) throw new Error(`put-token answered ${status}`);
  const sender = conn.open_sender(entity);
  await new Promise<void>((resolve) => sender.once('sendable', () => resolve()));
  return { conn, sender };
}
