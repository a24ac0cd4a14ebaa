/**
 * Batching in the Service Bus publisher: publishes of one event-loop turn share a send, batches are
 * bounded, and a failed batch falls back to one send per message so each caller gets its own outcome.
 * (The real SDK against the emulator: test/integration/orderEventPublisher.test.ts.)
 */
import type { ServiceBusClient, ServiceBusMessage, ServiceBusSender } from '@azure/service-bus';
import { isServiceUnavailable, RenewingServiceBus } from '../../src/azure/clients';
import { MAX_BATCH_MESSAGES, ServiceBusEventPublisher } from '../../src/azure/orderEventPublisher';
import type { OutgoingMessage } from '../../src/services/ports';

type Sent = ServiceBusMessage | ServiceBusMessage[];

function fakeSender(fail: (sent: Sent) => boolean = () => false): { sender: ServiceBusSender; calls: Sent[] } {
  const calls: Sent[] = [];
  const sender = {
    async sendMessages(sent: Sent): Promise<void> {
      calls.push(sent);
      await new Promise((r) => setImmediate(r));
      if (fail(sent)) throw new Error(`refused ${Array.isArray(sent) ? `a batch of ${sent.length}` : sent.messageId}`);
    },
  } as unknown as ServiceBusSender;
  return { sender, calls };
}

function message(n: number): OutgoingMessage {
  return {
    messageId: `event-${n}`,
    body: { n },
    contentType: 'application/cloudevents+json',
    correlationId: `corr-${n}`,
    subject: 'OrderCreated',
    applicationProperties: { order_id: `order-${n}` },
  };
}

const ids = (sent: Sent): string[] => (Array.isArray(sent) ? sent : [sent]).map((m) => String(m.messageId));

it('sends the publishes of one turn as one batch, in order, with every field', async () => {
  const { sender, calls } = fakeSender();
  const publisher = new ServiceBusEventPublisher(() => sender);
  await Promise.all([1, 2, 3].map((n) => publisher.publish(message(n))));
  expect(calls).toHaveLength(1);
  expect(ids(calls[0]!)).toEqual(['event-1', 'event-2', 'event-3']);
  expect((calls[0] as ServiceBusMessage[])[1]).toEqual({
    messageId: 'event-2',
    body: { n: 2 },
    contentType: 'application/cloudevents+json',
    correlationId: 'corr-2',
    subject: 'OrderCreated',
    applicationProperties: { order_id: 'order-2' },
  });

  // A publish of a later turn is a send of its own, and a lone message is not wrapped in a batch.
  await publisher.publish(message(4));
  expect(calls).toHaveLength(2);
  expect(Array.isArray(calls[1])).toBe(false);
  expect(ids(calls[1]!)).toEqual(['event-4']);
});

it(`splits a larger burst into batches of at most ${MAX_BATCH_MESSAGES}`, async () => {
  const { sender, calls } = fakeSender();
  const publisher = new ServiceBusEventPublisher(() => sender);
  const total = MAX_BATCH_MESSAGES * 2 + 6;
  await Promise.all(Array.from({ length: total }, (_, n) => publisher.publish(message(n))));
  expect(calls.map((c) => ids(c).length)).toEqual([MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES, 6]);
  expect(calls.flatMap(ids)).toEqual(Array.from({ length: total }, (_, n) => `event-${n}`));
});

it('resends a failed batch one message at a time: only the message that fails again fails its caller', async () => {
  // Batches fail; alone, only event-2 does.
  const { sender, calls } = fakeSender((sent) => Array.isArray(sent) || sent.messageId === 'event-2');
  const publisher = new ServiceBusEventPublisher(() => sender);
  const outcomes = await Promise.allSettled([1, 2, 3].map((n) => publisher.publish(message(n))));
  expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect((outcomes[1] as PromiseRejectedResult).reason.message).toBe('refused event-2');
  expect(calls.map(ids)).toEqual([['event-1', 'event-2', 'event-3'], ['event-1'], ['event-2'], ['event-3']]);
});

