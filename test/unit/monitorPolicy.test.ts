import {
  BACKLOG_RECHECK_MAX_MS,
  behindBacklog,
  compensationAskedSinceLastRun,
  noteBacklogCheck,
  TIMELINE,
  DEFAULT_MONITOR_POLICY,
  MonitorSettingsError,
  decideNextStep,
  monitorPolicyFromSettings,
  MAX_RUN_RESUMES,
  monitorSnapshotOf,
  observe,
  onMonitorClock,
  phaseOf,
  outageWaitMs,
  pollIntervalMs,
  requeueDelayMs,
  republishRecorded,
  requeueRecorded,
  turnSnapshot,
  UNTRIED_REQUEUES_FREE,
  type MonitorObservations,
  type MonitorPolicy,
  type MonitorSnapshot,
  type Step,
} from '../../src/domain/monitorPolicy';
import type { OrderDocument, OrderState, ServiceStatus, TimelineEntry } from '../../src/domain/order';
import { deadLetterMarker, isNotedDeadLetter, notedDeadLetterDetail, notedWhy, pendingRequeueRequest } from '../../src/domain/orderState';
import { orderDocument } from './support/orderDocument';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
const now = (seconds: number) => new Date(T0 + seconds * 1000);

function snapshot(over: Partial<MonitorSnapshot> = {}): MonitorSnapshot {
  return {
    orderId: 'o-1',
    state: 'processing',
    status: { inventory: 'pending', billing: 'pending', notification: 'pending' },
    statusReason: {},
    lastProgressAt: { inventory: at(0), billing: at(0), notification: at(0) },
    billingRequeues: 0,
    republishes: { inventory: 0, billing: 0, notification: 0 },
    compensationRuns: 0,
    quietPolls: 0,
    ...over,
  };
}

/**
 * The default policy with the backlog checks off, so the rules before them are seen on their own;
 * `describe('decideNextStep: backlog checks')` has them on.
 */
const policy = (over: Partial<MonitorPolicy> = {}): MonitorPolicy => ({ ...DEFAULT_MONITOR_POLICY, maxBacklogWaitMs: 0, ...over });

/** Situations an order can be in when the monitor looks at it (the "event" axis of the table). */
const situations: Record<string, { snap: Partial<MonitorSnapshot>; atSeconds: number }> = {
  'nothing happened yet': { snap: {}, atSeconds: 1 },
  'all three done': { snap: { status: { inventory: 'done', billing: 'done', notification: 'done' } }, atSeconds: 1 },
  'inventory out of stock': {
    snap: {
      status: { inventory: 'failed', billing: 'done', notification: 'done' },
      statusReason: { inventory: 'out of stock: sku-1' },
    },
    atSeconds: 1,
  },
  'billing declined': {
    snap: { status: { inventory: 'done', billing: 'failed', notification: 'done' }, statusReason: { billing: 'declined' } },
    atSeconds: 1,
  },
  'billing just dead-lettered': {
    snap: { status: { inventory: 'done', billing: 'deadlettered', notification: 'done' }, billingDeadLetteredAt: at(10) },
    atSeconds: 11,
  },
  'billing dead-lettered, backoff over': {
    snap: { status: { inventory: 'done', billing: 'deadlettered', notification: 'done' }, billingDeadLetteredAt: at(10) },
    atSeconds: 15,
  },
  'billing dead-lettered, requeues used up': {
    snap: {
      status: { inventory: 'done', billing: 'deadlettered', notification: 'done' },
      billingDeadLetteredAt: at(100),
      billingRequeues: 3,
    },
    atSeconds: 500,
  },
  'notification stuck': {
    snap: { status: { inventory: 'done', billing: 'done', notification: 'processing' } },
    atSeconds: 60,
  },
  'notification stuck, republishes used up': {
    snap: {
      status: { inventory: 'done', billing: 'done', notification: 'pending' },
      republishes: { inventory: 0, billing: 0, notification: 2 },
    },
    // The wait doubles with each republish: 60 s, 120 s, then 240 s before compensating.
    atSeconds: 240,
  },
  'inventory just dead-lettered': {
    snap: { status: { inventory: 'processing', billing: 'done', notification: 'done' }, deadLettered: ['inventory'] },
    atSeconds: 1,
  },
  'inventory dead-lettered, backoff over': {
    snap: { status: { inventory: 'processing', billing: 'done', notification: 'done' }, deadLettered: ['inventory'] },
    atSeconds: 5,
  },
  'notification dead-lettered again, republishes used up': {
    snap: {
      status: { inventory: 'done', billing: 'done', notification: 'pending' },
      deadLettered: ['notification'],
      republishes: { inventory: 0, billing: 0, notification: 2 },
    },
    atSeconds: 240,
  },
  'support asked to requeue a dead-lettered billing': {
    snap: {
      status: { inventory: 'done', billing: 'deadlettered', notification: 'done' },
      billingDeadLetteredAt: at(10),
      requeueRequestedBy: 'ana@contoso',
    },
    atSeconds: 11,
  },
  'support asked to compensate': {
    snap: { status: { inventory: 'done', billing: 'processing', notification: 'done' }, compensationRequestedBy: 'ana@contoso' },
    atSeconds: 1,
  },
};

/** Expected step kind per situation while the order is active (accepted or processing). */
const activeExpectations: Record<string, Partial<Step>> = {
  'nothing happened yet': { kind: 'wait' },
  'all three done': { kind: 'markCompleted' },
  'inventory out of stock': { kind: 'compensate', reason: 'inventory failed: out of stock: sku-1' },
  'billing declined': { kind: 'compensate', reason: 'billing failed: declined' },
  'billing just dead-lettered': { kind: 'wait' },
  'billing dead-lettered, backoff over': { kind: 'requeueBilling', attempt: 1 },
  'billing dead-lettered, requeues used up': { kind: 'compensate', reason: 'billing dead-lettered after 3 requeues' },
  'notification stuck': { kind: 'republish', service: 'notification', attempt: 1 },
  'notification stuck, republishes used up': {
    kind: 'compensate',
    reason: 'notification stuck pending after 2 republishes',
  },
  'inventory just dead-lettered': { kind: 'wait', why: 'inventory dead-lettered: republish' },
  // Not stuck by the clock, but its message is gone: nothing comes unless the monitor sends one.
  'inventory dead-lettered, backoff over': { kind: 'republish', service: 'inventory', attempt: 1, why: 'inventory dead-lettered 5 s ago' },
  'notification dead-lettered again, republishes used up': { kind: 'compensate', reason: 'notification dead-lettered after 2 republishes' },
  'support asked to requeue a dead-lettered billing': { kind: 'requeueBilling', attempt: 1, requestedBy: 'ana@contoso' },
  'support asked to compensate': { kind: 'compensate', requestedBy: 'ana@contoso' },
};

describe('decideNextStep: state x situation (default policy)', () => {
  const cases: [OrderState, string][] = [];
  for (const state of ['accepted', 'processing', 'compensating', 'completed', 'cancelled', 'attention'] as OrderState[]) {
    for (const name of Object.keys(situations)) cases.push([state, name]);
  }

  it.each(cases)('%s order, %s', (state, name) => {
    const { snap, atSeconds } = situations[name];
    const step = decideNextStep(
      snapshot({ ...snap, state, compensationReason: state === 'compensating' ? 'billing dead-lettered after 3 requeues' : undefined }),
      policy(),
      now(atSeconds),
    );
    if (state === 'completed' || state === 'cancelled' || state === 'attention') {
      // A terminal order is left alone whatever else its document says.
      expect(step).toEqual({ kind: 'done', outcome: state });
    } else if (state === 'compensating') {
      // Once started, compensation is carried on; no requeue or completion can overtake it.
      expect(step).toEqual({ kind: 'compensate', reason: 'billing dead-lettered after 3 requeues' });
    } else {
      expect(step).toMatchObject(activeExpectations[name]);
    }
  });
});

