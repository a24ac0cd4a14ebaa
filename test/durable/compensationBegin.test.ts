/**
 * The order monitor beginning a compensation run when Cosmos DB fails the begin after its write
 * landed, on the engine with the real SDK, the real begin (`beginCompensationRun`) over an
 * in-memory order store, and a stand-in compensation. Every retry of the begin fails, so the monitor
 * looks again a poll later and finds the order `compensating`: the run it began must be the run it
 * carries out, not a second one that takes another of the order's runs and shows a run that never ran.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext } from 'durable-functions';
import { startTestHub, type TestHub } from './harness';
import '../../orchestrators/orderMonitor';
import { ACTIVITY, COMPENSATE_ORDER, ORDER_MONITOR, compensationInstanceId, type OrderMonitorInput } from '../../orchestrators/names';
import { DEFAULT_MONITOR_POLICY, monitorSnapshotOf, TIMELINE } from '../../src/domain/monitorPolicy';
import type { OrderDocument } from '../../src/domain/order';
import { createLogger } from '../../src/log';
import { beginCompensationRun, type RunStart } from '../../src/services/compensationOutcome';
import type { MonitorClient } from '../../src/services/ports';
import { DurableMonitorClient } from '../../src/azure/durableMonitorClient';
import { sweepMonitors } from '../../src/support/monitorSweep';
import { orderDocument } from '../unit/support/orderDocument';
import { memoryDependencies } from '../unit/support/memoryStores';

const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });
const deps = memoryDependencies();
const store = deps.orders;

/** Begins each order has seen, with the step each named. */
const begins = new Map<string, (string | undefined)[]>();
/** Begins of an order that fail: the first writes and then fails, the others fail to read. */
const failingBegins = new Map<string, number>();

const read = store.get.bind(store);
const transition = store.transitionState.bind(store);
let outage: string | undefined;
store.get = async (id, options) => {
  if (outage === id) throw new Error('503 service unavailable');
  return read(id, options);
};
store.transitionState = async (id, change) => {
  const written = await transition(id, change);
  if (outage === id) throw new Error('408 request timeout: the write landed, its answer was lost');
  return written;
};

df.app.activity(ACTIVITY.readMonitorSnapshot, {
  handler: async (input: { orderId: string }) => monitorSnapshotOf((await read(input.orderId))!),
});
df.app.activity(ACTIVITY.beginCompensation, {
  handler: async (input: { orderId: string } & RunStart) => {
    const seen = begins.get(input.orderId) ?? [];
    begins.set(input.orderId, [...seen, input.step]);
    const failing = failingBegins.get(input.orderId) ?? 0;
    if (failing > 0) failingBegins.set(input.orderId, failing - 1);
    // The outage starts with the first failing begin's write and lasts through its retries.
    if (failing > 0 && seen.length === 0) {
      const order = (await read(input.orderId))!;
      outage = input.orderId;
      return beginCompensationRun(order, input, deps, silent);
    }
    if (failing === 0 && outage === input.orderId) outage = undefined;
    return beginCompensationRun((await store.get(input.orderId))!, input, deps, silent);
  },
});

df.app.activity(ACTIVITY.markOrderAttention, {
  handler: async (input: { orderId: string; reason: string }) => {
    const moved = await transition(input.orderId, { from: ['compensating'], to: 'attention', timeline: { at: deps.now(), kind: TIMELINE.attention, reason: input.reason } });
    return { attention: moved !== undefined };
  },
});

/** Compensation runs carried out, by instance id. */
const runs: string[] = [];
df.app.activity('cancelOrderForTest', {
  handler: async (input: { orderId: string }) => {
    await transition(input.orderId, { from: ['compensating'], to: 'cancelled', timeline: { at: deps.now(), kind: TIMELINE.cancelled } });
  },
});
df.app.orchestration(COMPENSATE_ORDER, function* (context: OrchestrationContext) {
  if (!context.df.isReplaying) runs.push(context.df.instanceId);
  const input = context.df.getInput<{ orderId: string }>();
  // A run that fails before its first activity (and so before noting itself under way).
  if (input.orderId.endsWith('-run-fails')) throw new Error('the run failed before it began');
  yield context.df.callActivity('cancelOrderForTest', { orderId: input.orderId });
  return { outcome: 'cancelled', failures: [] };
});

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(() => hub.stop());

function seed(id: string): OrderDocument {
  const order = orderDocument({ id, state: 'processing', status: { inventory: 'done', billing: 'failed', notification: 'done' } });
  store.docs.set(id, structuredClone(order));
  return order;
}

const startedEntries = (id: string) => store.docs.get(id)!.timeline.filter((e) => e.kind === TIMELINE.compensationStarted);