it('does not send a batch again one by one when Service Bus itself was unavailable: every caller hears at once', async () => {
  // What the SDK throws once its retries are used up on timeouts.
  const timedOut = () => Object.assign(new Error('was not able to send the message'), { name: 'ServiceBusError', code: 'ServiceTimeout', retryable: true });
  const calls: Sent[] = [];
  const sender = {
    async sendMessages(sent: Sent): Promise<void> {
      calls.push(sent);
      throw new AggregateError([timedOut(), timedOut()]);
    },
  } as unknown as ServiceBusSender;
  const publisher = new ServiceBusEventPublisher(() => sender);
  const outcomes = await Promise.allSettled([1, 2, 3].map((n) => publisher.publish(message(n))));
  expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
  expect(calls.map(ids)).toEqual([['event-1', 'event-2', 'event-3']]);
});

it('tells a Service Bus outage from a refused message', () => {
  const retryable = { name: 'ServiceBusError', retryable: true };
  expect(isServiceUnavailable(new AggregateError([retryable, retryable]))).toBe(true);
  expect(isServiceUnavailable(retryable)).toBe(true);
  expect(isServiceUnavailable(new AggregateError([retryable, { name: 'ServiceBusError', code: 'MessageSizeExceeded', retryable: false }]))).toBe(false);
  // The SDK's own "too big for one batch", thrown before sending, says retryable as well.
  expect(isServiceUnavailable({ name: 'ServiceBusError', code: 'MessageSizeExceeded', retryable: true })).toBe(false);
  expect(isServiceUnavailable(new AggregateError([]))).toBe(false);
  expect(isServiceUnavailable(new Error('refused'))).toBe(false);
  expect(isServiceUnavailable(undefined)).toBe(false);
});

it('rejects every caller when there is no sender to send with', async () => {
  const publisher = new ServiceBusEventPublisher(() => {
    throw new Error('ServiceBusConnection is not set');
  });
  const outcomes = await Promise.allSettled([1, 2].map((n) => publisher.publish(message(n))));
  expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
});

describe('a Service Bus client that keeps failing', () => {
  function fakeClients() {
    const made: { closed: boolean; senders: number }[] = [];
    const create = () => {
      const client = { closed: false, senders: 0 };
      made.push(client);
      return {
        createSender: () => {
          client.senders++;
          return { close: async () => undefined } as unknown as ServiceBusSender;
        },
        close: async () => {
          client.closed = true;
        },
      } as unknown as ServiceBusClient;
    };
    return { made, create };
  }

  it('is built afresh once nothing has gone through for the renewal time, and not before', async () => {
    let now = 0;
    const { made, create } = fakeClients();
    const bus = new RenewingServiceBus(create, 60_000, () => now);
    const first = bus.ordersSender();
    expect(bus.ordersSender()).toBe(first);
    now = 50_000;
    bus.worked();
    now = 100_000;
    expect(bus.failed()).toBe(false); // 50 s since the last call that went through
    expect(made).toHaveLength(1);
    now = 110_000;
    expect(bus.failed()).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(made[0]!.closed).toBe(true);
    // The next call builds a new client and sender, and the clock starts again from it.
    expect(bus.ordersSender()).not.toBe(first);
    expect(made).toHaveLength(2);
    expect(made[1]!.senders).toBe(1);
    now = 150_000;
    expect(bus.failed()).toBe(false);
  });

  it('is told by the publisher of sends that went through and of sends Service Bus did not take', async () => {
    const told: string[] = [];
    const health = { worked: () => void told.push('worked'), failed: () => (told.push('failed'), false) };
    let unavailable = false;
    let refuse = false;
    const sender = {
      async sendMessages(): Promise<void> {
        if (unavailable) throw Object.assign(new Error('timed out'), { retryable: true });
        if (refuse) throw new Error('refused');
      },
    } as unknown as ServiceBusSender;
    const publisher = new ServiceBusEventPublisher(() => sender, health);
    await publisher.publish(message(1));
    unavailable = true;
    await expect(publisher.publish(message(2))).rejects.toThrow('timed out');
    unavailable = false;
    refuse = true;
    // A message refused for itself says nothing about the client.
    await expect(publisher.publish(message(3))).rejects.toThrow('refused');
    expect(told).toEqual(['worked', 'failed']);
  });
});