describe('decideNextStep: policy cells', () => {
  it('waits for the requeue backoff: 5 s, then 10 s, then 20 s after each dead-letter', () => {
    const deadLettered = (requeues: number) =>
      snapshot({ status: { inventory: 'done', billing: 'deadlettered', notification: 'done' }, billingDeadLetteredAt: at(100), billingRequeues: requeues });
    expect(decideNextStep(deadLettered(0), policy(), now(100))).toMatchObject({ kind: 'wait', phase: 'awaiting-requeue', until: now(105) });
    expect(decideNextStep(deadLettered(1), policy(), now(100))).toMatchObject({ kind: 'wait', until: now(110) });
    expect(decideNextStep(deadLettered(2), policy(), now(100))).toMatchObject({ kind: 'wait', until: now(120) });
    expect(decideNextStep(deadLettered(2), policy(), now(120))).toEqual({ kind: 'requeueBilling', attempt: 3 });
  });

  it('caps the requeue backoff', () => {
    const p = policy({ maxBillingRequeues: 10, requeueBackoffBaseMs: 5_000, requeueBackoffMaxMs: 30_000 });
    expect(requeueDelayMs(p, 0)).toBe(5_000);
    expect(requeueDelayMs(p, 2)).toBe(20_000);
    expect(requeueDelayMs(p, 3)).toBe(30_000);
    expect(requeueDelayMs(p, 9)).toBe(30_000);
  });

  it('with no requeues allowed, a dead-lettered billing is compensated at once', () => {
    const snap = snapshot({ status: { inventory: 'done', billing: 'deadlettered', notification: 'pending' }, billingDeadLetteredAt: at(0) });
    expect(decideNextStep(snap, policy({ maxBillingRequeues: 0 }), now(0))).toEqual({
      kind: 'compensate',
      reason: 'billing dead-lettered after 0 requeues',
    });
  });

  it('a support requeue goes beyond the automatic bound and skips the backoff', () => {
    const snap = snapshot({
      status: { inventory: 'done', billing: 'deadlettered', notification: 'done' },
      billingDeadLetteredAt: at(0),
      billingRequeues: 3,
      requeueRequestedBy: 'ana@contoso',
    });
    expect(decideNextStep(snap, policy(), now(0))).toEqual({ kind: 'requeueBilling', attempt: 4, requestedBy: 'ana@contoso' });
  });

  it('a support requeue of a billing still in flight republishes to billing', () => {
    const snap = snapshot({ status: { inventory: 'done', billing: 'processing', notification: 'done' }, requeueRequestedBy: 'ana@contoso' });
    expect(decideNextStep(snap, policy(), now(1))).toEqual({ kind: 'requeueBilling', attempt: 1, requestedBy: 'ana@contoso' });
  });

  it('a support requeue of a billing already done is ignored and the order completes', () => {
    const snap = snapshot({ status: { inventory: 'done', billing: 'done', notification: 'done' }, requeueRequestedBy: 'ana@contoso' });
    expect(decideNextStep(snap, policy(), now(1))).toEqual({ kind: 'markCompleted' });
  });

  it('with no republishes allowed, a stuck service is compensated at once', () => {
    const snap = snapshot({ status: { inventory: 'processing', billing: 'done', notification: 'done' } });
    expect(decideNextStep(snap, policy({ maxRepublishes: 0 }), now(60))).toEqual({
      kind: 'compensate',
      reason: 'inventory stuck processing after 0 republishes',
    });
  });

  it('republishes a dead-lettered inventory or notification after the requeue backoff once, then only after the stuck threshold, doubled for each republish', () => {
    // Polls far apart, so each wait shows the republish deadline.
    const p = policy({ pollMinMs: 600_000, pollMaxMs: 600_000 });
    const deadLettered = (republishes: number) =>
      snapshot({
        status: { inventory: 'done', billing: 'done', notification: 'processing' },
        deadLettered: ['notification'],
        republishes: { inventory: 0, billing: 0, notification: republishes },
        lastProgressAt: { inventory: at(0), billing: at(0), notification: at(100) },
      });
    expect(decideNextStep(deadLettered(0), p, now(101))).toMatchObject({ kind: 'wait', until: new Date(Date.parse(at(105))) });
    expect(decideNextStep(deadLettered(0), p, now(105))).toMatchObject({ kind: 'republish', service: 'notification', attempt: 1 });
    // Dead-lettered again after the first republish: an outage, perhaps; as patient as for a stuck one.
    expect(decideNextStep(deadLettered(1), p, now(105))).toMatchObject({ kind: 'wait', until: new Date(Date.parse(at(220))) });
    expect(decideNextStep(deadLettered(1), p, now(220))).toMatchObject({ kind: 'republish', service: 'notification', attempt: 2 });
    expect(decideNextStep(deadLettered(2), p, now(339))).toMatchObject({ kind: 'wait' });
    expect(decideNextStep(deadLettered(2), p, now(340))).toEqual({ kind: 'compensate', reason: 'notification dead-lettered after 2 republishes' });
    // A stuck threshold shorter than the backoff wins.
    const quick = policy({ pollMinMs: 600_000, pollMaxMs: 600_000, stuckAfterMs: { inventory: 60_000, billing: 60_000, notification: 2_000 } });
    expect(decideNextStep(deadLettered(0), quick, now(102))).toMatchObject({ kind: 'republish', service: 'notification' });
  });

  it('keeps a flat wait between republishes for a policy carried from before the doubling (a monitor replaying its history)', () => {
    const { stuckBackoffCoefficient, ...carried } = policy();
    expect(stuckBackoffCoefficient).toBe(2);
    const snap = snapshot({
      status: { inventory: 'done', billing: 'done', notification: 'pending' },
      lastProgressAt: { inventory: at(0), billing: at(0), notification: at(60) },
      republishes: { inventory: 0, billing: 0, notification: 1 },
    });
    expect(decideNextStep(snap, carried, now(120))).toMatchObject({ kind: 'republish', service: 'notification', attempt: 2 });
    expect(decideNextStep(snap, policy(), now(120))).toMatchObject({ kind: 'wait' });
  });

  it('uses the stuck threshold of each service', () => {
    const p = policy({ stuckAfterMs: { inventory: 60_000, billing: 120_000, notification: 10_000 } });
    const snap = snapshot({ status: { inventory: 'done', billing: 'processing', notification: 'done' } });
    expect(decideNextStep(snap, p, now(61))).toMatchObject({ kind: 'wait' });
    expect(decideNextStep(snap, p, now(120))).toMatchObject({ kind: 'republish', service: 'billing', attempt: 1 });
    const slowNotice = snapshot({ status: { inventory: 'done', billing: 'done', notification: 'pending' } });
    expect(decideNextStep(slowNotice, p, now(10))).toMatchObject({ kind: 'republish', service: 'notification' });
  });

  it('measures stuck from the last progress, so a republish gets a full threshold, doubled for each republish, to work', () => {
    const snap = snapshot({
      status: { inventory: 'done', billing: 'done', notification: 'pending' },
      lastProgressAt: { inventory: at(0), billing: at(0), notification: at(60) },
      republishes: { inventory: 0, billing: 0, notification: 1 },
    });
    // A backlog left by an outage can hold the republished message: the second waits twice as long.
    expect(decideNextStep(snap, policy(), now(179))).toMatchObject({ kind: 'wait', until: now(180) });
    expect(decideNextStep(snap, policy(), now(180))).toMatchObject({ kind: 'republish', service: 'notification', attempt: 2 });
  });

  it('polls with backoff from the minimum up to the maximum, but wakes for the next stuck deadline first', () => {
    const fresh = (n: number) => snapshot({ quietPolls: n });
    const fast = policy({ pollMinMs: 2_000 });
    expect(decideNextStep(fresh(0), fast, now(0))).toMatchObject({ kind: 'wait', phase: 'watching', until: now(2), why: 'poll' });
    expect(decideNextStep(fresh(3), fast, now(0))).toMatchObject({ kind: 'wait', until: now(16), why: 'poll' });
    // 2 * 2^5 = 64 s would pass the 60 s stuck deadline of the in-flight services: that comes first.
    expect(decideNextStep(fresh(5), policy({ pollMinMs: 2_000, pollMaxMs: 120_000 }), now(0))).toMatchObject({
      kind: 'wait',
      until: now(60),
      why: 'inventory stuck check',
    });
    expect(pollIntervalMs(fast, 0)).toBe(2_000);
    expect(pollIntervalMs(fast, 4)).toBe(32_000);
    expect(pollIntervalMs(fast, 5)).toBe(60_000);
    expect(pollIntervalMs(fast, 500)).toBe(60_000);
  });

  it('by default looks again after 10 s, then 20 s, 40 s and every 60 s: events wake it for every change it acts on', () => {
    expect([0, 1, 2, 3, 9].map((n) => pollIntervalMs(policy(), n))).toEqual([10_000, 20_000, 40_000, 60_000, 60_000]);
    expect(decideNextStep(snapshot({ quietPolls: 0 }), policy(), now(0))).toMatchObject({ kind: 'wait', until: now(10), why: 'poll' });
  });

  it('services that are done or dead-lettered are never reported stuck', () => {
    const snap = snapshot({ status: { inventory: 'done', billing: 'done', notification: 'processing' }, quietPolls: 10 });
    expect(decideNextStep(snap, policy(), now(30))).toMatchObject({ kind: 'wait', until: now(60), why: 'notification stuck check' });
  });

  it('escalates a compensation that did not finish after the allowed runs, instead of looping', () => {
    const snap = snapshot({ state: 'compensating', compensationRuns: 3, compensationReason: 'billing failed' });
    expect(decideNextStep(snap, policy(), now(0))).toEqual({
      kind: 'markAttention',
      reason: 'compensation did not finish after 3 runs',
    });
    expect(decideNextStep({ ...snap, compensationRuns: 2 }, policy(), now(0))).toEqual({ kind: 'compensate', reason: 'billing failed' });
    expect(decideNextStep({ ...snap, compensationRuns: 1 }, policy({ maxCompensationRuns: 1 }), now(0)).kind).toBe('markAttention');
  });

  it('carries out the last run allowed when its begin was never heard to answer, rather than escalate a run that never ran', () => {
    const snap = snapshot({ state: 'compensating', compensationRuns: 3, compensationReason: 'billing failed', latestRunStep: 'step-c' });
    expect(decideNextStep({ ...snap, latestRunUnheard: true }, policy(), now(0))).toEqual({ kind: 'compensate', reason: 'billing failed' });
    expect(decideNextStep(snap, policy(), now(0)).kind).toBe('markAttention');
  });

  it('carries out the latest run when the order shows it begun and never under way (its monitor died first): resumed, even past the last run allowed', () => {
    const snap = snapshot({ state: 'compensating', compensationRuns: 3, compensationReason: 'billing failed', latestRunStep: 'step-c' });
    expect(decideNextStep({ ...snap, latestRunNeverUnderway: true }, policy(), now(0))).toEqual({ kind: 'compensate', reason: 'billing failed', resume: true });
    expect(decideNextStep({ ...snap, compensationRuns: 1, latestRunNeverUnderway: true }, policy(), now(0))).toEqual({ kind: 'compensate', reason: 'billing failed', resume: true });
    // A person who asked since is owed a run of their own, not the one left behind.
    expect(decideNextStep({ ...snap, compensationRuns: 0, latestRunNeverUnderway: true, compensationAskedAgainBy: 'bo@contoso.com' }, policy(), now(0))).toEqual({
      kind: 'compensate',
      reason: 'requested again by bo@contoso.com',
      requestedBy: 'bo@contoso.com',
    });
    // Under way and not finished: tried, and the last one allowed.
    expect(decideNextStep(snap, policy(), now(0)).kind).toBe('markAttention');
  });

  describe('a run begun and never under way, read from the order', () => {
    const begun = (run: number, over: Partial<TimelineEntry> = {}): TimelineEntry => ({
      at: '2026-01-01T00:00:01.000Z',
      kind: TIMELINE.compensationStarted,
      detail: `run ${run}`,
      actor: 'monitor',
      step: `step-${run}`,
      notesUnderway: true,
      ...over,
    });
    const underway = (run: number): TimelineEntry => ({ at: '2026-01-01T00:00:02.000Z', kind: TIMELINE.compensationUnderway, detail: `run ${run}`, actor: 'monitor' });
    const read = (...timeline: TimelineEntry[]) => monitorSnapshotOf(orderDocument({ state: 'compensating', timeline }));

    it.each<[string, TimelineEntry[], boolean]>([
      ['begun, nothing since', [begun(1)], true],
      ['begun, then under way', [begun(1), underway(1)], false],
      ['an earlier run under way, the latest not', [begun(1), underway(1), begun(2)], true],
      ['the earlier run noted late, after the latest began', [begun(1), begun(2), underway(1)], true],
      ['begun before runs noted themselves (an order from before)', [begun(1, { notesUnderway: undefined })], false],
      ['resumed, and the resuming run under way', [begun(1), begun(2, { resumes: 1 }), underway(2)], false],
    ])('%s', (_name, timeline, neverUnderway) => {
      expect(read(...timeline).latestRunNeverUnderway === true).toBe(neverUnderway);
    });

    it(`resumes at most ${MAX_RUN_RESUMES} runs: past that, a run never taken up counts as tried, and the last one allowed ends in attention`, () => {
      const resumed = Array.from({ length: MAX_RUN_RESUMES }, (_, i) => begun(i + 2, { resumes: i + 1 }));
      expect(read(begun(1), ...resumed.slice(0, -1)).latestRunNeverUnderway).toBe(true);
      const exhausted = read(begun(1), ...resumed);
      expect(exhausted).not.toHaveProperty('latestRunNeverUnderway');
      expect(exhausted.compensationRuns).toBe(1);
      expect(decideNextStep(exhausted, policy({ maxCompensationRuns: 1 }), now(0)).kind).toBe('markAttention');
    });

    it('a run that resumes one never carried out is that run, not another against the bound', () => {
      expect(read(begun(1), begun(2, { resumes: 1 })).compensationRuns).toBe(1);
      expect(read(begun(1), underway(1), begun(2), begun(3, { resumes: 2 }), underway(3)).compensationRuns).toBe(2);
    });

    it('the monitor that handed the latest run to its sub-orchestration itself counts it as tried, whatever the order says', () => {
      const snap = read(begun(1));
      const observations = observe(undefined, snap, now(0));
      expect(turnSnapshot(snap, observations, 0).latestRunNeverUnderway).toBe(true);
      expect(turnSnapshot(snap, observations, 0, undefined, 'step-1')).not.toHaveProperty('latestRunNeverUnderway');
      // A step of its own that began an earlier run says nothing of this one.
      expect(turnSnapshot(snap, observations, 0, undefined, 'step-0').latestRunNeverUnderway).toBe(true);
    });
  });

  it("names the step that began the order's latest run", () => {
    const started = (step?: string): TimelineEntry => ({ at: '2026-01-01T00:00:01.000Z', kind: TIMELINE.compensationStarted, detail: 'run 1', ...(step ? { step } : {}) });
    expect(monitorSnapshotOf(orderDocument({ state: 'compensating', timeline: [started('step-a'), started('step-b')] })).latestRunStep).toBe('step-b');
    expect(monitorSnapshotOf(orderDocument({ state: 'compensating', timeline: [started('step-a'), started()] }))).not.toHaveProperty('latestRunStep');
  });

  it('out of stock is compensated at once even while billing is still in flight', () => {
    const snap = snapshot({ status: { inventory: 'failed', billing: 'processing', notification: 'pending' }, statusReason: { inventory: 'out of stock' } });
    expect(decideNextStep(snap, policy(), now(0))).toEqual({ kind: 'compensate', reason: 'inventory failed: out of stock' });
  });

  it('names the phase of each step for the custom status', () => {
    expect(phaseOf({ kind: 'wait', until: now(0), phase: 'awaiting-requeue', why: '' })).toBe('awaiting-requeue');
    expect(phaseOf({ kind: 'requeueBilling', attempt: 1 })).toBe('requeueing');
    expect(phaseOf({ kind: 'republish', service: 'billing', attempt: 1, why: '' })).toBe('republishing');
    expect(phaseOf({ kind: 'compensate', reason: '' })).toBe('compensating');
    expect(phaseOf({ kind: 'markCompleted' })).toBe('completing');
    expect(phaseOf({ kind: 'markAttention', reason: '' })).toBe('escalating');
    expect(phaseOf({ kind: 'done', outcome: 'completed' })).toBe('done');
  });
});

