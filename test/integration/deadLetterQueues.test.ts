/**
 * A consumer's dead-letter queue through the real @azure/service-bus SDK against the Service Bus
 * emulator: peeked page by page with what the sweep needs, and messages taken out by sequence number
 * while every other one stays, with the reason Service Bus gave it.
 */
import type { ServiceBusClient } from '@azure/service-bus';
import { startServiceBusEmulator, type RunningServiceBusEmulator } from '../../local/servicebus-emulator';
import { createServiceBusClient } from '../../src/azure/clients';
import { ServiceBusDeadLetterQueue } from '../../src/azure/deadLetterQueues';
import { deadLetterPath, MAX_DELIVERY_COUNT, ORDERS_TOPIC, SUBSCRIPTIONS, TARGET_PROPERTY, type ServiceName } from '../../src/topology';

let emulator: RunningServiceBusEmulator;
let client: ServiceBusClient;
const longAgo = new Date(0);

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ port: 0 });
  client = createServiceBusClient({ kind: 'connectionString', connectionString: emulator.connectionString });
});

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

/** Sends the messages to the topic and fails each on the service's subscription until Service Bus dead-letters it. */
async function deadLetterOn(service: ServiceName, messages: { messageId: string; body: unknown; applicationProperties?: Record<string, string> }[]): Promise<void> {
  const sender = client.createSender(ORDERS_TOPIC);
  // Targeted, as a republish is: only that service's subscription gets them.
  await sender.sendMessages(messages.map((m) => ({ ...m, applicationProperties: { ...m.applicationProperties, [TARGET_PROPERTY]: service } })));
  await sender.close();
  const receiver = client.createReceiver(ORDERS_TOPIC, SUBSCRIPTIONS[service]);
  for (let round = 0; round < MAX_DELIVERY_COUNT; round++) {
    let got = 0;
    while (got < messages.length) {
      const batch = await receiver.receiveMessages(messages.length - got, { maxWaitTimeInMs: 2_000 });
      if (batch.length === 0) throw new Error(`round ${round}: ${got} of ${messages.length} delivered`);
      for (const m of batch) await receiver.abandonMessage(m);
      got += batch.length;
    }
  }
  await receiver.close();
}

it('peeks with sequence, body, reason, delivery count and order id; takes out only what it is asked to', async () => {
  await deadLetterOn('billing', [
    { messageId: 'm-json', body: Buffer.from('{"type":"OrderCreated"}'), applicationProperties: { order_id: 'order-1', correlation_id: 'corr-1' } },
    { messageId: 'm-bytes', body: Buffer.from([0xff, 0x00, 0xfe]) },
    { messageId: 'm-text', body: Buffer.from('not json') },
  ]);
  const queue = new ServiceBusDeadLetterQueue('billing', (use) => use(client));

  const all = await queue.peek(0n, 10, { bodies: true });
  expect(all.map((m) => m.messageId)).toEqual(['m-json', 'm-bytes', 'm-text']);
  expect(all[0]).toMatchObject({
    body: '{"type":"OrderCreated"}',
    deadLetterReason: 'MaxDeliveryCountExceeded',
    deliveryCount: MAX_DELIVERY_COUNT,
    orderId: 'order-1',
    correlationId: 'corr-1',
  });
  // Bytes that are not text stay bytes.
  expect(all[1]!.body).toEqual(Buffer.from([0xff, 0x00, 0xfe]));
  const [first, second, third] = all.map((m) => m.sequence) as [bigint, bigint, bigint];
  expect(first < second && second < third).toBe(true);

  // Pages: from a sequence number on, and no more than asked; without bodies, the rest as it was.
  expect((await queue.peek(second, 10, { bodies: true })).map((m) => m.messageId)).toEqual(['m-bytes', 'm-text']);
  expect((await queue.peek(0n, 2, { bodies: true })).map((m) => m.messageId)).toEqual(['m-json', 'm-bytes']);
  const bare = await queue.peek(0n, 10, { bodies: false });
  expect(bare.map((m) => m.body)).toEqual([undefined, undefined, undefined]);
  expect(bare.map(({ body: _, ...rest }) => rest)).toEqual(all.map(({ body: _, ...rest }) => rest));

  // Taking out the second locks the first on the way and puts it back.
  expect(await queue.remove([{ sequence: second }], { maxLocks: 10, deferEnqueuedBefore: longAgo })).toEqual([second]);
  const left = await queue.peek(0n, 10, { bodies: false });
  expect(left.map((m) => m.messageId)).toEqual(['m-json', 'm-text']);
  expect(left.every((m) => m.deadLetterReason === 'MaxDeliveryCountExceeded')).toBe(true);

  // Within its locks only: the third lies behind the first.
  expect(await queue.remove([{ sequence: third }], { maxLocks: 1, deferEnqueuedBefore: longAgo })).toEqual([]);
  expect((await queue.peek(0n, 10, { bodies: false })).map((m) => m.messageId)).toEqual(['m-json', 'm-text']);

  // What is left is still there for anyone reading the queue.
  const receiver = client.createReceiver(deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS.billing), { receiveMode: 'receiveAndDelete' });
  const drained = await receiver.receiveMessages(10, { maxWaitTimeInMs: 2_000 });
  await receiver.close();
  expect(drained.map((m) => [m.messageId, m.deadLetterReason])).toEqual([
    ['m-json', 'MaxDeliveryCountExceeded'],
    ['m-text', 'MaxDeliveryCountExceeded'],
  ]);
});

it('defers the old messages it meets on the way, which stay (a peek shows them), and takes a deferred one by sequence number', async () => {
  await deadLetterOn('notification', [
    { messageId: 'old-1', body: Buffer.from('x') },
    { messageId: 'old-2', body: Buffer.from('y') },
    { messageId: 'finished', body: Buffer.from('z') },
  ]);
  const queue = new ServiceBusDeadLetterQueue('notification', (use) => use(client));
  const [one, two, three] = (await queue.peek(0n, 10, { bodies: false })).map((m) => m.sequence) as [bigint, bigint, bigint];
  // Everything enqueued before a minute from now counts as old here.
  const everything = new Date(Date.now() + 60_000);
  expect(await queue.remove([{ sequence: three }], { maxLocks: 10, deferEnqueuedBefore: everything })).toEqual([three]);
  const left = await queue.peek(0n, 10, { bodies: false });
  expect(left.map((m) => [m.messageId, m.deferred ?? false, m.deadLetterReason])).toEqual([
    ['old-1', true, 'MaxDeliveryCountExceeded'],
    ['old-2', true, 'MaxDeliveryCountExceeded'],
  ]);
  // Deferred, they are no longer in the way of a receive from the head.
  const receiver = client.createReceiver(deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS.notification));
  expect(await receiver.receiveMessages(5, { maxWaitTimeInMs: 500 })).toEqual([]);
  await receiver.close();
  expect(await queue.remove([{ sequence: one, deferred: true }], { maxLocks: 10, deferEnqueuedBefore: everything })).toEqual([one]);
  // One that is gone meanwhile is skipped.
  expect(await queue.remove([{ sequence: one, deferred: true }], { maxLocks: 10, deferEnqueuedBefore: everything })).toEqual([]);
  expect((await queue.peek(0n, 10, { bodies: false })).map((m) => m.sequence)).toEqual([two]);
});
