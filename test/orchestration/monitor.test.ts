/**
 * The order monitor on the durable engine with virtual time, through the real Functions host, the
 * Service Bus emulator and the Cosmos DB stand-in: dead-letter and requeue, compensation, stuck
 * consumers, a compensation that keeps failing, and a host killed mid-compensation.
 */
import { newOrder } from '../../src/domain/orderState';
import { buildOrderCreatedEvent, CLOUDEVENTS_CONTENT_TYPE, ORDER_CREATED, orderCreatedProperties } from '../../src/domain/orderCreatedEvent';
import { MAX_DELIVERY_COUNT, ORDERS_TOPIC, TARGET_PROPERTY, type ServiceName } from '../../src/topology';
import { ordersContainer, startMonitorWorld, type MonitorWorld, type OrderView } from './monitorSystem';

jest.setTimeout(180_000);

let world: MonitorWorld;

beforeAll(async () => {
  world = await startMonitorWorld();
});

afterAll(async () => {
  await world?.stop();
});

const terminal = (o: OrderView) => ['completed', 'cancelled', 'attention'].includes(o.state) && o.monitor?.runtimeStatus === 'Completed';
const kinds = (o: OrderView) => o.timeline.map((e) => e.kind);
const stock = async (sku: string) => (await world.request('GET', `/api/inventory/${sku}`)).body as { available: number; reserved: number };

async function placeOrder(body: unknown): Promise<string> {
  const res = await world.request('POST', '/api/orders', body);
  expect(res.status).toBe(202);
  return res.body.orderId as string;
}

/**
 * An order whose OrderCreated reached only some consumers (a lost message): written like the
 * intake writes it, its monitor started like the intake starts it, the event sent targeted.
 */
async function placeOrderReaching(targets: ServiceName[], items: { sku: string; quantity: number; unitPrice: number }[]): Promise<string> {
  const id = `order-${Math.random().toString(16).slice(2, 10)}`;
  const order = newOrder({
    id,
    eventId: `${id}-event`,
    correlationId: `${id}-corr`,
    customerId: 'monitor-test',
    items,
    total: Math.round(items.reduce((t, i) => t + i.quantity * i.unitPrice, 0) * 100) / 100,
    now: new Date().toISOString(),
  });
  await ordersContainer(world.cosmos).items.create({ ...order, published: true });
  const started = await world.request('POST', `/runtime/webhooks/durabletask/orchestrators/orderMonitor/${id}`, { orderId: id, correlationId: order.correlationId });
  expect(started.status).toBeLessThan(300);
  const sender = world.serviceBus.createSender(ORDERS_TOPIC);
  for (const target of targets) {
    await sender.sendMessages({
      messageId: `${order.eventId}:${target}:test`,
      body: buildOrderCreatedEvent(order),
      contentType: CLOUDEVENTS_CONTENT_TYPE,
      correlationId: order.correlationId,
      subject: ORDER_CREATED,
      applicationProperties: { ...orderCreatedProperties(order), [TARGET_PROPERTY]: target },
    });
  }
  await sender.close();
  return id;
}

describe('dead-lettered billing', () => {
  it(`billingFailures = maxDeliveryCount (${MAX_DELIVERY_COUNT}): dead-lettered, requeued after the backoff, completed`, async () => {
    const id = await placeOrder({ customerId: 'c-dl', items: [{ sku: 'MOUSE-01', quantity: 1 }], simulate: { billingFailures: MAX_DELIVERY_COUNT } });

    // The dead-letter handler records it and wakes the monitor, which then waits out the backoff.
    const deadLettered = await world.runUntil(
      id,
      (o) => o.status.billing === 'deadlettered' && o.monitor?.customStatus?.phase === 'awaiting-requeue',
      { stepMs: 250 },
    );
    expect(deadLettered.virtualMs).toBeLessThan(5_000);
    expect(deadLettered.order.timeline).toContainEqual(
      expect.objectContaining({ kind: 'deadlettered', service: 'billing', deliveryCount: MAX_DELIVERY_COUNT, reason: expect.stringContaining('MaxDeliveryCount') }),
    );
    expect(deadLettered.order.monitor?.customStatus).toMatchObject({ detail: 'requeue 1 of 3 after backoff', billingRequeues: 0 });

    const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 500 });
    expect(order.state).toBe('completed');
    expect(order.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
    expect(order.payment).toEqual({ charged: order.total, refunded: 0 });
    expect(order.notifications.map((n) => n.kind)).toEqual(['confirmation']);
    const requeues = order.timeline.filter((e) => e.kind === 'requeued');
    expect(requeues).toEqual([expect.objectContaining({ service: 'billing', actor: 'monitor', detail: 'attempt 1' })]);
    // Only billing got the requeue: inventory and notification saw one delivery each.
    expect(order.timeline.filter((e) => e.kind === 'delivery' && e.service !== 'billing')).toHaveLength(2);
    expect(order.timeline.filter((e) => e.kind === 'delivery' && e.service === 'billing')).toHaveLength(MAX_DELIVERY_COUNT + 1);
    expect(virtualMs).toBeGreaterThanOrEqual(4_000);
  });
});