describe('decideNextStep: backlog checks', () => {
  // Notification stuck `pending` since 0 s, the other two done; the default policy (checks on).
  const stuckNotice = snapshot({ status: { inventory: 'done', billing: 'done', notification: 'pending' } });
  const watched = (snap: MonitorSnapshot): MonitorObservations => observe(undefined, snap, now(0));
  // Polls far apart, so each wait shows the next check's deadline.
  const P: MonitorPolicy = { ...DEFAULT_MONITOR_POLICY, pollMinMs: 3_600_000, pollMaxMs: 3_600_000 };
  const decide = (obs: MonitorObservations, seconds: number, p: MonitorPolicy = P, snap = stuckNotice) =>
    decideNextStep(onMonitorClock(snap, observe(obs, snap, now(seconds))), p, now(seconds));
  const behind = { waiting: true, oldestEnqueuedAt: at(-5) };

  it('looks at the subscription before a republish, and does not republish while the order\'s message is behind others', () => {
    let obs = watched(stuckNotice);
    expect(decide(obs, 59)).toMatchObject({ kind: 'wait', phase: 'watching', until: now(60), why: 'notification stuck check' });
    const check = decide(obs, 60);
    expect(check).toEqual({ kind: 'checkBacklog', service: 'notification', why: 'notification pending for 60 s' });
    expect(phaseOf(check)).toBe('checking-backlog');

    obs = noteBacklogCheck(obs, 'notification', now(60), behind);
    expect(decide(obs, 61)).toEqual({
      kind: 'wait',
      phase: 'behind-backlog',
      until: now(120),
      why: `notification behind a backlog (oldest message enqueued ${at(-5)}); next: notification backlog check`,
    });
    // Checked again a minute later, then after waits doubling up to BACKLOG_RECHECK_MAX_MS.
    const checksAt = [60];
    for (let i = 0; i < 7; i++) {
      const next = (decide(obs, checksAt.at(-1)! + 1) as { until: Date }).until.getTime();
      const seconds = (next - T0) / 1000;
      expect(decide(obs, seconds)).toMatchObject({ kind: 'checkBacklog', service: 'notification' });
      obs = noteBacklogCheck(obs, 'notification', now(seconds), behind);
      checksAt.push(seconds);
    }
    expect(checksAt.slice(1).map((t, i) => t - checksAt[i])).toEqual([60, 120, 240, 480, 600, 600, 600]);
    expect(BACKLOG_RECHECK_MAX_MS).toBe(600_000);
    expect(obs.backlog?.notification).toMatchObject({ waiting: true, waits: 8, waitingSince: now(60).toISOString() });
    // Said as well when a poll comes first.
    expect(decideNextStep(onMonitorClock(stuckNotice, observe(obs, stuckNotice, now(2761))), DEFAULT_MONITOR_POLICY, now(2761))).toMatchObject({
      phase: 'behind-backlog',
      why: `notification behind a backlog (oldest message enqueued ${at(-5)}); next: poll`,
    });
  });

  it('republishes once a check finds the subscription clear of the order\'s message and older ones', () => {
    let obs = noteBacklogCheck(watched(stuckNotice), 'notification', now(60), behind);
    obs = noteBacklogCheck(obs, 'notification', now(120), { waiting: false, oldestEnqueuedAt: at(100) });
    expect(obs.backlog?.notification).toMatchObject({ waiting: false, waits: 0 });
    expect(decide(obs, 120)).toEqual({ kind: 'republish', service: 'notification', attempt: 1, why: 'notification pending for 120 s' });
    // A clear subscription on the first look: the message is gone, sent again at once.
    const clear = noteBacklogCheck(watched(stuckNotice), 'notification', now(60), { waiting: false });
    expect(decide(clear, 60)).toMatchObject({ kind: 'republish', service: 'notification', attempt: 1 });
  });

  it('gives up waiting for a backlog after maxBacklogWaitMs: republishes, and compensates when the republishes are used up', () => {
    const p = { ...P, maxBacklogWaitMs: 300_000 };
    let obs = noteBacklogCheck(watched(stuckNotice), 'notification', now(60), behind);
    obs = noteBacklogCheck(obs, 'notification', now(120), behind);
    obs = noteBacklogCheck(obs, 'notification', now(240), behind);
    // The next check would be at 480 s; the wait ends at 60 + 300 s first.
    expect(decide(obs, 241, p)).toMatchObject({ kind: 'wait', phase: 'behind-backlog', until: now(360) });
    expect(decide(obs, 360, p)).toEqual({
      kind: 'republish',
      service: 'notification',
      attempt: 1,
      why: 'notification pending for 360 s, behind a backlog for 5 min',
    });
    const usedUp = snapshot({ ...stuckNotice, republishes: { inventory: 0, billing: 0, notification: 2 } });
    // Two republishes: 240 s before the next step, then checks at 240, 300 and 420 s, each behind.
    let after = noteBacklogCheck(watched(usedUp), 'notification', now(240), behind);
    after = noteBacklogCheck(after, 'notification', now(300), behind);
    after = noteBacklogCheck(after, 'notification', now(420), behind);
    expect(decide(after, 421, p, usedUp)).toMatchObject({ kind: 'wait', phase: 'behind-backlog', until: now(540) });
    expect(decide(after, 540, p, usedUp)).toEqual({
      kind: 'compensate',
      reason: 'notification stuck pending after 2 republishes, behind a backlog for 5 min',
    });
    // A check that finds the subscription clear ends the wait sooner.
    const cleared = noteBacklogCheck(after, 'notification', now(450), { waiting: false });
    expect(decide(cleared, 450, p, usedUp)).toEqual({ kind: 'compensate', reason: 'notification stuck pending after 2 republishes' });
  });

  it('new progress of the service starts the checks afresh; a message known gone is sent again without a check', () => {
    const obs = noteBacklogCheck(watched(stuckNotice), 'notification', now(60), behind);
    const republished = snapshot({ ...stuckNotice, lastProgressAt: { inventory: at(0), billing: at(0), notification: at(100) } });
    const moved = observe(obs, republished, now(101));
    expect(moved.backlog).toBeUndefined();
    expect(decideNextStep(onMonitorClock(republished, moved), DEFAULT_MONITOR_POLICY, now(101))).toMatchObject({ kind: 'wait', phase: 'watching' });
    // Other services' checks stay.
    const both = noteBacklogCheck(noteBacklogCheck(watched(stuckNotice), 'billing', now(60), behind), 'notification', now(60), behind);
    expect(Object.keys(observe(both, republished, now(101)).backlog ?? {})).toEqual(['billing']);

    const deadLettered = snapshot({ ...stuckNotice, deadLettered: ['notification'] });
    expect(decide(watched(deadLettered), 5, DEFAULT_MONITOR_POLICY, deadLettered)).toMatchObject({ kind: 'republish', service: 'notification', attempt: 1 });
    // Its republished copy stuck (its latest progress the republish, not a dead-letter): looked at first.
    const republishedOnce = snapshot({ ...stuckNotice, republishes: { inventory: 0, billing: 0, notification: 1 } });
    expect(decide(watched(republishedOnce), 120, DEFAULT_MONITOR_POLICY, republishedOnce)).toMatchObject({ kind: 'checkBacklog', service: 'notification' });
  });

  it('a message dead-lettered again is gone as well: sent again, then compensated, without waiting for a backlog', () => {
    // The republished copy dead-lettered too: the latest send to notification is in its dead-letter
    // queue, so nothing the subscription holds is the order's. Only a send replaces it.
    const again = snapshot({ ...stuckNotice, deadLettered: ['notification'], republishes: { inventory: 0, billing: 0, notification: 1 } });
    expect(decide(watched(again), 119, DEFAULT_MONITOR_POLICY, again)).toMatchObject({ kind: 'wait', phase: 'watching' });
    expect(decide(watched(again), 120, DEFAULT_MONITOR_POLICY, again)).toEqual({
      kind: 'republish',
      service: 'notification',
      attempt: 2,
      why: 'notification dead-lettered 120 s ago',
    });
    const usedUp = snapshot({ ...again, republishes: { inventory: 0, billing: 0, notification: 2 } });
    expect(decide(watched(usedUp), 240, DEFAULT_MONITOR_POLICY, usedUp)).toEqual({
      kind: 'compensate',
      reason: 'notification dead-lettered after 2 republishes',
    });
    // A waiting check noted for it (a monitor that looked before this) holds nothing up either.
    const noted = noteBacklogCheck(watched(again), 'notification', now(120), behind);
    expect(decide(noted, 121, DEFAULT_MONITOR_POLICY, again)).toMatchObject({ kind: 'republish', service: 'notification', attempt: 2 });
  });

  it('an event the intake could not publish is sent again at the stuck threshold without waiting for a backlog', () => {
    // Service Bus did not take it (an outage, which leaves a backlog behind it): nothing of the
    // order's may be in the subscription, and the publish-failed note promises the monitor's send.
    const unsent = snapshot({ ...stuckNotice, unsentTo: ['notification'] });
    expect(decide(watched(unsent), 60, DEFAULT_MONITOR_POLICY, unsent)).toEqual({
      kind: 'republish',
      service: 'notification',
      attempt: 1,
      why: 'notification pending for 60 s',
    });
    // A waiting check noted for it before holds nothing up either.
    const noted = noteBacklogCheck(watched(unsent), 'notification', now(60), behind);
    expect(decide(noted, 61, DEFAULT_MONITOR_POLICY, unsent)).toMatchObject({ kind: 'republish', service: 'notification', attempt: 1 });
    // Snapshots in a history from before the field have none: replayed, they look as then.
    expect(decide(watched(stuckNotice), 60, DEFAULT_MONITOR_POLICY, stuckNotice)).toMatchObject({ kind: 'checkBacklog', service: 'notification' });
  });

  it('a policy carried in a history from before the checks, or with them turned off, republishes without looking', () => {
    const { maxBacklogWaitMs: _, ...carried } = DEFAULT_MONITOR_POLICY;
    expect(decide(watched(stuckNotice), 60, carried)).toMatchObject({ kind: 'republish', service: 'notification', attempt: 1 });
    expect(decide(watched(stuckNotice), 60, { ...DEFAULT_MONITOR_POLICY, maxBacklogWaitMs: 0 })).toMatchObject({ kind: 'republish' });
    expect(monitorPolicyFromSettings({ MONITOR_BACKLOG_WAIT_SECONDS: '0' }).maxBacklogWaitMs).toBe(0);
    expect(monitorPolicyFromSettings({ MONITOR_BACKLOG_WAIT_SECONDS: '120' }).maxBacklogWaitMs).toBe(120_000);
    expect(monitorPolicyFromSettings({}).maxBacklogWaitMs).toBe(3_600_000);
  });

  it('a subscription is behind when its oldest message was enqueued no later than the order\'s send (10 s allowed for clocks)', () => {
    expect(behindBacklog(undefined, at(100))).toBe(false);
    expect(behindBacklog(now(40), at(100))).toBe(true);
    expect(behindBacklog(now(110), at(100))).toBe(true);
    expect(behindBacklog(now(111), at(100))).toBe(false);
  });
});

