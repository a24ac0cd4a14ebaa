/** How a compensation run ends on the order, when its activity runs once more after a restart. */
import { compensationAskedSinceLastRun, latestRunNeverUnderway, monitorSnapshotOf, TIMELINE } from '../../src/domain/monitorPolicy';
import type { OrderDocument, TimelineEntry } from '../../src/domain/order';
import { newOrder } from '../../src/domain/orderState';
import { createLogger, ORDER_NEEDS_ATTENTION_EVENT } from '../../src/log';
import { beginCompensationRun, finishCompensationRun, markAttention, noteRunUnderway } from '../../src/services/compensationOutcome';
import { requestCompensation } from '../../src/support/actions';
import type { SupportPrincipal } from '../../src/support/principal';
import { memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });
const at = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
const started = (s: number, run: number): TimelineEntry => ({ at: at(s), kind: TIMELINE.compensationStarted, detail: `run ${run}`, actor: 'monitor' });
const asked = (s: number): TimelineEntry => ({ at: at(s), kind: TIMELINE.supportAction, detail: 'compensate', actor: 'bo@contoso.com' });
const attention = (s: number): TimelineEntry => ({ at: at(s), kind: TIMELINE.attention, reason: 'compensation could not finish: refundPayment', actor: 'monitor' });
const bo: SupportPrincipal = { name: 'bo@contoso.com', roles: ['support'], source: 'app-service-auth' };
const refundFailed = { outcome: 'attention' as const, failures: [{ name: 'refundPayment' as const, error: 'gateway down' }], reason: 'billing dead-lettered' };

function seed(deps: MemoryDependencies, state: OrderDocument['state'], timeline: TimelineEntry[]): OrderDocument {
  const order = {
    ...newOrder({ id: 'o-1', eventId: 'e-1', correlationId: 'c-1', customerId: 'cu-1', items: [{ sku: 'MOUSE-01', quantity: 1, unitPrice: 24.5 }], total: 24.5, now: at(0) }),
    state,
    timeline,
  };
  deps.orders.docs.set(order.id, structuredClone(order));
  return order;
}

