/**
 * A stuck service behind a backlog, through the real Functions host, the Service Bus emulator and
 * the Cosmos DB stand-in, with the durable engine on a virtual clock. Notification's consumer is
 * switched off, so the order's message waits in its subscription as it would behind a backlog:
 * the monitor must not send it again nor compensate the order while it waits there, and must send
 * it again once it is gone.
 */
import type { OrderDocument } from '../../src/domain/order';
import { ORDERS_TOPIC, SUBSCRIPTIONS } from '../../src/topology';
import { ordersContainer, startMonitorWorld, writeOrderWithMonitor, type MonitorWorld, type OrderView } from './monitorSystem';

jest.setTimeout(180_000);

let world: MonitorWorld;

beforeAll(async () => {
  world = await startMonitorWorld({ 'AzureWebJobs.notificationConsumer.Disabled': 'true' });
});

afterAll(async () => {
  await world?.stop();
});

const republished = (o: OrderView) => o.timeline.filter((e) => e.kind === 'republished');

it('waits while the order\'s message is still in the subscription, and republishes once it is gone', async () => {
  const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: 'WEBCAM-01', quantity: 1 }]);
  await deliver('inventory', 'billing', 'notification');
  await world.runUntil(id, (o) => o.status.inventory === 'done' && o.status.billing === 'done', { stepMs: 250 });

  // Past the stuck threshold (a minute) the monitor looks at the subscription and finds the message there.
  const { order: waiting, virtualMs } = await world.runUntil(id, (o) => o.monitor?.customStatus?.phase === 'behind-backlog', { stepMs: 5_000 });
  expect(virtualMs).toBeGreaterThanOrEqual(55_000);
  expect(waiting.monitor?.customStatus?.detail).toMatch(/^notification behind a backlog \(oldest message enqueued \d{4}-\d\d-\d\dT[\d:.]+Z\); next: (poll|notification backlog check)$/);
  expect(world.hostOutput()).toContain('"service-backlog-checked"');

  // Ten minutes on: checked again (after 1, 2, then 4 minutes) and still waiting; nothing sent, nothing undone.
  for (let minute = 0; minute < 10; minute++) {
    await world.advance(60_000);
    await world.request('POST', '/admin/durable/idle');
  }
  const later = await world.order(id);
  expect(later.state).toBe('processing');
  expect(later.status.notification).toBe('pending');
  expect(republished(later)).toEqual([]);
  expect(later.monitor?.customStatus?.phase).toBe('behind-backlog');
  expect(world.hostOutput().match(/"service-backlog-checked"/g)?.length).toBeGreaterThanOrEqual(4);

  // The message is lost (taken and never processed): the next check finds the subscription clear.
  const receiver = world.serviceBus.createReceiver(ORDERS_TOPIC, SUBSCRIPTIONS.notification, { receiveMode: 'receiveAndDelete' });
  const taken = await receiver.receiveMessages(10, { maxWaitTimeInMs: 2_000 });
  await receiver.close();
  expect(taken.map((m) => m.messageId)).toEqual([`${later.eventId}:notification:test`]);

  const { order, virtualMs: toRepublish } = await world.runUntil(id, (o) => republished(o).length > 0, { stepMs: 30_000 });
  expect(republished(order)).toEqual([expect.objectContaining({ service: 'notification', reason: expect.stringMatching(/^stuck \(attempt 1\): notification pending for \d+ s$/) })]);
  // At the next check (8 minutes after the fourth), not after the hour the wait may last.
  expect(toRepublish).toBeLessThanOrEqual(8 * 60_000);
  expect(order.state).toBe('processing');
});

it('sends an event the intake could not publish again at the stuck threshold, whatever waits in the subscription', async () => {
  // Another order's message waits in notification's subscription: a backlog, as an outage leaves one.
  const other = await writeOrderWithMonitor(world, [{ sku: 'WEBCAM-01', quantity: 1 }]);
  await other.deliver('notification');
  // This order's event never reached Service Bus: the intake noted it, and no consumer has received it.
  const { id } = await writeOrderWithMonitor(world, [{ sku: 'WEBCAM-01', quantity: 1 }]);
  const item = ordersContainer(world.cosmos).item(id, id);
  const { resource } = await item.read<OrderDocument>();
  await item.replace({
    ...resource!,
    published: false,
    timeline: [...resource!.timeline, { at: new Date().toISOString(), kind: 'publish-failed', reason: 'Service Bus did not take the event within 5000 ms' }],
  });

  const { order, virtualMs } = await world.runUntil(id, (o) => republished(o).some((e) => e.service === 'notification'), { stepMs: 5_000, maxVirtualMs: 5 * 60_000 });
  // At the stuck threshold, as the publish-failed note says, not once the backlog is gone (or after the hour).
  expect(virtualMs).toBeLessThanOrEqual(90_000);
  expect(republished(order).map((e) => e.service).sort()).toEqual(['billing', 'inventory', 'notification']);
  expect(order.state).toBe('processing');
});