describe('monitorSnapshotOf', () => {
  function order(over: Partial<OrderDocument> = {}): OrderDocument {
    return orderDocument({
      status: { inventory: 'done', billing: 'deadlettered', notification: 'done' },
      statusReason: { billing: 'MaxDeliveryCountExceeded' },
      createdAt: at(0),
      updatedAt: at(0),
      billingAttempts: 3,
      notified: { confirmation: true, cancellation: false },
      ...over,
    });
  }

  it('keeps when the latest message to a service in flight was sent, where a claim stamped it since', () => {
    const status = { inventory: 'done', billing: 'processing', notification: 'processing' } as const;
    const claimed = (service: 'billing' | 'notification', s: number): TimelineEntry => ({ at: at(s), kind: 'delivery', service, deliveryCount: 1 });
    // Both claimed the intake's message: the send is the order's creation.
    expect(monitorSnapshotOf(order({ status, timeline: [claimed('billing', 5), claimed('notification', 6)] })).sentAt).toEqual({ billing: at(0), notification: at(0) });
    // Notification sent again by the monitor and claimed again; billing sent again, not yet claimed.
    const resent = order({
      status,
      timeline: [
        claimed('billing', 5),
        claimed('notification', 6),
        { at: at(70), kind: 'republished', service: 'notification', actor: 'monitor', reason: 'stuck (attempt 1): notification processing for 64 s', detail: 'attempt 1, message e:notification:1' },
        claimed('notification', 75),
        { at: at(80), kind: 'republished', service: 'billing', actor: 'monitor', reason: 'stuck (attempt 1): billing processing for 75 s', detail: 'attempt 1, message e:billing:1' },
      ],
    });
    expect(monitorSnapshotOf(resent).sentAt).toEqual({ notification: at(70) });
    expect(monitorSnapshotOf(order({ status, timeline: [] })).sentAt).toBeUndefined();
  });

  it('names the services the event may never have reached: publish failed, nothing recorded for them since', () => {
    const pending = { inventory: 'pending', billing: 'pending', notification: 'pending' } as const;
    const failed: TimelineEntry = { at: at(1), kind: 'publish-failed', reason: 'Service Bus did not take the event within 5000 ms' };
    expect(monitorSnapshotOf(order({ status: pending, published: false, timeline: [failed] })).unsentTo).toEqual(['inventory', 'billing', 'notification']);
    // The monitor sent to inventory, whose consumer took it: that records `published`, which says
    // nothing of billing's and notification's subscriptions.
    const sent: TimelineEntry[] = [
      { at: at(61), kind: 'republished', service: 'inventory', actor: 'monitor', reason: 'stuck (attempt 1): inventory pending for 60 s', detail: 'attempt 1, message e-1:inventory:1' },
      { at: at(62), kind: 'delivery', service: 'inventory', deliveryCount: 1 },
    ];
    expect(monitorSnapshotOf(order({ status: { ...pending, inventory: 'processing' }, published: true, timeline: [failed, ...sent] })).unsentTo).toEqual(['billing', 'notification']);
    // A delivery to notification (of the event, sent after all): it is in play there.
    const delivered: TimelineEntry = { at: at(63), kind: 'delivery', service: 'notification', deliveryCount: 1 };
    expect(monitorSnapshotOf(order({ status: { ...pending, notification: 'processing' }, published: true, timeline: [failed, delivered] })).unsentTo).toEqual(['inventory', 'billing']);
    // No note: none.
    expect(monitorSnapshotOf(order({ status: pending, published: false, timeline: [] })).unsentTo).toBeUndefined();
  });

  it('counts the monitor requeues and dead-letters from the timeline, and last progress per service', () => {
    const snap = monitorSnapshotOf(
      order({
        timeline: [
          { at: at(1), kind: 'delivery', service: 'billing', deliveryCount: 1 },
          { at: at(2), kind: 'done', service: 'inventory' },
          { at: at(3), kind: 'deadlettered', service: 'billing', deliveryCount: 3 },
          { at: at(8), kind: 'requeued', service: 'billing', actor: 'monitor', detail: 'attempt 1' },
          { at: at(8), kind: 'republished', service: 'billing', actor: 'monitor', reason: 'requeue 1: dead-lettered' },
          { at: at(8), kind: 'republished', service: 'notification', actor: 'monitor', reason: 'stuck: pending for 61 s' },
          { at: at(8), kind: 'delivery', service: 'billing', deliveryCount: 1 },
          { at: at(9), kind: 'deadlettered', service: 'billing', deliveryCount: 3 },
        ],
      }),
      4,
    );
    expect(snap).toMatchObject({
      billingRequeues: 1,
      billingDeadLetteredAt: at(9),
      // A requeue is not a republish to a stuck consumer: only the notification one counts.
      republishes: { inventory: 0, billing: 0, notification: 1 },
      lastProgressAt: { inventory: at(2), billing: at(9), notification: at(8) },
      quietPolls: 4,
      compensationRuns: 0,
    });
    expect(snap.requeueRequestedBy).toBeUndefined();
  });

  it('a requeue whose message dead-lettered with no billing delivery taking it (Cosmos DB out) does not use up the requeues, up to a bound', () => {
    const requeue = (n: number) => [
      { at: at(n), kind: 'requeued', service: 'billing' as const, actor: 'monitor', detail: `attempt ${n}` },
      { at: at(n), kind: 'republished', service: 'billing' as const, actor: 'monitor', reason: `requeue ${n}`, detail: `attempt ${n}, message e:billing:${n}` },
    ];
    const tried = (n: number) => [
      { at: at(n), kind: 'delivery', service: 'billing' as const, deliveryCount: 1 },
      { at: at(n), kind: 'attempt-failed', service: 'billing' as const, deliveryCount: 1, reason: 'payment gateway unavailable' },
    ];
    // The dead-letter of requeue n's message (`e:billing:n`), or of the order's first message.
    const deadLettered = (n: number, requeue?: number) => ({
      at: at(n),
      kind: 'deadlettered',
      service: 'billing' as const,
      deliveryCount: 3,
      detail: `message ${requeue === undefined ? 'e' : `e:billing:${requeue}`}`,
    });
    // Requeue 1 was tried, requeue 2 never reached billing (its deliveries could not claim the order).
    const snap = monitorSnapshotOf(order({ timeline: [deadLettered(1), ...requeue(2), ...tried(3), deadLettered(4, 2), ...requeue(5), deadLettered(6, 5)] }));
    expect(snap).toMatchObject({ billingRequeues: 1, billingRequeuesUntried: 1 });
    // The next requeue is due after the backoff of both, and is requeue 2 of 3, not a compensation.
    expect(decideNextStep({ ...snap, billingDeadLetteredAt: at(6) }, DEFAULT_MONITOR_POLICY, new Date(at(6)))).toMatchObject({
      kind: 'wait',
      phase: 'awaiting-requeue',
      until: new Date(Date.parse(at(6)) + 20_000),
    });
    // A requeue still on its way (no dead-letter after it) counts, so it is not sent twice.
    expect(monitorSnapshotOf(order({ status: { inventory: 'done', billing: 'pending', notification: 'done' }, timeline: [deadLettered(1), ...requeue(2)] })).billingRequeues).toBe(1);
    // Past UNTRIED_REQUEUES_FREE, untried requeues count: an outage that never ends cannot requeue forever.
    const many = Array.from({ length: UNTRIED_REQUEUES_FREE + 2 }, (_, i) => [...requeue(10 + 2 * i), deadLettered(11 + 2 * i, 10 + 2 * i)]).flat();
    expect(monitorSnapshotOf(order({ timeline: [deadLettered(1), ...many] }))).toMatchObject({ billingRequeues: 2, billingRequeuesUntried: UNTRIED_REQUEUES_FREE + 2 });
  });

  it('a requeue counts as untried only when its own message dead-lettered untaken, not a late dead-letter of an older message', () => {
    // Entries as the activities and the dead-letter handler write them: the requeue's message is
    // named on its `republished` entry, a dead-letter's on its detail.
    const requeue = (n: number, message: string) => [
      { at: at(n), kind: 'requeued', service: 'billing' as const, actor: 'monitor', detail: `attempt ${n}` },
      { at: at(n), kind: 'republished', service: 'billing' as const, actor: 'monitor', reason: `requeue ${n}`, detail: `attempt ${n}, message ${message}` },
    ];
    const deadLettered = (n: number, message: string) => ({ at: at(n), kind: 'deadlettered', service: 'billing' as const, deliveryCount: 3, detail: `message ${message}` });
    const tried = (n: number) => [
      { at: at(n), kind: 'delivery', service: 'billing' as const, deliveryCount: 1 },
      { at: at(n), kind: 'attempt-failed', service: 'billing' as const, deliveryCount: 1, reason: 'payment gateway unavailable' },
    ];
    // A stuck republish's message (e:billing:1) dead-lettered and was recorded; the requeue sent
    // e:billing:2; the sweep then recorded the original message's dead-letter (e) late, which moved
    // billing to deadlettered; the requeue's message was claimed from there and the payment tried.
    const snap = monitorSnapshotOf(
      order({ timeline: [deadLettered(1, 'e:billing:1'), ...requeue(2, 'e:billing:2'), deadLettered(3, 'e'), ...tried(4), deadLettered(5, 'e:billing:2')] }),
    );
    expect(snap.billingRequeues).toBe(1);
    expect(snap.billingRequeuesUntried ?? 0).toBe(0);
    // Its own message dead-lettering untaken still makes it untried.
    expect(monitorSnapshotOf(order({ timeline: [deadLettered(1, 'e'), ...requeue(2, 'e:billing:1'), deadLettered(3, 'e:billing:1')] }))).toMatchObject({
      billingRequeues: 0,
      billingRequeuesUntried: 1,
    });
    // A late dead-letter of an older message while the requeue's message is still on its way: the
    // requeue is not untried (its message will be claimed from deadlettered and tried).
    expect(monitorSnapshotOf(order({ timeline: [deadLettered(1, 'e:billing:1'), ...requeue(2, 'e:billing:2'), deadLettered(3, 'e')] })).billingRequeues).toBe(1);
  });

  it('the requeue step is numbered by every requeue the monitor wrote, so a requeue written once stays recorded after its message dead-letters untaken', () => {
    const requeue = (n: number) => [
      { at: at(n), kind: 'requeued', service: 'billing' as const, actor: 'monitor', detail: `attempt ${n}` },
      { at: at(n), kind: 'republished', service: 'billing' as const, actor: 'monitor', reason: `requeue ${n}`, detail: `attempt ${n}, message e:billing:${n}` },
    ];
    const deadLettered = (n: number, message: string) => ({ at: at(n), kind: 'deadlettered', service: 'billing' as const, deliveryCount: 3, detail: `message ${message}` });
    // The monitor decides requeue after one untried requeue.
    const before = monitorSnapshotOf(order({ timeline: [deadLettered(1, 'e'), ...requeue(2), deadLettered(3, 'e:billing:2')] }));
    const step = decideNextStep(before, DEFAULT_MONITOR_POLICY, new Date(Date.parse(at(3)) + 3_600_000));
    expect(step.kind).toBe('requeueBilling');
    const attempt = (step as Extract<Step, { kind: 'requeueBilling' }>).attempt;
    // requeueBilling writes it, sends its message, and the message dead-letters untaken (Cosmos DB
    // throttling) before a rerun of the same activity (its result was lost): the rerun must find
    // the requeue recorded, or it writes and sends another one at once, with no backoff.
    const after = monitorSnapshotOf(order({ timeline: [deadLettered(1, 'e'), ...requeue(2), deadLettered(3, 'e:billing:2'), ...requeue(4), deadLettered(5, 'e:billing:4')] }));
    expect(requeueRecorded(after, attempt)).toBe(true);
    // And one not written yet is not recorded.
    expect(requeueRecorded(before, attempt)).toBe(false);
  });

  it('a republish step to a stuck service is recorded once its send is on the order, so the step run once more does not send and count it again', () => {
    const stuck = { inventory: 'done', billing: 'processing', notification: 'pending' } as const;
    const before = monitorSnapshotOf(order({ status: stuck, timeline: [] }));
    const step = decideNextStep(onMonitorClock(before, observe(undefined, before, now(0))), policy(), now(60));
    expect(step).toMatchObject({ kind: 'republish', service: 'billing', attempt: 1 });
    const attempt = (step as Extract<Step, { kind: 'republish' }>).attempt;
    expect(republishRecorded(before, 'billing', attempt)).toBe(false);
    // republishToStuckService sent it and wrote its entry; the engine did not hear it finish.
    const after = monitorSnapshotOf(
      order({
        status: stuck,
        timeline: [{ at: at(60), kind: 'republished', service: 'billing', actor: 'monitor', reason: 'stuck (attempt 1): billing processing for 60 s', detail: 'attempt 1, message e-1:billing:1' }],
      }),
    );
    expect(republishRecorded(after, 'billing', attempt)).toBe(true);
    // Only the stuck republishes to that service: a requeue's send to billing, or another service's, is not this step's.
    const requeued = monitorSnapshotOf(
      order({
        status: stuck,
        timeline: [
          { at: at(60), kind: 'republished', service: 'billing', actor: 'monitor', reason: 'requeue 1', detail: 'attempt 1, message e-1:billing:1' },
          { at: at(61), kind: 'republished', service: 'notification', actor: 'monitor', reason: 'stuck (attempt 1): notification pending for 61 s', detail: 'attempt 1, message e-1:notification:1' },
        ],
      }),
    );
    expect(republishRecorded(requeued, 'billing', attempt)).toBe(false);
  });

  it('a requeue step decided from a snapshot recorded before untried requeues were counted apart is numbered as then', () => {
    // An orchestration's history holds snapshots the earlier code made: billingRequeues counted every monitor requeue.
    const recorded = snapshot({ status: { inventory: 'done', billing: 'deadlettered', notification: 'done' }, billingRequeues: 2, billingDeadLetteredAt: at(0) });
    expect(decideNextStep(recorded, DEFAULT_MONITOR_POLICY, now(3600))).toMatchObject({ kind: 'requeueBilling', attempt: 3 });
    // One made by the reviewed code (untried apart, no count of every requeue): every requeue it wrote.
    const untried = snapshot({ ...recorded, billingRequeues: 1, billingRequeuesUntried: 2 });
    expect(decideNextStep(untried, DEFAULT_MONITOR_POLICY, now(3600))).toMatchObject({ kind: 'requeueBilling', attempt: 4 });
  });

  it('a support requeue is pending until a requeue follows it, and does not count against the bound', () => {
    const requested = order({
      timeline: [{ at: at(5), kind: 'support-action', actor: 'ana@contoso', detail: 'requeue' }],
    });
    expect(monitorSnapshotOf(requested).requeueRequestedBy).toBe('ana@contoso');
    const carriedOut = order({
      timeline: [
        { at: at(5), kind: 'support-action', actor: 'ana@contoso', detail: 'requeue' },
        { at: at(6), kind: 'requeued', service: 'billing', actor: 'ana@contoso', detail: 'attempt 1' },
      ],
    });
    expect(monitorSnapshotOf(carriedOut)).toMatchObject({ requeueRequestedBy: undefined, billingRequeues: 0 });
  });

  /** The snapshot of a compensating order with this timeline. */
  const compensating = (timeline: OrderDocument['timeline']) => monitorSnapshotOf(order({ state: 'compensating', timeline }));

  it('remembers who asked for compensation, why it started and how often', () => {
    const snap = compensating([
      { at: at(5), kind: 'support-action', actor: 'ana@contoso', detail: 'compensate' },
      { at: at(6), kind: 'compensation-started', reason: 'requested by ana@contoso', actor: 'monitor' },
      { at: at(9), kind: 'compensation-started', reason: 'requested by ana@contoso', actor: 'monitor' },
    ]);
    expect(snap).toMatchObject({ compensationRequestedBy: 'ana@contoso', compensationReason: 'requested by ana@contoso', compensationRuns: 2 });
  });

  it('a support request to compensate again starts the run count afresh (retry after attention)', () => {
    const snap = compensating([
      { at: at(1), kind: 'compensation-started', reason: 'billing failed', actor: 'monitor' },
      { at: at(2), kind: 'compensation-started', reason: 'billing failed', actor: 'monitor' },
      { at: at(3), kind: 'compensation-started', reason: 'billing failed', actor: 'monitor' },
      { at: at(9), kind: 'support-action', actor: 'ana@contoso', detail: 'compensate' },
    ]);
    expect(snap.compensationRuns).toBe(0);
    // The next run is the person's: recorded as theirs, not as the monitor's first reason again.
    expect(decideNextStep(snap, policy(), now(10))).toEqual({ kind: 'compensate', reason: 'requested again by ana@contoso', requestedBy: 'ana@contoso' });
    // Once that run has begun, a restarted monitor goes on with it under the original reason.
    const begun = compensating([
      { at: at(1), kind: 'compensation-started', reason: 'billing failed', actor: 'monitor' },
      { at: at(9), kind: 'support-action', actor: 'ana@contoso', detail: 'compensate' },
      { at: at(10), kind: 'compensation-started', reason: 'requested again by ana@contoso', actor: 'ana@contoso' },
    ]);
    expect(begun.compensationAskedAgainBy).toBeUndefined();
    expect(decideNextStep(begun, policy(), now(11))).toEqual({ kind: 'compensate', reason: 'billing failed' });
  });

  it('an inventory or notification in flight whose latest progress is a dead-letter is read as dead-lettered, until a republish or a delivery follows', () => {
    const inFlight = { inventory: 'processing', billing: 'done', notification: 'pending' } as const;
    const deadLetters: TimelineEntry[] = [
      { at: at(1), kind: 'delivery', service: 'inventory', deliveryCount: 3 },
      { at: at(3), kind: 'deadlettered', service: 'inventory', deliveryCount: 3 },
      { at: at(4), kind: 'deadlettered', service: 'notification', deliveryCount: 3 },
    ];
    expect(monitorSnapshotOf(order({ status: inFlight, timeline: deadLetters })).deadLettered).toEqual(['inventory', 'notification']);
    const followed = order({
      status: inFlight,
      timeline: [
        ...deadLetters,
        { at: at(5), kind: 'republished', service: 'inventory', actor: 'monitor', reason: 'stuck (attempt 1): inventory dead-lettered' },
        { at: at(6), kind: 'delivery', service: 'notification', deliveryCount: 1 },
      ],
    });
    expect(monitorSnapshotOf(followed).deadLettered).toBeUndefined();
    // Finished since (the record came after the outcome, as a late note): nothing to republish.
    const finished = order({ status: { inventory: 'done', billing: 'done', notification: 'done' }, timeline: deadLetters });
    expect(monitorSnapshotOf(finished).deadLettered).toBeUndefined();
  });

  describe('reads the timeline in the order it was written, as support and compensation do', () => {
    // Entries written later but stamped earlier: the writer's clock behind the one before it.
    it('a requeue written after the request carried it out', () => {
      const timeline = [
        { at: at(9), kind: 'support-action', actor: 'ana@contoso', detail: 'requeue', service: 'billing' as const },
        { at: at(7), kind: 'requeued', service: 'billing' as const, actor: 'ana@contoso', detail: 'attempt 1' },
      ];
      expect(monitorSnapshotOf(order({ timeline })).requeueRequestedBy).toBeUndefined();
      expect(pendingRequeueRequest(timeline)).toBeUndefined();
    });

    it('a run begun after a request to compensate again is that request\'s run', () => {
      const timeline = [
        { at: at(1), kind: 'compensation-started', reason: 'billing failed', actor: 'monitor', detail: 'run 1' },
        { at: at(9), kind: 'support-action', actor: 'ana@contoso', detail: 'compensate' },
        { at: at(7), kind: 'compensation-started', reason: 'requested again by ana@contoso', actor: 'ana@contoso', detail: 'run 2' },
      ];
      const snap = compensating(timeline);
      expect(snap.compensationRuns).toBe(1);
      expect(snap.compensationAskedAgainBy).toBeUndefined();
      expect(compensationAskedSinceLastRun(order({ state: 'compensating', timeline }))).toBeUndefined();
      expect(decideNextStep(snap, policy(), now(10))).toEqual({ kind: 'compensate', reason: 'billing failed' });
    });

    it('a delivery written after a dead-letter is the latest progress, and a change the monitor sees', () => {
      const snap = monitorSnapshotOf(
        order({
          status: { inventory: 'processing', billing: 'done', notification: 'done' },
          timeline: [
            { at: at(5), kind: 'deadlettered', service: 'inventory', deliveryCount: 3 },
            { at: at(4), kind: 'delivery', service: 'inventory', deliveryCount: 1 },
          ],
        }),
      );
      expect(snap.deadLettered).toBeUndefined();
      expect(snap.lastProgressAt.inventory).toBe(at(4));
    });
  });

  it('reads a billing that is no longer dead-lettered as such', () => {
    const snap = monitorSnapshotOf(
      order({
        status: { inventory: 'done', billing: 'pending', notification: 'done' },
        timeline: [{ at: at(3), kind: 'deadlettered', service: 'billing' }],
      }),
    );
    expect(snap.billingDeadLetteredAt).toBeUndefined();
  });
});