describe('beginCompensationRun', () => {
  it('begins a run once per monitor step: run once more for the same step, it answers the run it began', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'processing', []);
    const start = { reason: 'billing dead-lettered after 3 requeues', step: 'step-a' };
    expect(await beginCompensationRun(order, start, deps, silent)).toEqual({ run: 1, attempt: 1 });
    // The host died before the engine heard the activity finish: it runs again, reading the order as it is now.
    const again = structuredClone(deps.orders.docs.get('o-1')!);
    expect(await beginCompensationRun(again, start, deps, silent)).toEqual({ run: 1, attempt: 1 });
    const stored = deps.orders.docs.get('o-1')!;
    expect(stored.state).toBe('compensating');
    expect(stored.timeline.filter((e) => e.kind === TIMELINE.compensationStarted)).toEqual([
      expect.objectContaining({ detail: 'run 1', step: 'step-a', actor: 'monitor' }),
    ]);

    // A later step of the monitor (the run did not finish) is a second run.
    expect(await beginCompensationRun(structuredClone(stored), { ...start, step: 'step-b' }, deps, silent)).toEqual({ run: 2, attempt: 2 });
    // A step from a history before steps were named: a run each time, as before.
    expect(await beginCompensationRun(structuredClone(deps.orders.docs.get('o-1')!), { reason: start.reason }, deps, silent)).toEqual({ run: 3, attempt: 3 });
  });

  it('two copies of one step at once begin one run: the copy whose write finds the order changed reads it again and answers that run', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'processing', []);
    const start = { reason: 'billing failed', step: 'step-a' };
    // Both copies read the order before either wrote.
    const answers = await Promise.all([beginCompensationRun(structuredClone(order), start, deps, silent), beginCompensationRun(structuredClone(order), start, deps, silent)]);
    expect(answers).toEqual([
      { run: 1, attempt: 1 },
      { run: 1, attempt: 1 },
    ]);
    expect(deps.orders.docs.get('o-1')!.timeline.filter((e) => e.kind === TIMELINE.compensationStarted)).toEqual([
      expect.objectContaining({ detail: 'run 1', step: 'step-a' }),
    ]);
  });

  it('counts the run from the order as it is when it writes: a run begun by another step since the read is not numbered again', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'processing', []);
    // Another step began run 1 after this copy read the order.
    expect(await beginCompensationRun(structuredClone(order), { reason: 'stuck', step: 'step-a' }, deps, silent)).toEqual({ run: 1, attempt: 1 });
    expect(await beginCompensationRun(order, { reason: 'stuck', step: 'step-b' }, deps, silent)).toEqual({ run: 2, attempt: 2 });
    expect(deps.orders.docs.get('o-1')!.timeline.map((e) => e.detail)).toEqual(['run 1', 'run 2']);
  });

  it('gives up, to be retried, when the order changes on every read', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'processing', []);
    const store = deps.orders;
    const read = store.get.bind(store);
    let reads = 0;
    // A delivery claim lands between every read and write.
    store.get = async (id: string) => {
      reads += 1;
      const seen = await read(id);
      await store.appendTimeline(id, { at: at(reads), kind: 'delivery', service: 'billing' });
      return seen;
    };
    await store.appendTimeline('o-1', { at: at(0), kind: 'delivery', service: 'billing' });
    await expect(beginCompensationRun(order, { reason: 'stuck', step: 'step-a' }, deps, silent)).rejects.toThrow('changed on each of 5 reads');
    expect(reads).toBe(4);
    expect(store.docs.get('o-1')!.timeline.filter((e) => e.kind === TIMELINE.compensationStarted)).toEqual([]);
  });

  it("does not answer a step's run that a person's request has superseded: the person's run begins", async () => {
    const deps = memoryDependencies();
    // Run 2 was bo's (step-b); its answer was lost, the monitor marked attention, and bo asked again.
    const order = seed(deps, 'compensating', [started(1, 1), attention(2), asked(3), { ...started(4, 2), step: 'step-b', actor: 'bo@contoso.com' }, attention(5), asked(6)]);
    expect(await beginCompensationRun(order, { reason: 'requested again by bo@contoso.com', requestedBy: 'bo@contoso.com', step: 'step-b' }, deps, silent)).toEqual({ run: 1, attempt: 3 });
    expect(deps.orders.docs.get('o-1')!.timeline.filter((e) => e.kind === TIMELINE.compensationStarted).map((e) => e.detail)).toEqual(['run 1', 'run 2', 'run 3']);
  });

  it('begins nothing on an order that finished meanwhile', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'completed', []);
    expect(await beginCompensationRun(order, { reason: 'stuck', step: 'step-a' }, deps, silent)).toBeNull();
    expect(deps.orders.docs.get('o-1')!.timeline).toEqual([]);
  });

  it('begins nothing on an order whose last service finished after the monitor read it: it is about to complete', async () => {
    const deps = memoryDependencies();
    // The monitor read billing still processing (stuck, say) and decided to compensate; billing's
    // `done` lands before the begin's write, and the consumer's completing patch has not yet.
    const order = seed(deps, 'processing', []);
    order.status = { inventory: 'done', billing: 'processing', notification: 'done' };
    deps.orders.docs.set(order.id, structuredClone(order));
    await deps.orders.transitionStatus(order.id, { service: 'billing', from: ['processing'], to: 'done', timeline: { at: at(1), kind: 'done', service: 'billing' } });
    expect(await beginCompensationRun(order, { reason: 'billing stuck', step: 'step-a' }, deps, silent)).toBeNull();
    const stored = deps.orders.docs.get('o-1')!;
    expect(stored.state).toBe('processing');
    expect(stored.timeline.map((e) => e.kind)).toEqual(['done']);
  });
});

