/**
 * Publishing through the real @azure/service-bus SDK to the Service Bus emulator serving
 * src/topology.ts: fan-out to the three subscriptions, contract properties, targeted republish.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { startServiceBusEmulator, type RunningServiceBusEmulator } from '../../local/servicebus-emulator';
import { createServiceBusClient } from '../../src/azure/clients';
import { ServiceBusEventPublisher } from '../../src/azure/orderEventPublisher';
import { newOrder } from '../../src/domain/orderState';
import { publishOrderCreated, republishToService } from '../../src/services/publishing';
import { ORDERS_TOPIC, SUBSCRIPTIONS } from '../../src/topology';
import { memoryDependencies, type MemoryDependencies } from '../unit/support/memoryStores';

let emulator: RunningServiceBusEmulator;
let client: ServiceBusClient;
let deps: MemoryDependencies;

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ port: 0 });
  client = createServiceBusClient({ kind: 'connectionString', connectionString: emulator.connectionString });
  const sender = client.createSender(ORDERS_TOPIC);
  deps = memoryDependencies();
  (deps as { publisher: unknown }).publisher = new ServiceBusEventPublisher(() => sender);
});

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

async function receiveAll(subscription: string, expected: number): Promise<ServiceBusReceivedMessage[]> {
  const receiver = client.createReceiver(ORDERS_TOPIC, subscription, { receiveMode: 'receiveAndDelete' });
  const got: ServiceBusReceivedMessage[] = [];
  const deadline = Date.now() + 5_000;
  while (got.length < expected && Date.now() < deadline) {
    got.push(...(await receiver.receiveMessages(expected - got.length, { maxWaitTimeInMs: 500 })));
  }
  // One more short wait shows that nothing else arrived.
  got.push(...(await receiver.receiveMessages(5, { maxWaitTimeInMs: 200 })));
  await receiver.close();
  return got;
}

const order = newOrder({
  id: '0000bbbb-0000-4000-8000-000000000001',
  eventId: 'event-0000bbbb-1',
  correlationId: 'corr-0000bbbb-1',
  customerId: 'c-1',
  items: [{ sku: 'MOUSE-01', quantity: 1, unitPrice: 24.5 }],
  total: 24.5,
  now: '2026-01-01T00:00:00.000Z',
});

it('publishes OrderCreated once to each of the three subscriptions with the contract properties', async () => {
  await deps.orders.create(order);
  await publishOrderCreated(order, deps);
  // The same publish again (an intake retry) has the same messageId: duplicate detection drops it.
  await publishOrderCreated(order, deps);
  for (const subscription of Object.values(SUBSCRIPTIONS)) {
    const messages = await receiveAll(subscription, 1);
    expect(messages).toHaveLength(1);
    const [m] = messages;
    expect(m!.messageId).toBe(order.eventId);
    expect(m!.contentType).toBe('application/cloudevents+json');
    expect(m!.applicationProperties).toMatchObject({ event_type: 'OrderCreated', order_id: order.id, correlation_id: order.correlationId });
    expect(m!.body).toMatchObject({ specversion: '1.0', id: order.eventId, type: 'OrderCreated', subject: order.id });
  }
  // Publishing writes nothing to the order: the first consumer's claim records `published`.
  expect((await deps.orders.get(order.id))!.published).toBe(false);
});

it('republishes to one service only, with a fresh messageId per attempt', async () => {
  await republishToService(order, 'billing', 1, 'billing dead-lettered', deps);
  await republishToService(order, 'billing', 2, 'billing dead-lettered', deps);
  const billing = await receiveAll(SUBSCRIPTIONS.billing, 2);
  expect(billing.map((m) => m.messageId)).toEqual([`${order.eventId}:billing:1`, `${order.eventId}:billing:2`]);
  expect(billing[0]!.applicationProperties).toMatchObject({ target: 'billing', original_event_id: order.eventId, correlation_id: order.correlationId });
  expect(await receiveAll(SUBSCRIPTIONS.inventory, 0)).toHaveLength(0);
  expect(await receiveAll(SUBSCRIPTIONS.notification, 0)).toHaveLength(0);
  expect((await deps.orders.get(order.id))!.timeline.filter((t) => t.kind === 'republished')).toHaveLength(2);
});

it('a burst of concurrent publishes goes out in batches: every event reaches every subscription once, repeats included', async () => {
  const burst = Array.from({ length: 40 }, (_, n) =>
    newOrder({
      id: `0000cccc-0000-4000-8000-${String(n).padStart(12, '0')}`,
      eventId: `event-0000cccc-${n}`,
      correlationId: `corr-0000cccc-${n}`,
      customerId: 'c-2',
      items: [{ sku: 'MOUSE-01', quantity: 1, unitPrice: 24.5 }],
      total: 24.5,
      now: '2026-01-01T00:00:00.000Z',
    }),
  );
  // Two retried intakes publish again in the same turn: same messageIds, dropped by duplicate detection.
  await Promise.all([...burst, burst[3]!, burst[17]!].map((o) => publishOrderCreated(o, deps)));
  for (const subscription of Object.values(SUBSCRIPTIONS)) {
    const messages = await receiveAll(subscription, burst.length);
    expect(messages.map((m) => m.messageId).sort()).toEqual(burst.map((o) => o.eventId).sort());
  }
});