describe('monitorPolicyFromSettings', () => {
  it('keeps the defaults when nothing is set', () => {
    expect(monitorPolicyFromSettings({})).toEqual(DEFAULT_MONITOR_POLICY);
    expect(monitorPolicyFromSettings({ MONITOR_MAX_BILLING_REQUEUES: '' })).toEqual(DEFAULT_MONITOR_POLICY);
  });

  it('reads counts and seconds, with per-service stuck thresholds over the common one', () => {
    const p = monitorPolicyFromSettings({
      MONITOR_MAX_BILLING_REQUEUES: '5',
      MONITOR_REQUEUE_BACKOFF_SECONDS: '0.5',
      MONITOR_STUCK_AFTER_SECONDS: '30',
      MONITOR_STUCK_AFTER_SECONDS_BILLING: '90',
      MONITOR_COMPENSATION_MAX_ATTEMPTS: '2',
    });
    expect(p.maxBillingRequeues).toBe(5);
    expect(p.requeueBackoffBaseMs).toBe(500);
    expect(p.stuckAfterMs).toEqual({ inventory: 30_000, billing: 90_000, notification: 30_000 });
    expect(p.compensationRetry.maxAttempts).toBe(2);
  });

  it('waits out a compensation step Cosmos DB does not serve for MONITOR_COMPENSATION_OUTAGE_SECONDS, doubling from 15 s to 5 min', () => {
    expect(DEFAULT_MONITOR_POLICY.compensationOutage).toEqual({ firstWaitMs: 15_000, maxWaitMs: 300_000, giveUpAfterMs: 3_600_000 });
    expect(monitorPolicyFromSettings({ MONITOR_COMPENSATION_OUTAGE_SECONDS: '600' }).compensationOutage.giveUpAfterMs).toBe(600_000);
    expect(() => monitorPolicyFromSettings({ MONITOR_COMPENSATION_OUTAGE_SECONDS: '-1' })).toThrow(/MONITOR_COMPENSATION_OUTAGE_SECONDS/);
    const waits = [0, 1, 2, 3, 4, 5, 6, 60].map((n) => outageWaitMs(DEFAULT_MONITOR_POLICY.compensationOutage, n));
    expect(waits).toEqual([15_000, 30_000, 60_000, 120_000, 240_000, 300_000, 300_000, 300_000]);
  });

  it('a base set above its default bound raises the bound with it; both set, they must agree', () => {
    // Before, setting only the base failed every monitor ("must not be below"), although nothing was wrong.
    const p = monitorPolicyFromSettings({ MONITOR_REQUEUE_BACKOFF_SECONDS: '90', MONITOR_POLL_MIN_SECONDS: '120', MONITOR_COMPENSATION_FIRST_RETRY_SECONDS: '45' });
    expect(p.requeueBackoffBaseMs).toBe(90_000);
    expect(p.requeueBackoffMaxMs).toBe(90_000);
    expect(p.pollMinMs).toBe(120_000);
    expect(p.pollMaxMs).toBe(120_000);
    expect(p.compensationRetry).toMatchObject({ firstRetryIntervalMs: 45_000, maxRetryIntervalMs: 45_000 });
    // A bound set on purpose is kept, and one below its base is still refused.
    expect(monitorPolicyFromSettings({ MONITOR_REQUEUE_BACKOFF_SECONDS: '1', MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: '2' }).requeueBackoffMaxMs).toBe(2_000);
    expect(() => monitorPolicyFromSettings({ MONITOR_REQUEUE_BACKOFF_SECONDS: '90', MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: '60' })).toThrow(
      /MONITOR_REQUEUE_BACKOFF_MAX_SECONDS/,
    );
    expect(() =>
      monitorPolicyFromSettings({ MONITOR_COMPENSATION_FIRST_RETRY_SECONDS: '10', MONITOR_COMPENSATION_MAX_RETRY_SECONDS: '5' }),
    ).toThrow(/MONITOR_COMPENSATION_MAX_RETRY_SECONDS/);
  });

  it('names a bad setting and never guesses', () => {
    expect(() => monitorPolicyFromSettings({ MONITOR_MAX_BILLING_REQUEUES: 'three' })).toThrow(MonitorSettingsError);
    expect(() => monitorPolicyFromSettings({ MONITOR_MAX_BILLING_REQUEUES: 'three' })).toThrow(/MONITOR_MAX_BILLING_REQUEUES/);
    expect(() => monitorPolicyFromSettings({ MONITOR_POLL_MIN_SECONDS: '10', MONITOR_POLL_MAX_SECONDS: '5' })).toThrow(
      /MONITOR_POLL_MAX_SECONDS/,
    );
    expect(() => monitorPolicyFromSettings({ MONITOR_COMPENSATION_MAX_ATTEMPTS: '0' })).toThrow(MonitorSettingsError);
  });
});

