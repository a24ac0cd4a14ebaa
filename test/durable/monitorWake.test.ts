/**
 * The order monitor's wait, on the engine with the real durable-functions SDK: an `OrderChanged`
 * raised while the monitor is busy acting must wake its next wait. The SDK's Task.any does not
 * complete for a task that finished before the Task.any was built, so a monitor that only yields
 * Task.any([timer, event]) would sleep through such an event until its poll timer.
 * Activities are stand-ins: the test decides what the monitor reads and when the read returns.
 */
import * as df from 'durable-functions';
import { startTestHub, type TestHub } from './harness';
import '../../orchestrators/orderMonitor';
import { ACTIVITY, ORDER_CHANGED_EVENT, ORDER_MONITOR, type OrderMonitorInput } from '../../orchestrators/names';
import { DEFAULT_MONITOR_POLICY, monitorSnapshotOf, type MonitorSnapshot } from '../../src/domain/monitorPolicy';
import { orderDocument } from '../unit/support/orderDocument';

/** The order as the monitor reads it: every service still pending. */
const processing = (id: string): MonitorSnapshot => monitorSnapshotOf(orderDocument({ id, state: 'processing' }));

let readEntered: () => void = () => undefined;
let releaseRead: (() => void) | undefined;
const reads: string[] = [];
df.app.activity(ACTIVITY.readMonitorSnapshot, {
  handler: async (input: { orderId: string }) => {
    reads.push(input.orderId);
    readEntered();
    await new Promise<void>((resolve) => (releaseRead = resolve));
    return processing(input.orderId);
  },
});
df.app.activity(ACTIVITY.markOrderCompleted, { handler: () => ({ completed: false }) });

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(() => hub.stop());

async function waitForHistory(id: string, eventType: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = await hub.client.getStatus(id, { showHistory: true });
    const history = (status.history ?? []) as Array<{ EventType: string }>;
    if (history.some((e) => e.EventType === eventType)) return;
    if (Date.now() > deadline) throw new Error(`no ${eventType} in the history of ${id}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('an event raised while the monitor reads the order wakes the wait that follows, not the poll after it', async () => {
  const id = 'order-busy-1';
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-1', policy: DEFAULT_MONITOR_POLICY, snapshot: processing(id) };
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
  expect(reads).toEqual([id]);
  expect(status.customStatus).toMatchObject({ phase: 'done', orderState: 'completed' });
});
