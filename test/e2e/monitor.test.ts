/**
 * End to end, in real time with the default monitor policy, through the local Functions host and
 * the emulators: a dead-lettered billing that a requeue fixes, and a billing that never succeeds.
 * Prints the figures: dead-letter -> requeue, dead-letter -> cancelled, monitor history length.
 */
import { ServiceBusClient } from '@azure/service-bus';
import type { OrderDocument, TimelineEntry } from '../../src/domain/order';
import { deadLetterPath, MAX_DELIVERY_COUNT, ORDERS_TOPIC, SUBSCRIPTIONS } from '../../src/topology';
import { startSystem, type RunningSystem } from './system';
import { peekFromHead } from './systemWithServiceBus';

jest.setTimeout(180_000);

type View = OrderDocument & { monitor: { runtimeStatus: string; customStatus: { phase?: string } | null } | null };

let system: RunningSystem;
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  system = await startSystem({ env: { SUPPORT_DEV_PRINCIPAL: 'support@localhost', MONITOR_SWEEP_SCHEDULE: '0 0 0 1 1 *' } });
});

afterAll(async () => {
  // eslint-disable-next-line no-console
  console.log(`order monitor figures (real time, default policy):\n${JSON.stringify(figures, null, 2)}`);
  await system?.stop();
});

const finished = (o: View) => ['completed', 'cancelled', 'attention'].includes(o.state) && o.monitor?.runtimeStatus === 'Completed';
const first = (o: View, kind: string): TimelineEntry | undefined => o.timeline.find((e) => e.kind === kind);
const ms = (from?: TimelineEntry, to?: TimelineEntry) => (from && to ? Date.parse(to.at) - Date.parse(from.at) : NaN);

async function historyLength(id: string): Promise<number> {
  const res = await system.request('GET', `/runtime/webhooks/durabletask/instances/${id}?showHistory=true`);
  return (res.body.historyEvents ?? []).length;
}

/** The messages of this order in billing's dead-letter queue (peeked: nothing is taken or locked). */
async function inBillingDeadLetters(orderId: string) {
  const serviceBus = new ServiceBusClient(system.serviceBusConnectionString);
  try {
    return (await peekFromHead(serviceBus, deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS.billing))).filter((m) => m.applicationProperties?.order_id === orderId);
  } finally {
    await serviceBus.close();
  }
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let value = await read(); ; value = await read()) {
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

it('a billing dead-lettered after maxDeliveryCount failures is requeued to billing only and the order completes', async () => {
  const res = await system.postOrder({ customerId: 'e2e-monitor', items: [{ sku: 'HEADSET-01', quantity: 1 }], simulate: { billingFailures: MAX_DELIVERY_COUNT } });
  expect(res.status).toBe(202);
  const id: string = res.body.orderId;
  // The message waits in billing's dead-letter queue, with Service Bus's reason, while the order is open.
  await system.waitForOrder<View>(id, (o) => o.status.billing === 'deadlettered', 30_000, 100);
  const waiting = await until('no message in the dead-letter queue', () => inBillingDeadLetters(id), (m) => m.length === 1, 5_000);
  expect(waiting[0]).toMatchObject({ deadLetterReason: 'MaxDeliveryCountExceeded', deliveryCount: MAX_DELIVERY_COUNT });
  const order = await system.waitForOrder<View>(id, finished, 30_000, 100);

  expect(order.state).toBe('completed');
  expect(order.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
  expect(order.payment).toEqual({ charged: order.total, refunded: 0 });
  expect(order.notifications.map((n) => n.kind)).toEqual(['confirmation']);
  const deadLetter = first(order, 'deadlettered');
  const requeue = first(order, 'requeued');
  expect(deadLetter).toMatchObject({ service: 'billing', deliveryCount: MAX_DELIVERY_COUNT });
  expect(requeue).toMatchObject({ service: 'billing', actor: 'monitor' });
  // The default backoff before the first requeue is 5 s.
  expect(ms(deadLetter, requeue)).toBeGreaterThanOrEqual(4_500);
  expect(order.monitor?.customStatus).toMatchObject({ phase: 'done' });

  figures['dead-letter -> requeue (ms)'] = ms(deadLetter, requeue);
  figures['dead-letter -> completed (ms)'] = ms(deadLetter, first(order, 'completed'));
  // Completed, the order is the whole story: the dead-letter sweep takes its message out.
  const gone = Date.now();
  await until('the completed order\'s message is still in the dead-letter queue', () => inBillingDeadLetters(id), (m) => m.length === 0, 15_000);
  figures['completed -> taken out of the dead-letter queue (ms, real)'] = Date.now() - gone;
  figures['monitor history events (completed after a requeue)'] = await historyLength(order.id);
});

it('a billing that never succeeds is requeued 3 times, then compensated: cancelled, stock back, net charge 0, one cancellation', async () => {
  const before = (await system.request('GET', '/api/inventory/WEBCAM-01')).body;
  expect((await system.request('POST', '/api/support/faults', { billingFails: true })).status).toBe(200);
  let order: View;
  try {
    const res = await system.postOrder({ customerId: 'e2e-monitor', items: [{ sku: 'WEBCAM-01', quantity: 2 }] });
    expect(res.status).toBe(202);
    order = await system.waitForOrder<View>(res.body.orderId, finished, 120_000, 250);
  } finally {
    expect((await system.request('POST', '/api/support/faults', { billingFails: false })).status).toBe(200);
  }

  expect(order.state).toBe('cancelled');
  expect(order.payment.charged - order.payment.refunded).toBe(0);
  expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
  expect(order.timeline.filter((e) => e.kind === 'requeued')).toHaveLength(3);
  expect(order.status).toEqual({ inventory: 'compensated', billing: 'compensated', notification: 'compensated' });
  const after = (await system.request('GET', '/api/inventory/WEBCAM-01')).body;
  expect(after).toEqual(before);

  const deadLetter = first(order, 'deadlettered');
  figures['dead-letter -> first requeue (ms)'] = ms(deadLetter, first(order, 'requeued'));
  figures['first dead-letter -> compensation started (ms)'] = ms(deadLetter, first(order, 'compensation-started'));
  figures['first dead-letter -> cancelled (ms)'] = ms(deadLetter, first(order, 'cancelled'));
  figures['monitor history events (cancelled)'] = await historyLength(order.id);
});