describe('observe / onMonitorClock', () => {
  const docTime = (s: number) => new Date(Date.parse('2026-05-05T10:00:00.000Z') + s * 1000).toISOString();
  // The orchestration clock runs years away from the writers' clocks (a virtual clock in tests).
  const monitorNow = (s: number) => new Date(Date.parse('2030-01-01T00:00:00.000Z') + s * 1000);

  it('measures stuck from when the monitor first saw the last progress, not from the writer clock', () => {
    const snap = snapshot({ lastProgressAt: { inventory: docTime(0), billing: docTime(0), notification: docTime(0) } });
    const first = observe(undefined, snap, monitorNow(0));
    expect(decideNextStep(onMonitorClock(snap, first), policy(), monitorNow(0))).toMatchObject({ kind: 'wait' });
    const later = observe(first, snap, monitorNow(59));
    expect(later).toEqual(first);
    expect(decideNextStep(onMonitorClock(snap, later), policy(), monitorNow(59)).kind).toBe('wait');
    expect(decideNextStep(onMonitorClock(snap, later), policy(), monitorNow(60))).toMatchObject({ kind: 'republish', service: 'inventory' });
  });

  it('new progress restarts the stuck clock for that service only', () => {
    const before = snapshot({ lastProgressAt: { inventory: docTime(0), billing: docTime(0), notification: docTime(0) } });
    const seen = observe(undefined, before, monitorNow(0));
    const after = { ...before, lastProgressAt: { ...before.lastProgressAt, billing: docTime(3) } };
    const next = observe(seen, after, monitorNow(40));
    expect(next.progress.billing.seenAt).toBe(monitorNow(40).toISOString());
    expect(next.progress.inventory).toBe(seen.progress.inventory);
  });

  it('the requeue backoff starts when the monitor saw the dead-letter; a new dead-letter starts it again', () => {
    const dl = (at: string) =>
      snapshot({ status: { inventory: 'done', billing: 'deadlettered', notification: 'done' }, billingDeadLetteredAt: at });
    const seen = observe(undefined, dl(docTime(100)), monitorNow(7));
    expect(decideNextStep(onMonitorClock(dl(docTime(100)), seen), policy(), monitorNow(7))).toMatchObject({ kind: 'wait', until: monitorNow(12) });
    expect(decideNextStep(onMonitorClock(dl(docTime(100)), seen), policy(), monitorNow(12))).toMatchObject({ kind: 'requeueBilling' });
    const again = observe(seen, { ...dl(docTime(200)), billingRequeues: 1 }, monitorNow(30));
    expect(again.deadLetter).toEqual({ stamp: docTime(200), seenAt: monitorNow(30).toISOString() });
    const cleared = observe(again, snapshot(), monitorNow(31));
    expect(cleared.deadLetter).toBeUndefined();
  });
});