describe('a run begun and never carried out', () => {
  const begun = (run: number): TimelineEntry => ({ ...started(run, run), step: `step-${run}`, notesUnderway: true });
  const runs = (deps: MemoryDependencies) => deps.orders.docs.get('o-1')!.timeline.filter((e) => e.kind === TIMELINE.compensationStarted);

  it('a begin notes that its run will say when it is under way, and the run says so once', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'processing', []);
    expect(await beginCompensationRun(order, { reason: 'billing failed', step: 'step-a' }, deps, silent)).toEqual({ run: 1, attempt: 1 });
    expect(runs(deps)).toEqual([expect.objectContaining({ detail: 'run 1', notesUnderway: true })]);
    expect(latestRunNeverUnderway(deps.orders.docs.get('o-1')!)).toBe(true);

    expect(await noteRunUnderway(structuredClone(deps.orders.docs.get('o-1')!), 1, deps)).toEqual({ noted: true });
    // Its first activity run once more after a restart notes nothing more.
    expect(await noteRunUnderway(structuredClone(deps.orders.docs.get('o-1')!), 1, deps)).toEqual({ noted: false });
    const stored = deps.orders.docs.get('o-1')!;
    expect(stored.timeline.filter((e) => e.kind === TIMELINE.compensationUnderway)).toEqual([expect.objectContaining({ detail: 'run 1', actor: 'monitor' })]);
    expect(latestRunNeverUnderway(stored)).toBe(false);
  });

  it('a run superseded meanwhile, or an order no longer compensating, is not noted', async () => {
    const deps = memoryDependencies();
    seed(deps, 'compensating', [begun(1), begun(2)]);
    expect(await noteRunUnderway(structuredClone(deps.orders.docs.get('o-1')!), 1, deps)).toEqual({ noted: false });
    seed(deps, 'cancelled', [begun(1)]);
    expect(await noteRunUnderway(structuredClone(deps.orders.docs.get('o-1')!), 1, deps)).toEqual({ noted: false });
    expect(deps.orders.docs.get('o-1')!.timeline.filter((e) => e.kind === TIMELINE.compensationUnderway)).toEqual([]);
  });

  it('resumed: carried out under the next number (a new sub-orchestration), and not counted as another run', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [begun(1)]);
    const start = { reason: 'billing failed', step: 'step-b', resume: true };
    expect(await beginCompensationRun(order, start, deps, silent)).toEqual({ run: 1, attempt: 2 });
    // Run once more for the same step: the same answer, nothing more written.
    expect(await beginCompensationRun(structuredClone(deps.orders.docs.get('o-1')!), start, deps, silent)).toEqual({ run: 1, attempt: 2 });
    expect(runs(deps)).toEqual([
      expect.objectContaining({ detail: 'run 1' }),
      expect.objectContaining({ detail: 'run 2, resuming run 1', resumes: 1, step: 'step-b', notesUnderway: true }),
    ]);
    expect(monitorSnapshotOf(deps.orders.docs.get('o-1')!).compensationRuns).toBe(1);
  });

  it('a resume that finds the run under way after all (it was taken up after the monitor read the order) begins a run, counted', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [begun(1), { at: at(2), kind: TIMELINE.compensationUnderway, detail: 'run 1', actor: 'monitor' }]);
    expect(await beginCompensationRun(order, { reason: 'billing failed', step: 'step-b', resume: true }, deps, silent)).toEqual({ run: 2, attempt: 2 });
    expect(runs(deps)[1]).not.toHaveProperty('resumes');
  });

  it('a run begun before runs noted themselves is not resumed: counted as it was', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1)]);
    expect(await beginCompensationRun(order, { reason: 'billing failed', step: 'step-b', resume: true }, deps, silent)).toEqual({ run: 2, attempt: 2 });
  });

  it('the earlier run, should it be running after all, is superseded by the resumed one: its outcome is not recorded', async () => {
    const deps = memoryDependencies();
    seed(deps, 'compensating', [begun(1), begun(2), { ...begun(3), resumes: 2 }]);
    expect(await finishCompensationRun(structuredClone(deps.orders.docs.get('o-1')!), { ...refundFailed, attempt: 2 }, deps, silent)).toEqual({ recorded: false, superseded: true });
    expect(deps.orders.docs.get('o-1')!.state).toBe('compensating');
  });
});

