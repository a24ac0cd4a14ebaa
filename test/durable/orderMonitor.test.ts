/**
 * The order monitor on the engine, with the real durable-functions SDK and stand-in activities
 * (the test decides what the monitor reads and when a read returns).
 * - An `OrderChanged` raised while the monitor is busy acting must wake its next wait. The SDK's
 *   Task.any does not complete for a task that finished before the Task.any was built, so a
 *   monitor that only yields Task.any([timer, event]) would sleep through such an event.
 * - Its custom status stays under the extension's 16 KB whatever the reasons it shows.
 */
import * as df from 'durable-functions';
import { startTestHub, type TestHub } from './harness';
import '../../orchestrators/orderMonitor';
import { ACTIVITY, ORDER_CHANGED_EVENT, ORDER_MONITOR, type OrderMonitorInput } from '../../orchestrators/names';
import { DEFAULT_MONITOR_POLICY, monitorSnapshotOf, type MonitorSnapshot } from '../../src/domain/monitorPolicy';
import type { OrderDocument } from '../../src/domain/order';
import { orderDocument } from '../unit/support/orderDocument';

const snapshotOf = (id: string, over: Partial<OrderDocument> = {}): MonitorSnapshot => monitorSnapshotOf(orderDocument({ id, state: 'processing', ...over }));

/** What each order's monitor reads next (every service pending by default). */
const nextRead = new Map<string, MonitorSnapshot>();
/** Orders whose reads are held until the test releases them. */
const held = new Set<string>();
let readEntered: () => void = () => undefined;
let releaseRead: (() => void) | undefined;
const reads: string[] = [];
df.app.activity(ACTIVITY.readMonitorSnapshot, {
  handler: async (input: { orderId: string }) => {
    reads.push(input.orderId);
    if (held.has(input.orderId)) {
      readEntered();
      await new Promise<void>((resolve) => (releaseRead = resolve));
    }
    return nextRead.get(input.orderId) ?? snapshotOf(input.orderId);
  },
});
df.app.activity(ACTIVITY.markOrderCompleted, { handler: () => ({ completed: false }) });
// The order finished meanwhile: no compensation run.
df.app.activity(ACTIVITY.beginCompensation, { handler: () => null });

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(() => hub.stop());

async function waitForHistory(id: string, eventType: string, count = 1): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = await hub.client.getStatus(id, { showHistory: true });
    const history = (status.history ?? []) as Array<{ EventType: string }>;
    if (history.filter((e) => e.EventType === eventType).length >= count) return;
    if (Date.now() > deadline) throw new Error(`no ${eventType} in the history of ${id}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('an event raised while the monitor reads the order wakes the wait that follows, not the poll after it', async () => {
  const id = 'order-busy-1';
  held.add(id);
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-1', policy: DEFAULT_MONITOR_POLICY, snapshot: snapshotOf(id) };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  await hub.idle();
  expect((await hub.status(id)).customStatus).toMatchObject({ phase: 'watching' });

  // The poll timer fires: the monitor reads the order, and the read is held.
  const entered = new Promise<void>((resolve) => (readEntered = resolve));
  const advanced = hub.advance(DEFAULT_MONITOR_POLICY.pollMinMs);
  await entered;
  await hub.client.raiseEvent(id, ORDER_CHANGED_EVENT, { source: 'consumer', service: 'billing', status: 'done', state: 'completed' });
  await waitForHistory(id, 'EventRaised');
  // The read saw the order before the consumer's write: still processing.
  releaseRead?.();
  await advanced;

  const status = await hub.status(id);
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual({ orderId: id, outcome: 'completed' });
  expect(reads.filter((r) => r === id)).toEqual([id]);
  expect(status.customStatus).toMatchObject({ phase: 'done', orderState: 'completed' });
});

it('shows a failure reason of any length in its custom status cut short, where Azure would fail a status over 16 KB', async () => {
  const id = 'order-long-reason-1';
  const reason = `gateway answered: ${'<html>'.repeat(4000)}`;
  const failed = snapshotOf(id, { status: { inventory: 'failed', billing: 'pending', notification: 'pending' }, statusReason: { inventory: reason } });
  nextRead.set(id, snapshotOf(id, { state: 'completed', status: { inventory: 'done', billing: 'done', notification: 'done' } }));
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-2', policy: DEFAULT_MONITOR_POLICY, snapshot: failed };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  const status = await hub.status(id, { showHistory: true });
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual({ orderId: id, outcome: 'completed' });
  // It decided to compensate for the failure (and found the order finished), then read it completed.
  const ran = (status.history as Array<{ EventType: string; FunctionName?: string }>)
    .filter((e) => e.EventType === 'TaskCompleted')
    .map((e) => e.FunctionName);
  expect(ran).toEqual([ACTIVITY.beginCompensation, ACTIVITY.readMonitorSnapshot, ACTIVITY.markOrderCompleted]);
});

it('an event raised while the monitor reads the order, after a wait its poll timer won, still wakes the next wait', async () => {
  // Its event task stays open across a wait the timer wins and joins the next wait as well: an
  // event later raised while the monitor is busy must not end on that task, already taken.
  const id = 'order-busy-2';
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-3', policy: DEFAULT_MONITOR_POLICY, snapshot: snapshotOf(id) };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  await hub.idle();
  // The poll timer wins the first wait; the monitor reads the order and waits again.
  await hub.advance(DEFAULT_MONITOR_POLICY.pollMinMs);
  expect(reads.filter((r) => r === id)).toHaveLength(1);

  // A support request wakes that wait; the read that follows is held.
  held.add(id);
  const entered = new Promise<void>((resolve) => (readEntered = resolve));
  await hub.client.raiseEvent(id, ORDER_CHANGED_EVENT, { source: 'support', action: 'requeue', by: 'ana' });
  await entered;
  // While it reads, the consumer that records the last `done` completes the order.
  await hub.client.raiseEvent(id, ORDER_CHANGED_EVENT, { source: 'consumer', service: 'billing', status: 'done', state: 'completed' });
  await waitForHistory(id, 'EventRaised', 2);
  held.delete(id);
  releaseRead?.();

  // No time passes: the event wakes the wait that follows the read, not the next poll.
  const status = await hub.status(id);
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual({ orderId: id, outcome: 'completed' });
  expect(reads.filter((r) => r === id)).toHaveLength(2);
});