describe('compensationAskedSinceLastRun', () => {
  const at = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
  const asked = (s: number, actor: string) => ({ at: at(s), kind: TIMELINE.supportAction, detail: 'compensate', actor });
  const started = (s: number, run: number) => ({ at: at(s), kind: TIMELINE.compensationStarted, detail: `run ${run}`, actor: 'monitor' });

  it("is the person's request no run has begun yet, so an earlier run's late activity leaves the order to the next run", () => {
    const order = orderDocument({
      state: 'compensating',
      timeline: [started(1, 1), { at: at(2), kind: TIMELINE.attention, reason: 'compensation could not finish: refundPayment' }, asked(3, 'bo@contoso.com')],
    });
    expect(compensationAskedSinceLastRun(order)).toEqual({ by: 'bo@contoso.com', at: at(3) });
  });

  it('goes by the order the entries were written, not by clocks of different machines', () => {
    // Same millisecond, the request written after the run began: the request is still to be carried out.
    expect(compensationAskedSinceLastRun(orderDocument({ timeline: [started(5, 1), asked(5, 'bo@contoso.com')] }))).toEqual({ by: 'bo@contoso.com', at: at(5) });
    // The API's clock ahead of the worker's: run 2 began after the request, though stamped before it.
    expect(compensationAskedSinceLastRun(orderDocument({ timeline: [started(1, 1), asked(9, 'bo@contoso.com'), started(7, 2)] }))).toBeUndefined();
  });

  it('is nothing once a run began after the request, or when nobody asked', () => {
    expect(compensationAskedSinceLastRun(orderDocument({ timeline: [asked(1, 'bo@contoso.com'), started(2, 1)] }))).toBeUndefined();
    expect(compensationAskedSinceLastRun(orderDocument({ timeline: [started(1, 1), asked(2, 'bo@contoso.com'), started(3, 2)] }))).toBeUndefined();
    expect(compensationAskedSinceLastRun(orderDocument({ timeline: [started(1, 1)] }))).toBeUndefined();
  });
});