it.each([
  ['in one execution', DEFAULT_MONITOR_POLICY.iterationsPerExecution],
  ['across continue-as-new', 1],
])('a begin whose write landed and whose every retry failed: the next look carries out that run, not a second (%s)', async (_how, iterationsPerExecution) => {
  const id = `order-begin-${iterationsPerExecution}`;
  seed(id);
  // The begin and its three retries (ACTION_RETRY: four attempts).
  failingBegins.set(id, 4);
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-1', policy: { ...DEFAULT_MONITOR_POLICY, iterationsPerExecution } };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  for (let i = 0; i < 10 && (await hub.status(id)).runtimeStatus === 'Running'; i++) await hub.advance(30_000);

  const status = await hub.status(id);
  expect(status.output).toEqual({ orderId: id, outcome: 'cancelled' });
  const steps = begins.get(id)!;
  expect(steps.length).toBeGreaterThan(4);
  // One step throughout: the four failed attempts and the look after them.
  expect(new Set(steps).size).toBe(1);
  expect(startedEntries(id)).toEqual([expect.objectContaining({ detail: 'run 1', step: steps[0] })]);
  expect(runs.filter((r) => r.startsWith(`${id}:`))).toEqual([compensationInstanceId(id, { run: 1, attempt: 1 })]);
});

it('a person asking to compensate after such a begin gets a step of their own', async () => {
  const id = 'order-begin-asked';
  seed(id);
  failingBegins.set(id, 4);
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-1', policy: DEFAULT_MONITOR_POLICY };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  // The begin's four attempts fail (the last at 15 s); a person asks before the monitor looks again.
  await hub.advance(16_000);
  expect(begins.get(id)).toHaveLength(4);
  await store.appendTimeline(id, { at: deps.now(), kind: TIMELINE.supportAction, detail: 'compensate', actor: 'bo@contoso.com' });
  for (let i = 0; i < 10 && (await hub.status(id)).runtimeStatus === 'Running'; i++) await hub.advance(30_000);

  expect((await hub.status(id)).output).toEqual({ orderId: id, outcome: 'cancelled' });
  const steps = begins.get(id)!;
  expect(new Set(steps.slice(0, 4)).size).toBe(1);
  expect(steps[4]).not.toBe(steps[0]);
  // The run the person asked for is run 1 of their request (the order's second), and the one carried out.
  expect(startedEntries(id).map((e) => e.detail)).toEqual(['run 1', 'run 2']);
  expect(runs.filter((r) => r.startsWith(`${id}:`))).toEqual([compensationInstanceId(id, { run: 1, attempt: 2 })]);
});

it.each([
  ['on an order still processing', 'processing'],
  ['again after attention', 'compensating'],
] as const)('a begin a person asked for whose write landed and whose every retry failed: the next look carries out that run, not a second (%s)', async (_how, state) => {
  const id = `order-begin-person-${state}`;
  const order = seed(id);
  const asked = { at: deps.now(), kind: TIMELINE.supportAction, detail: 'compensate', actor: 'ana@contoso.com' };
  if (state === 'compensating') {
    // Run 1 ended in attention; the person's request moved the order back to compensating.
    order.timeline.push(
      { at: deps.now(), kind: TIMELINE.compensationStarted, detail: 'run 1', actor: 'monitor', reason: 'billing failed', step: 'earlier' },
      { at: deps.now(), kind: TIMELINE.attention, actor: 'monitor', reason: 'compensation could not finish: refundPayment' },
    );
  }
  order.timeline.push(asked);
  store.docs.set(id, structuredClone({ ...order, state }));
  failingBegins.set(id, 4);
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-1', policy: DEFAULT_MONITOR_POLICY };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  for (let i = 0; i < 10 && (await hub.status(id)).runtimeStatus === 'Running'; i++) await hub.advance(30_000);

  expect((await hub.status(id)).output).toEqual({ orderId: id, outcome: 'cancelled' });
  const steps = begins.get(id)!;
  expect(steps.length).toBeGreaterThan(4);
  expect(new Set(steps).size).toBe(1);
  const attempt = state === 'compensating' ? 2 : 1;
  expect(startedEntries(id).filter((e) => e.step === steps[0])).toEqual([expect.objectContaining({ detail: `run ${attempt}`, actor: 'ana@contoso.com' })]);
  expect(startedEntries(id)).toHaveLength(attempt);
  expect(runs.filter((r) => r.startsWith(`${id}:`))).toEqual([compensationInstanceId(id, { run: 1, attempt })]);
});

