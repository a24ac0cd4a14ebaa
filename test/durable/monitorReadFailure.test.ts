/**
 * The order monitor when its read of the order fails after the read's retries, on the engine with
 * the real SDK and a stand-in read. A read Cosmos DB did not serve (STORE_OUTAGE_MARK) is waited
 * out, however long; any other failure is a fault of the read itself (a bug, a document it cannot
 * take), which no poll cures: the monitor must not look again forever, hiding it.
 */
import * as df from 'durable-functions';
import { startTestHub, type TestHub } from './harness';
import '../../orchestrators/orderMonitor';
import { ACTIVITY, ORDER_MONITOR, STORE_OUTAGE_MARK, type OrderMonitorInput } from '../../orchestrators/names';
import { DEFAULT_MONITOR_POLICY, monitorSnapshotOf } from '../../src/domain/monitorPolicy';
import { orderDocument } from '../unit/support/orderDocument';

/** How each order's read fails, until the test clears it. */
const failWith = new Map<string, () => Error>();
const reads: string[] = [];
df.app.activity(ACTIVITY.readMonitorSnapshot, {
  handler: (input: { orderId: string }) => {
    reads.push(input.orderId);
    const fail = failWith.get(input.orderId);
    if (fail) throw fail();
    return monitorSnapshotOf(orderDocument({ id: input.orderId, state: 'completed', status: { inventory: 'done', billing: 'done', notification: 'done' } }));
  },
});
/** Orders whose completion fails every attempt, until the test clears it. */
const completionFails = new Set<string>();
df.app.activity(ACTIVITY.markOrderCompleted, {
  handler: (input: { orderId: string }) => {
    if (completionFails.has(input.orderId)) throw new Error('the order could not be marked completed');
    return { completed: false };
  },
});

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(() => hub.stop());

const start = (orderId: string) => {
  const input: OrderMonitorInput = { orderId, correlationId: 'c-1', policy: DEFAULT_MONITOR_POLICY };
  return hub.client.startNew(ORDER_MONITOR, { instanceId: orderId, input });
};

it('fails, where it can be seen, when the read keeps failing for a reason other than Cosmos DB not serving it', async () => {
  const id = 'order-read-bug-1';
  failWith.set(id, () => new TypeError("Cannot read properties of undefined (reading 'inventory')"));
  await start(id);
  // An hour of polls: every one fails the same way.
  for (let i = 0; i < 60; i++) await hub.advance(60_000);
  const status = await hub.status(id);
  expect(status.runtimeStatus).toBe('Failed');
  expect(JSON.stringify(status.output)).toContain("reading 'inventory'");
});

it('waits out a read Cosmos DB does not serve, for longer than that, and finishes once it reads the order', async () => {
  const id = 'order-read-outage-1';
  failWith.set(id, () => new Error(`${STORE_OUTAGE_MARK}: 429 request rate is large`));
  await start(id);
  for (let i = 0; i < 90; i++) await hub.advance(60_000);
  expect((await hub.status(id)).runtimeStatus).toBe('Running');
  failWith.delete(id);
  await hub.advance(120_000);
  const status = await hub.status(id);
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual({ orderId: id, outcome: 'completed' });
});

it('after an action fails its retries, looks again a poll interval later, not at once', async () => {
  const id = 'order-action-fails-1';
  completionFails.add(id);
  const readsOf = () => reads.filter((r) => r === id).length;
  await start(id);
  await hub.idle();
  expect(readsOf()).toBe(1);
  // markOrderCompleted is tried at 0, 1, 3 and 7 s and fails at 15 s, after the last backoff;
  // the next look is a poll (10 s) after that failure, at 25 s.
  await hub.advance(24_000);
  await hub.idle();
  expect(readsOf()).toBe(1);
  await hub.advance(2_000);
  await hub.idle();
  expect(readsOf()).toBe(2);
  completionFails.delete(id);
  await hub.advance(60_000);
  expect((await hub.status(id)).output).toEqual({ orderId: id, outcome: 'completed' });
});