describe('finishCompensationRun', () => {
  it('records the run: attention with what kept failing, once', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1)]);
    expect(await finishCompensationRun(order, { ...refundFailed, attempt: 1 }, deps, silent)).toEqual({ recorded: true });
    const stored = deps.orders.docs.get('o-1')!;
    expect(stored.state).toBe('attention');
    expect(stored.timeline.filter((e) => e.kind === TIMELINE.compensationFailed)).toHaveLength(1);
  });

  it('run again after it recorded attention (the host died before the engine heard), records nothing more nor raises the alert again', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1)]);
    expect(await finishCompensationRun(order, { ...refundFailed, attempt: 1 }, deps, silent)).toEqual({ recorded: true });
    const alerts: string[] = [];
    const watched = createLogger({ info: () => undefined, warn: (line: unknown) => alerts.push(String(line)), error: () => undefined });
    // The activity runs once more, reading the order as it is now.
    const now = structuredClone(deps.orders.docs.get('o-1')!);
    expect(await finishCompensationRun(now, { ...refundFailed, attempt: 1 }, deps, watched)).toEqual({ recorded: false });
    const stored = deps.orders.docs.get('o-1')!;
    expect(stored.state).toBe('attention');
    expect(stored.timeline.map((e) => e.kind)).toEqual([TIMELINE.compensationStarted, TIMELINE.compensationFailed, TIMELINE.attention]);
    expect(alerts.filter((line) => line.includes(ORDER_NEEDS_ATTENTION_EVENT))).toEqual([]);
  });

  it('run again after a person asked to compensate anew, leaves the order to the next run', async () => {
    const deps = memoryDependencies();
    // Run 1 recorded attention; the host died before the engine heard; a person asked again.
    const order = seed(deps, 'compensating', [started(1, 1), attention(2), asked(3)]);
    expect(await finishCompensationRun(order, { ...refundFailed, attempt: 1 }, deps, silent)).toEqual({ recorded: false, superseded: true });
    expect(deps.orders.docs.get('o-1')!.state).toBe('compensating');
  });

  it("a copy that read the order before its twin recorded attention does not undo a person's request made since", async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1)]);
    // The engine ran the activity twice at once: both copies read the order before either wrote.
    const stale = structuredClone(order);
    expect(await finishCompensationRun(order, { ...refundFailed, attempt: 1 }, deps, silent)).toEqual({ recorded: true });
    // A person asks to compensate again: the request and `compensating` in one write.
    const answer = await requestCompensation('o-1', bo, { deps, monitor: new RecordingMonitor(), log: silent });
    expect(answer).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    expect(await finishCompensationRun(stale, { ...refundFailed, attempt: 1 }, deps, silent)).toEqual({ recorded: false, superseded: true });
    const stored = deps.orders.docs.get('o-1')!;
    expect(stored.state).toBe('compensating');
    expect(compensationAskedSinceLastRun(stored)).toEqual({ by: bo.name, at: expect.any(String) });
    expect(stored.timeline.filter((e) => e.kind === TIMELINE.compensationFailed)).toHaveLength(1);
  });

  it('an earlier run than the latest is superseded too', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1), started(2, 2)]);
    expect(await finishCompensationRun(order, { ...refundFailed, attempt: 1 }, deps, silent)).toEqual({ recorded: false, superseded: true });
    expect(await finishCompensationRun(order, { outcome: 'cancelled', failures: [], reason: 'billing dead-lettered', attempt: 2 }, deps, silent)).toEqual({ recorded: true });
    expect(deps.orders.docs.get('o-1')!.state).toBe('cancelled');
  });
});

describe('markAttention', () => {
  it("marks attention when compensation runs are used up", async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1), started(2, 2)]);
    expect(await markAttention(order, 'compensation runs used up', deps, silent)).toEqual({ attention: true });
    expect(deps.orders.docs.get('o-1')!.state).toBe('attention');
  });

  it('run again after a person asked to compensate anew, leaves the order to the next run', async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1), attention(2), asked(3)]);
    expect(await markAttention(order, 'compensation runs used up', deps, silent)).toEqual({ attention: false });
    expect(deps.orders.docs.get('o-1')!.state).toBe('compensating');
  });

  it("a copy that read the order before its twin recorded attention does not undo a person's request made since", async () => {
    const deps = memoryDependencies();
    const order = seed(deps, 'compensating', [started(1, 1), started(2, 2)]);
    const stale = structuredClone(order);
    expect(await markAttention(order, 'compensation runs used up', deps, silent)).toEqual({ attention: true });
    const answer = await requestCompensation('o-1', bo, { deps, monitor: new RecordingMonitor(), log: silent });
    expect(answer).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    expect(await markAttention(stale, 'compensation runs used up', deps, silent)).toEqual({ attention: false });
    const stored = deps.orders.docs.get('o-1')!;
    expect(stored.state).toBe('compensating');
    expect(stored.timeline.filter((e) => e.kind === TIMELINE.attention)).toHaveLength(1);
  });
});