it('the last run allowed, begun with every retry failing, is carried out rather than escalated as a run that never ran', async () => {
  const id = 'order-begin-last-run';
  seed(id);
  failingBegins.set(id, 4);
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-1', policy: { ...DEFAULT_MONITOR_POLICY, maxCompensationRuns: 1 } };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  for (let i = 0; i < 10 && (await hub.status(id)).runtimeStatus === 'Running'; i++) await hub.advance(30_000);

  expect((await hub.status(id)).output).toEqual({ orderId: id, outcome: 'cancelled' });
  expect(startedEntries(id)).toEqual([expect.objectContaining({ detail: 'run 1', step: begins.get(id)![0] })]);
  expect(runs.filter((r) => r.startsWith(`${id}:`))).toEqual([compensationInstanceId(id, { run: 1, attempt: 1 })]);
});

it('the last run allowed, begun with every retry failing by a monitor that then died: the monitor the sweeper starts carries that run out rather than escalating it', async () => {
  const id = 'order-begin-last-run-swept';
  seed(id);
  failingBegins.set(id, 4);
  const policy = { ...DEFAULT_MONITOR_POLICY, maxCompensationRuns: 1 };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input: { orderId: id, correlationId: 'c-1', policy } satisfies OrderMonitorInput });
  // The begin's four attempts fail (the last at 15 s); its write landed with the first.
  await hub.advance(16_000);
  expect(begins.get(id)).toHaveLength(4);
  expect(startedEntries(id)).toEqual([expect.objectContaining({ detail: 'run 1', step: begins.get(id)![0] })]);

  // The monitor dies before it looks again, and with it what it knew of that begin.
  await hub.client.terminate(id, 'operator');
  expect((await hub.status(id)).runtimeStatus).toBe('Terminated');
  const durable = new DurableMonitorClient(hub.client);
  const monitor: MonitorClient = {
    status: (orderId, run) => durable.status(orderId, run),
    notifyOrderChanged: (orderId, change) => durable.notifyOrderChanged(orderId, change),
    // As the app starts it, with this test's policy where the app's comes from its settings.
    start: async (orderId, start) => {
      await hub.client.startNew(ORDER_MONITOR, { instanceId: orderId, input: { ...start, policy } satisfies OrderMonitorInput });
      return 'started';
    },
  };
  const active = [{ id, correlationId: 'c-1', state: 'compensating' as const, createdAt: store.docs.get(id)!.createdAt }];
  const sweep = await sweepMonitors('', new Date(Date.parse(deps.now()) + 60_000), { batchSize: 10, graceMs: 0 }, {
    orders: { activeOrders: async () => active },
    monitor,
    log: silent,
  });
  expect(sweep.restarted).toEqual([{ orderId: id, previous: 'Terminated' }]);
  for (let i = 0; i < 10 && (await hub.status(id)).runtimeStatus === 'Running'; i++) await hub.advance(30_000);

  expect((await hub.status(id)).output).toEqual({ orderId: id, outcome: 'cancelled' });
  const order = store.docs.get(id)!;
  expect(order.timeline.filter((e) => e.kind === TIMELINE.attention)).toEqual([]);
  // The run begun and never carried out is resumed under the next number, and not counted again:
  // still the one run the policy allows, carried out once.
  expect(startedEntries(id)).toEqual([
    expect.objectContaining({ detail: 'run 1', step: begins.get(id)![0], notesUnderway: true }),
    expect.objectContaining({ detail: 'run 2, resuming run 1', resumes: 1, notesUnderway: true }),
  ]);
  expect(monitorSnapshotOf(order).compensationRuns).toBe(1);
  expect(runs.filter((r) => r.startsWith(`${id}:`))).toEqual([compensationInstanceId(id, { run: 1, attempt: 2 })]);
});

it('a run whose sub-orchestration failed before noting itself under way counts as tried for the monitor that started it: the runs stay bounded', async () => {
  const id = 'order-begin-run-fails';
  seed(id);
  const input: OrderMonitorInput = { orderId: id, correlationId: 'c-1', policy: { ...DEFAULT_MONITOR_POLICY, maxCompensationRuns: 2 } };
  await hub.client.startNew(ORDER_MONITOR, { instanceId: id, input });
  for (let i = 0; i < 10 && (await hub.status(id)).runtimeStatus === 'Running'; i++) await hub.advance(30_000);

  expect((await hub.status(id)).output).toEqual({ orderId: id, outcome: 'attention' });
  expect(startedEntries(id).map((e) => [e.detail, e.resumes])).toEqual([
    ['run 1', undefined],
    ['run 2', undefined],
  ]);
  expect(runs.filter((r) => r.startsWith(`${id}:`))).toEqual([1, 2].map((attempt) => compensationInstanceId(id, { run: attempt, attempt })));
});