describe('pendingRequeueRequest', () => {
  const at = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
  const asked = (s: number) => ({ at: at(s), kind: TIMELINE.supportAction, detail: 'requeue', actor: 'bo@contoso.com', service: 'billing' as const });
  const requeued = (s: number) => ({ at: at(s), kind: TIMELINE.requeued, service: 'billing' as const, actor: 'monitor', detail: 'attempt 1' });

  it.each([
    ['asked', [asked(1)], true],
    ['asked, then carried out', [asked(1), requeued(2)], false],
    ['carried out, then asked again in the same millisecond', [requeued(3), asked(3)], true],
  ] as const)('agrees with the monitor on whether a requeue is pending: %s', (_, timeline, pending) => {
    const order = orderDocument({ timeline: [...timeline] });
    expect(pendingRequeueRequest(order.timeline) !== undefined).toBe(pending);
    expect(monitorSnapshotOf(order).requeueRequestedBy !== undefined).toBe(pending);
  });

  it('goes by the order the entries were written: a requeue written after the request carried it out, whatever its clock said', () => {
    expect(pendingRequeueRequest([asked(9), requeued(7)])).toBeUndefined();
  });
});

describe('isNotedDeadLetter', () => {
  it('reads a dead-letter as only noted by the reason written after its message id, not by a "; " a sender put in the id', () => {
    expect(isNotedDeadLetter(notedDeadLetterDetail('event-1', notedWhy.inPlay(2, 'billing')))).toBe(true);
    expect(isNotedDeadLetter(notedDeadLetterDetail('event-1', notedWhy.finished('inventory', 'done', 'completed')))).toBe(true);
    // The same id with "; " in it, noted: the reason still reads.
    expect(isNotedDeadLetter(notedDeadLetterDetail('a; b', notedWhy.finished('billing', 'compensated', 'cancelled')))).toBe(true);
    // As written before a dead-letter named its order's state.
    expect(isNotedDeadLetter('message event-1; billing already compensated')).toBe(true);
    // Recorded: the message's own id holds "; " (a message another sender wrote, naming an existing order).
    expect(isNotedDeadLetter(deadLetterMarker('batch-7; retry 2'))).toBe(false);
    expect(isNotedDeadLetter(deadLetterMarker('a; b'))).toBe(false);
    expect(isNotedDeadLetter(deadLetterMarker(undefined))).toBe(false);
  });
});
