/**
 * A connection whose receivers keep failing with nothing received is built afresh, and its
 * triggers' receivers opened on the new client: the SDK can leave a connection unusable for
 * minutes after a broker that took connections and did not answer (service-bus-triggers.ts).
 */
import type { ServiceBusClient, ServiceBusReceiver } from '@azure/service-bus';
import type { RegisteredFunction } from '../../local/functions-host/core-module';
import { HostLog } from '../../local/functions-host/host-log';
import type { FunctionInvoker } from '../../local/functions-host/invoker';
import { RENEW_AFTER_MS, ServiceBusTriggers, serviceBusSettings, type ServiceBusConnections } from '../../local/functions-host/service-bus-triggers';

interface FakeReceiver {
  handlers: { processMessage(m: unknown): Promise<void>; processError(args: { error: Error }): Promise<void> };
  closed: boolean;
}

/**
 * A client whose receivers record their handlers. Receivers numbered below `stuckBelow` never get
 * their settlements answered (a stuck link); the others' are written to `settled`.
 */
function fakes(settled: string[] = [], stuckBelow = 0) {
  const receivers: FakeReceiver[] = [];
  let renewals = 0;
  const client = {
    createReceiver: () => {
      const fake = { closed: false } as FakeReceiver;
      const stuck = receivers.push(fake) - 1 < stuckBelow;
      const settle = (kind: string) => (m: { messageId: string }) => (stuck ? new Promise(() => undefined) : Promise.resolve(void settled.push(`${kind} ${m.messageId}`)));
      return {
        subscribe: (handlers: FakeReceiver['handlers']) => {
          fake.handlers = handlers;
          return { close: async () => void (fake.closed = true) };
        },
        close: async () => void (fake.closed = true),
        completeMessage: settle('complete'),
        abandonMessage: settle('abandon'),
      } as unknown as ServiceBusReceiver;
    },
  } as unknown as ServiceBusClient;
  const connections = { get: () => client, renew: () => void renewals++ } as unknown as ServiceBusConnections;
  return { receivers, connections, renewals: () => renewals };
}

const fn = {
  name: 'consumer',
  triggerName: 'message',
  trigger: { type: 'serviceBusTrigger', direction: 'in', queueName: 'work', connection: 'SB' },
  metadata: {},
  callback: async () => undefined,
} as unknown as RegisteredFunction;

/** Date.now as the host's renewal rule reads it; each test moves it. */
let now = 0;
beforeEach(() => {
  now = 1_000_000;
  jest.spyOn(Date, 'now').mockImplementation(() => now);
});
afterEach(() => jest.restoreAllMocks());

it('renews the connection after its receivers failed for the renewal time with nothing received, and ignores the old receiver after', async () => {
  const { receivers, connections, renewals } = fakes();
  const lines: string[] = [];
  const triggers = new ServiceBusTriggers([fn], {} as FunctionInvoker, connections, serviceBusSettings({ version: '2.0' }), new HostLog({}, (l) => lines.push(l)));
  triggers.start();
  expect(receivers).toHaveLength(1);
  const fail = (r: FakeReceiver) => r.handlers.processError({ error: new Error('Unable to open the amqp connection due to operation timeout') });

  await fail(receivers[0]!);
  now += RENEW_AFTER_MS - 1_000;
  await fail(receivers[0]!);
  expect(renewals()).toBe(0);
  now += 2_000;
  await fail(receivers[0]!);
  expect(renewals()).toBe(1);
  expect(receivers).toHaveLength(2);
  await new Promise((r) => setImmediate(r));
  expect(receivers[0]!.closed).toBe(true);
  expect(lines.some((l) => l.includes('connecting afresh'))).toBe(true);

  // The replaced receiver's late errors count for nothing; the new one's start a fresh count.
  now += RENEW_AFTER_MS * 2;
  await fail(receivers[0]!);
  await fail(receivers[1]!);
  expect(renewals()).toBe(1);
  now += RENEW_AFTER_MS + 1;
  await fail(receivers[1]!);
  expect(renewals()).toBe(2);
});

it('does not renew a connection whose receiver gets messages between its errors', async () => {
  const { receivers, connections, renewals } = fakes();
  const triggers = new ServiceBusTriggers([fn], {} as FunctionInvoker, connections, serviceBusSettings({ version: '2.0' }), new HostLog({}, () => undefined));
  triggers.start();
  const receiver = receivers[0]!;
  await receiver.handlers.processError({ error: new Error('link detached') });
  now += RENEW_AFTER_MS - 1_000;
  // A message received: the connection works. (Its processing fails here, which is no receiver error.)
  await receiver.handlers.processMessage({ messageId: 'm', body: 'x' }).catch(() => undefined);
  now += 2_000;
  await receiver.handlers.processError({ error: new Error('link detached') });
  expect(renewals()).toBe(0);
});

it("settles through the new receiver although a settlement on the replaced one is never answered", async () => {
  const settled: string[] = [];
  // The first receiver's connection is stuck: its settlements are never answered.
  const { receivers, connections } = fakes(settled, 1);
  let fail = false;
  const invoker = { invoke: async () => (fail ? Promise.reject(new Error('function failed')) : undefined) } as unknown as FunctionInvoker;
  const triggers = new ServiceBusTriggers([fn], invoker, connections, serviceBusSettings({ version: '2.0' }), new HostLog({}, () => undefined));
  triggers.start();
  const message = (id: string) => ({ messageId: id, body: 'x', lockedUntilUtc: undefined });
  // A message of the old receiver completes and hangs on its stuck link.
  void receivers[0]!.handlers.processMessage(message('old'));
  await new Promise((r) => setImmediate(r));
  // The receivers fail on; the connection is renewed.
  await receivers[0]!.handlers.processError({ error: new Error('operation timeout') });
  now += RENEW_AFTER_MS;
  await receivers[0]!.handlers.processError({ error: new Error('operation timeout') });
  expect(receivers).toHaveLength(2);
  // The new receiver's failed message is abandoned at once, not queued behind the old complete.
  fail = true;
  await receivers[1]!.handlers.processMessage(message('new'));
  expect(settled).toEqual(['abandon new']);
});
