/**
 * Properties of the order monitor's policy that support relies on, over orders and policies
 * fast-check makes up.
 *
 * The first part asks `decideNextStep` about any snapshot an order can show: a terminal order is
 * left alone, all three services done is completed and never compensated, a business failure is
 * compensated and never sent again, a wait ends after now and no later than the first thing due.
 *
 * The second part drives the monitor over one simulated order, turn by turn as
 * orchestrators/orderMonitor.ts does, with the real activities of activities/monitorActivities.ts,
 * the real consumers, dead-letter handler and support actions, over the in-memory stores. The
 * consumers and the activities misbehave at random (messages lost, late, dead-lettered, hosts that
 * die after a claim, activities that fail or run twice, compensation runs that never finish), and
 * the monitor must still end the order, within bounded turns and virtual time, without passing the
 * policy's bounds on republishes, requeues and compensation runs.
 */
import type { InvocationContext } from '@azure/functions';
import fc from 'fast-check';
import {
  BACKLOG_RECHECK_MAX_MS,
  billingRequeuesMadeOf,
  DEFAULT_MONITOR_POLICY,
  MAX_RUN_RESUMES,
  compensationRunsStarted,
  MONITOR_ACTOR,
  REPUBLISH_REASON,
  TIMELINE,
  UNTRIED_REQUEUES_FREE,
  decideNextStep,
  monitorPolicyFromSettings,
  monitorSnapshotOf,
  noteBacklogCheck,
  observe,
  pollIntervalMs,
  turnSnapshot,
  type BacklogCheck,
  type BacklogSighting,
  type MonitorObservations,
  type MonitorPolicy,
  type MonitorSnapshot,
  type Step,
} from '../../src/domain/monitorPolicy';
import { LOW_STOCK_SKU } from '../../src/domain/catalog';
import type { OrderDocument, OrderState, ServiceStatus } from '../../src/domain/order';
import { IN_FLIGHT, newOrder } from '../../src/domain/orderState';
import { createLogger } from '../../src/log';
import { finishCompensationRun, noteRunUnderway } from '../../src/services/compensationOutcome';
import { consumeDelivery, consumeOrderCreated } from '../../src/services/consumers';
import type { OrderSagaDependencies } from '../../src/services/dependencies';
import type { EventPublisher, MonitorClient, MonitorStatus, OrderChangeNotice, OutgoingMessage } from '../../src/services/ports';
import { publishOrderCreated } from '../../src/services/publishing';
import { requestCompensation, requestRequeue } from '../../src/support/actions';
import { recordDeadLetter, type DeadLetteredMessage, type DeadLetterRecord } from '../../src/support/deadLetters';
import type { SupportPrincipal } from '../../src/support/principal';
import { MAX_DELIVERY_COUNT, MAX_DELIVERY_COUNT_EXCEEDED, SERVICES, TARGET_PROPERTY, type ServiceName } from '../../src/topology';
import type { CompensationStart, UnansweredBegin } from '../../orchestrators/names';
import { searchOptions } from './support/searchOptions';
import { memoryDependencies, type MemoryOrderStore } from './support/memoryStores';

// The monitor's activities run for real: the durable SDK only hands their handlers over here,
// `appDependencies()` is the simulated world's stores, and a backlog check peeks its subscription.
type Handler = (input: unknown, context: InvocationContext) => Promise<unknown> | unknown;
const mockActivities = new Map<string, Handler>();
const mockWorld: { current?: World } = {};
jest.mock('durable-functions', () => ({
  app: { activity: (name: string, options: { handler: Handler }) => mockActivities.set(name, options.handler) },
}));
jest.mock('../../src/services/dependencies', () => ({
  ...jest.requireActual('../../src/services/dependencies'),
  appDependencies: () => mockWorld.current!.deps,
}));
jest.mock('../../src/azure/subscriptionBacklog', () => ({
  oldestWaitingMessage: async (service: ServiceName) => mockWorld.current!.oldestWaiting(service),
}));
// Required after the mocks' holders exist: the SDK's mock registers into them on load.
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../../activities/monitorActivities');

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const silentSink = { info: () => undefined, warn: () => undefined, error: () => undefined };
const silent = createLogger(silentSink);
const ACTIVE: readonly OrderState[] = ['accepted', 'processing'];
const TERMINAL: readonly OrderState[] = ['completed', 'cancelled', 'attention'];

// ---------------------------------------------------------------------------------------------
// Policies: what the app settings can produce, and policies carried in a history from before the
// doubling wait between republishes and the backlog checks existed.

const policyArb: fc.Arbitrary<MonitorPolicy> = fc
  .record({
    requeues: fc.integer({ min: 0, max: 4 }),
    backoffS: fc.integer({ min: 0, max: 30 }),
    backoffExtraS: fc.integer({ min: 0, max: 120 }),
    stuckS: fc.tuple(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 300 })),
    republishes: fc.integer({ min: 0, max: 3 }),
    backlogWaitS: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3_600 })),
    pollMinS: fc.integer({ min: 0, max: 60 }),
    pollExtraS: fc.integer({ min: 0, max: 300 }),
    runs: fc.integer({ min: 1, max: 4 }),
    era: fc.constantFrom('current', 'before-doubling', 'before-backlog-checks', 'before-both'),
  })
  .map((s) => {
    const policy = monitorPolicyFromSettings({
      MONITOR_MAX_BILLING_REQUEUES: String(s.requeues),
      MONITOR_REQUEUE_BACKOFF_SECONDS: String(s.backoffS),
      MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: String(s.backoffS + s.backoffExtraS),
      MONITOR_STUCK_AFTER_SECONDS_INVENTORY: String(s.stuckS[0]),
      MONITOR_STUCK_AFTER_SECONDS_BILLING: String(s.stuckS[1]),
      MONITOR_STUCK_AFTER_SECONDS_NOTIFICATION: String(s.stuckS[2]),
      MONITOR_MAX_REPUBLISHES: String(s.republishes),
      MONITOR_BACKLOG_WAIT_SECONDS: String(s.backlogWaitS),
      MONITOR_POLL_MIN_SECONDS: String(s.pollMinS),
      MONITOR_POLL_MAX_SECONDS: String(Math.max(1, s.pollMinS) + s.pollExtraS),
      MONITOR_MAX_COMPENSATION_RUNS: String(s.runs),
    });
    const { stuckBackoffCoefficient: _doubling, maxBacklogWaitMs: _checks, ...older } = policy;
    if (s.era === 'before-doubling') return { ...older, maxBacklogWaitMs: policy.maxBacklogWaitMs };
    if (s.era === 'before-backlog-checks') return { ...older, stuckBackoffCoefficient: policy.stuckBackoffCoefficient };
    if (s.era === 'before-both') return older;
    return policy;
  });

/** The longest a wait can last: the polls catch a lost wake-up, and a requeue is never put off longer than its backoff. */
const longestWaitMs = (p: MonitorPolicy) => Math.max(p.pollMaxMs, p.requeueBackoffMaxMs);

// ---------------------------------------------------------------------------------------------
// Snapshots, on the monitor's clock (as `onMonitorClock` hands them over): every time is at or
// before `now`, and a backlog check is of the service's latest progress.

const statusArb = fc.constantFrom<ServiceStatus>('pending', 'processing', 'done', 'failed', 'deadlettered', 'compensated');
const stateArb = fc.constantFrom<OrderState>('accepted', 'processing', 'compensating', 'completed', 'cancelled', 'attention');
const personArb = fc.option(fc.constantFrom('ana@contoso.com', 'bo@contoso.com'), { nil: undefined });
const subsetArb = (of: ServiceName[]) => fc.subarray(of).map((s) => (s.length ? s : undefined));
/** Seconds before now. */
const agoArb = fc.integer({ min: 0, max: 4 * 3_600 });
const backlogArb = fc.option(
  fc.record({ checkFraction: fc.double({ min: 0, max: 1, noNaN: true }), sinceFraction: fc.double({ min: 0, max: 1, noNaN: true }), waiting: fc.boolean(), waits: fc.integer({ min: 1, max: 8 }), oldest: fc.boolean() }),
  { nil: undefined },
);

interface Situation {
  snapshot: MonitorSnapshot;
  now: Date;
}

const situationArb: fc.Arbitrary<Situation> = fc
  .record({
    nowS: fc.integer({ min: 0, max: 30 * 24 * 3_600 }),
    state: stateArb,
    status: fc.tuple(statusArb, statusArb, statusArb),
    progressAgo: fc.tuple(agoArb, agoArb, agoArb),
    deadLetterAgo: fc.option(agoArb, { nil: undefined }),
    deadLettered: subsetArb(['inventory', 'notification']),
    unsentTo: subsetArb([...SERVICES]),
    billingRequeues: fc.integer({ min: 0, max: 6 }),
    billingRequeuesUntried: fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }),
    republishes: fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 })),
    requeueRequestedBy: personArb,
    requeueUnsentBy: fc.option(fc.constantFrom(MONITOR_ACTOR, 'ana@contoso.com'), { nil: undefined }),
    compensationRequestedBy: personArb,
    compensationAskedAgainBy: personArb,
    compensationRuns: fc.integer({ min: 0, max: 5 }),
    latestRunUnheard: fc.option(fc.constant(true), { nil: undefined }),
    latestRunNeverUnderway: fc.option(fc.constant(true), { nil: undefined }),
    quietPolls: fc.integer({ min: 0, max: 12 }),
    backlog: fc.tuple(backlogArb, backlogArb, backlogArb),
  })
  .map((g) => {
    const nowMs = T0 + g.nowS * 1000;
    const status = { inventory: g.status[0], billing: g.status[1], notification: g.status[2] };
    const lastProgressAt = Object.fromEntries(SERVICES.map((s, i) => [s, iso(nowMs - g.progressAgo[i] * 1000)])) as Record<ServiceName, string>;
    const backlog: Partial<Record<ServiceName, BacklogSighting>> = {};
    SERVICES.forEach((s, i) => {
      const b = g.backlog[i];
      if (!b) return;
      const progressMs = Date.parse(lastProgressAt[s]);
      const checkedMs = Math.round(progressMs + b.checkFraction * (nowMs - progressMs));
      const sinceMs = Math.round(progressMs + b.sinceFraction * (checkedMs - progressMs));
      backlog[s] = {
        progressSeenAt: lastProgressAt[s],
        checkedAt: iso(checkedMs),
        waiting: b.waiting,
        ...(b.waiting ? { waitingSince: iso(sinceMs) } : {}),
        waits: b.waiting ? b.waits : 0,
        ...(b.oldest ? { oldestEnqueuedAt: iso(sinceMs - 60_000) } : {}),
      };
    });
    const billingDead = status.billing === 'deadlettered';
    const snapshot: MonitorSnapshot = {
      orderId: 'o-1',
      state: g.state,
      status,
      statusReason: SERVICES.some((s) => status[s] === 'failed') ? { [SERVICES.find((s) => status[s] === 'failed')!]: 'out of stock' } : {},
      lastProgressAt,
      ...(billingDead ? { billingDeadLetteredAt: g.deadLetterAgo === undefined ? lastProgressAt.billing : iso(nowMs - g.deadLetterAgo * 1000) } : {}),
      ...(g.deadLettered ? { deadLettered: g.deadLettered.filter((s) => IN_FLIGHT.includes(status[s])) } : {}),
      ...(g.unsentTo ? { unsentTo: g.unsentTo.filter((s) => IN_FLIGHT.includes(status[s])) } : {}),
      billingRequeues: g.billingRequeues,
      ...(g.billingRequeuesUntried !== undefined ? { billingRequeuesUntried: g.billingRequeuesUntried } : {}),
      republishes: { inventory: g.republishes[0], billing: g.republishes[1], notification: g.republishes[2] },
      ...(g.requeueRequestedBy ? { requeueRequestedBy: g.requeueRequestedBy } : {}),
      ...(g.requeueUnsentBy && IN_FLIGHT.includes(status.billing) ? { requeueUnsentBy: g.requeueUnsentBy } : {}),
      ...(g.compensationRequestedBy ? { compensationRequestedBy: g.compensationRequestedBy } : {}),
      ...(g.state === 'compensating' ? { compensationReason: 'billing failed' } : {}),
      ...(g.state === 'compensating' && g.compensationAskedAgainBy ? { compensationAskedAgainBy: g.compensationAskedAgainBy } : {}),
      compensationRuns: g.compensationRuns,
      ...(g.latestRunUnheard ? { latestRunUnheard: true } : {}),
      ...(g.state === 'compensating' && g.latestRunNeverUnderway ? { latestRunNeverUnderway: true as const } : {}),
      quietPolls: g.quietPolls,
      ...(Object.keys(backlog).length ? { backlog } : {}),
    };
    return { snapshot, now: new Date(nowMs) };
  });

const allDone = (s: MonitorSnapshot) => SERVICES.every((service) => s.status[service] === 'done');
const isAction = (step: Step) => step.kind !== 'wait';

describe('decideNextStep, for any order and any policy the settings allow', () => {
  const runs = searchOptions(400);

  it('leaves a terminal order alone: done, with the order\'s state as the outcome', () => {
    fc.assert(
      fc.property(situationArb, policyArb, fc.constantFrom(...TERMINAL), ({ snapshot, now }, policy, state) => {
        expect(decideNextStep({ ...snapshot, state }, policy, now)).toEqual({ kind: 'done', outcome: state });
      }),
      runs,
    );
  });

  it('completes an active order whose three services are done, and never compensates it, whoever asked', () => {
    fc.assert(
      fc.property(situationArb, policyArb, fc.constantFrom(...ACTIVE), ({ snapshot, now }, policy, state) => {
        const done = { ...snapshot, state, status: { inventory: 'done', billing: 'done', notification: 'done' } } as MonitorSnapshot;
        expect(decideNextStep(done, policy, now)).toEqual({ kind: 'markCompleted' });
      }),
      runs,
    );
  });

  it('compensates an active order a service failed for a business reason: never sends it again, never waits', () => {
    fc.assert(
      fc.property(situationArb, policyArb, fc.constantFrom(...ACTIVE), fc.constantFrom(...SERVICES), ({ snapshot, now }, policy, state, service) => {
        const failed: MonitorSnapshot = { ...snapshot, state, status: { ...snapshot.status, [service]: 'failed' } };
        const step = decideNextStep(failed, policy, now);
        expect(step.kind).toBe('compensate');
        // A person's request is carried out as theirs; otherwise the reason names what failed.
        if (step.kind === 'compensate' && !failed.compensationRequestedBy) expect(step.reason).toMatch(/ failed/);
      }),
      runs,
    );
  });

  it('carries a compensation once begun on, or escalates it once its runs are used up; nothing else overtakes it', () => {
    fc.assert(
      fc.property(situationArb, policyArb, ({ snapshot, now }, policy) => {
        const compensating: MonitorSnapshot = { ...snapshot, state: 'compensating', compensationReason: 'billing failed' };
        const step = decideNextStep(compensating, policy, now);
        // A latest run never carried out (unheard, or never taken up) is carried out, not escalated as tried.
        const notCarriedOut = compensating.latestRunUnheard || compensating.latestRunNeverUnderway;
        const usedUp = compensating.compensationRuns >= policy.maxCompensationRuns && !notCarriedOut;
        expect(step.kind).toBe(usedUp ? 'markAttention' : 'compensate');
        // Resumed only as the monitor's own carrying on: a person's request made since is a run of its own.
        if (step.kind === 'compensate') expect(step.resume === true).toBe(!!compensating.latestRunNeverUnderway && !compensating.compensationAskedAgainBy);
      }),
      runs,
    );
  });

  it('acts on an active order only within the bounds: republishes and backlog checks to services in flight, automatic requeues before the last', () => {
    fc.assert(
      fc.property(situationArb, policyArb, fc.constantFrom(...ACTIVE), ({ snapshot: s, now }, policy, state) => {
        const snapshot = { ...s, state };
        const step = decideNextStep(snapshot, policy, now);
        switch (step.kind) {
          case 'republish':
            expect(IN_FLIGHT).toContain(snapshot.status[step.service]);
            expect(step.attempt).toBe(snapshot.republishes[step.service] + 1);
            expect(step.attempt).toBeLessThanOrEqual(policy.maxRepublishes);
            break;
          case 'checkBacklog':
            // Not for a message known gone or never sent, and not when the checks are off.
            expect(IN_FLIGHT).toContain(snapshot.status[step.service]);
            expect(policy.maxBacklogWaitMs ?? 0).toBeGreaterThan(0);
            expect(snapshot.deadLettered ?? []).not.toContain(step.service);
            expect(snapshot.unsentTo ?? []).not.toContain(step.service);
            break;
          case 'requeueBilling':
            // A person's step is the unsent requeue's only when no request of theirs is pending (that is a new requeue).
            const unsentStep = step.requestedBy === (snapshot.requeueUnsentBy === MONITOR_ACTOR ? undefined : snapshot.requeueUnsentBy);
            const pendingRequest = step.requestedBy !== undefined && step.requestedBy === snapshot.requeueRequestedBy;
            if (snapshot.requeueUnsentBy !== undefined && IN_FLIGHT.includes(snapshot.status.billing) && unsentStep && !pendingRequest) {
              // The send of a requeue already written: no new one, so no bound is used.
              if (step.requestedBy === undefined) expect(step.attempt).toBe(billingRequeuesMadeOf(snapshot));
            } else if (step.requestedBy === undefined) {
              expect(snapshot.status.billing).toBe('deadlettered');
              expect(snapshot.billingRequeues).toBeLessThan(policy.maxBillingRequeues);
            } else {
              expect(step.requestedBy).toBe(snapshot.requeueRequestedBy);
              expect([...IN_FLIGHT, 'deadlettered']).toContain(snapshot.status.billing);
            }
            break;
          case 'compensate':
          case 'wait':
          case 'markCompleted':
            break;
          default:
            throw new Error(`an active order got ${step.kind}`);
        }
        // Nothing is sent to a service once another failed for a business reason.
        if (SERVICES.some((service) => snapshot.status[service] === 'failed')) expect(['republish', 'requeueBilling', 'checkBacklog']).not.toContain(step.kind);
      }),
      runs,
    );
  });

  it('carries out a person\'s requeue of a dead-lettered billing at once, past the automatic bound and without the backoff', () => {
    fc.assert(
      fc.property(situationArb, policyArb, fc.constantFrom(...ACTIVE), ({ snapshot: s, now }, policy, state) => {
        const snapshot: MonitorSnapshot = {
          ...s,
          state,
          status: { ...s.status, billing: 'deadlettered' },
          billingDeadLetteredAt: iso(now.getTime()),
          requeueRequestedBy: 'ana@contoso.com',
          compensationRequestedBy: undefined,
        };
        fc.pre(!SERVICES.some((service) => snapshot.status[service] === 'failed'));
        expect(decideNextStep(snapshot, policy, now)).toEqual({ kind: 'requeueBilling', attempt: snapshot.billingRequeues + 1, requestedBy: 'ana@contoso.com' });
      }),
      runs,
    );
  });

  it('waits only until a time after now, and never longer than the longest poll or requeue backoff', () => {
    fc.assert(
      fc.property(situationArb, policyArb, ({ snapshot, now }, policy) => {
        const step = decideNextStep(snapshot, policy, now);
        if (step.kind !== 'wait') return;
        expect(step.until.getTime()).toBeGreaterThan(now.getTime());
        expect(step.until.getTime() - now.getTime()).toBeLessThanOrEqual(longestWaitMs(policy));
        // Awaiting a requeue is said only of a dead-lettered billing.
        expect(step.phase === 'awaiting-requeue').toBe(snapshot.status.billing === 'deadlettered');
      }),
      runs,
    );
  });

  it('sleeps through nothing: no step falls due before a wait ends, and a wait for a deadline ends with a step', () => {
    fc.assert(
      fc.property(situationArb, policyArb, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), ({ snapshot, now }, policy, fraction) => {
        const step = decideNextStep(snapshot, policy, now);
        if (step.kind !== 'wait') return;
        const span = step.until.getTime() - now.getTime();
        const during = new Date(now.getTime() + Math.floor(fraction * span));
        expect(decideNextStep(snapshot, policy, during).kind).toBe('wait');
        // The wait named a deadline (a stuck service, a backlog check, a requeue's backoff), not
        // only the next poll: when it comes, the monitor acts.
        const next = step.why.split('; next: ').at(-1);
        if (next !== 'poll') expect(isAction(decideNextStep(snapshot, policy, step.until))).toBe(true);
      }),
      runs,
    );
  });

  it('is a pure function: the same answer for the same snapshot, which it leaves as it was', () => {
    fc.assert(
      fc.property(situationArb, policyArb, ({ snapshot, now }, policy) => {
        const before = structuredClone({ snapshot, policy });
        const first = decideNextStep(snapshot, policy, now);
        expect({ snapshot, policy }).toEqual(before);
        expect(decideNextStep(snapshot, policy, new Date(now.getTime()))).toEqual(first);
      }),
      runs,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The monitor over a simulated order

/** What becomes of one delivery of a message, in the order deliveries happen. */
type Fate =
  /** Delivered to the consumer, which does its work (billing's simulated failures throw). */
  | 'work'
  /** The consumer's host dies after its claim: the message comes back after its lock, or is dead-lettered after the last delivery. */
  | 'crash'
  /** Gone without a trace. */
  | 'lost'
  /** Behind a backlog: not delivered yet. */
  | 'late'
  /** Dead-lettered by the broker, found by the dead-letter sweep a little later. */
  | 'deadletter';

/** How a monitor action fares: carried out; failed after its retries with nothing written; or written, with every retry failing all the same. */
type ActionFate = 'ok' | 'failed' | 'unheard';
/**
 * How a compensation run's sub-orchestration ends: with its outcome recorded; failed after it took
 * the run up (noted it under way); or failed before that, leaving the run looking never carried out.
 */
type RunEnd = 'cancelled' | 'attention' | 'unfinished' | 'failed-before-underway';

interface Scenario {
  policy: MonitorPolicy;
  fates: Fate[];
  /** Every delivery once `fates` are used up. */
  afterwards: Fate;
  lateMs: number[];
  billingFailures: number;
  /** Of a SKU with 3 in stock: more is out of stock, a business failure. */
  quantity: number;
  publishFails: boolean;
  actions: ActionFate[];
  /** Per action: the engine ran the activity twice (at least once is its promise). */
  twice: boolean[];
  runEnds: RunEnd[];
  /** Another order's message in a subscription, ahead of this order's, for a while. */
  backlog?: { service: ServiceName; fromMs: number; forMs: number };
  backlogCheckFails: boolean[];
  support: { atMs: number; action: 'requeue' | 'compensate' }[];
  /** How far the writers' and the broker's clocks are from the orchestration's. */
  skewMs: number;
  /** Turns before which the monitor failed and the sweeper started a new one, with no memory but the order. */
  restarts: number[];
}

const MINUTE = 60_000;
/** A message's lock, after which a delivery whose host died comes back. */
const LOCK_MS = 30_000;
/** Between a failed delivery and the next. */
const RETRY_MS = 1_000;
/** Between a dead-letter and the sweep recording it. */
const SWEEP_MS = 20_000;
/** How long an activity takes. */
const ACTION_MS = 500;
const MAX_LATE_MS = 20 * MINUTE;
/** Far more turns than any order needs; a monitor that loops runs into it. */
const MAX_TURNS = 5_000;

const scenarioArb = (
  over: {
    fates?: fc.Arbitrary<Fate[]>;
    afterwards?: fc.Arbitrary<Fate>;
    quantity?: fc.Arbitrary<number>;
    support?: boolean;
    restarts?: boolean | fc.Arbitrary<number[]>;
    actions?: fc.Arbitrary<ActionFate[]>;
  } = {},
) =>
  fc.record<Scenario>({
    policy: policyArb,
    fates: over.fates ?? fc.array(fc.constantFrom<Fate>('work', 'crash', 'lost', 'late', 'deadletter'), { maxLength: 40 }),
    afterwards: over.afterwards ?? fc.constantFrom<Fate>('work', 'lost'),
    lateMs: fc.array(fc.integer({ min: 0, max: MAX_LATE_MS }), { minLength: 1, maxLength: 8 }),
    billingFailures: fc.integer({ min: 0, max: 8 }),
    quantity: over.quantity ?? fc.integer({ min: 1, max: 4 }),
    publishFails: fc.boolean(),
    actions: over.actions ?? fc.array(fc.constantFrom<ActionFate>('ok', 'ok', 'ok', 'failed', 'unheard'), { maxLength: 20 }),
    twice: fc.array(fc.boolean(), { maxLength: 20 }),
    runEnds: fc.array(fc.constantFrom<RunEnd>('cancelled', 'attention', 'unfinished', 'failed-before-underway'), { maxLength: 6 }),
    backlog: fc.option(
      fc.record({ service: fc.constantFrom(...SERVICES), fromMs: fc.integer({ min: 0, max: 30 * MINUTE }), forMs: fc.integer({ min: 0, max: 3 * 3_600_000 }) }),
      { nil: undefined },
    ),
    backlogCheckFails: fc.array(fc.boolean(), { maxLength: 10 }),
    support: over.support
      ? fc.array(fc.record({ atMs: fc.integer({ min: 0, max: 2 * 3_600_000 }), action: fc.constantFrom<'requeue' | 'compensate'>('requeue', 'compensate') }), { maxLength: 3 })
      : fc.constant([]),
    skewMs: fc.constant(0),
    restarts:
      typeof over.restarts === 'object' ? over.restarts : over.restarts ? fc.array(fc.integer({ min: 0, max: 120 }), { maxLength: 3 }) : fc.constant([]),
  });

/** The i-th of a script, or `otherwise` once it is used up. */
const nth = <T>(list: readonly T[], i: number, otherwise: T): T => (i < list.length ? list[i]! : otherwise);

interface Queued {
  messageId: string;
  body: unknown;
  /** The broker's clock. */
  enqueuedAt: number;
  deliveries: number;
  dueAt: number;
}

interface Sweep {
  dueAt: number;
  service: ServiceName;
  message: DeadLetteredMessage;
}

const ORDER_ID = 'order-1';
const ana: SupportPrincipal = { name: 'ana@contoso.com', roles: ['support'], source: 'app-service-auth' };
const bea: SupportPrincipal = { name: 'bea@contoso.com', roles: ['support'], source: 'app-service-auth' };

/** One order, its three subscriptions, the dead-letter sweep and support staff, on a virtual clock. */
class World implements EventPublisher, MonitorClient {
  /** The orchestration's clock. */
  clock = T0;
  private lastStamp = 0;
  readonly deps: OrderSagaDependencies & { orders: MemoryOrderStore };
  readonly subscriptions: Record<ServiceName, Queued[]> = { inventory: [], billing: [], notification: [] };
  private readonly accepted = new Set<string>();
  private readonly sweeps: Sweep[] = [];
  private readonly support: { atMs: number; action: 'requeue' | 'compensate' }[];
  private deliveries = 0;
  private lates = 0;
  private backlogChecks = 0;
  private crashing = false;
  /** OrderChanged events raised on the monitor. */
  changes = 0;
  monitorRunning = true;
  monitorStarted = false;

  constructor(readonly scenario: Scenario) {
    const base = memoryDependencies();
    this.deps = {
      ...base,
      publisher: this,
      now: () => this.stamp(),
      sleep: async () => {
        if (this.crashing) throw new Error('the host died');
      },
    };
    this.support = scenario.support.map((s) => ({ ...s, atMs: T0 + s.atMs }));
  }

  /** The writers' clock: the orchestration's, off by the skew, and never the same twice. */
  stamp(): string {
    this.lastStamp = Math.max(this.clock + this.scenario.skewMs, this.lastStamp + 1);
    return iso(this.lastStamp);
  }

  private get env() {
    return { deps: this.deps, monitor: this, log: silent };
  }

  async publish(message: OutgoingMessage): Promise<void> {
    // Duplicate detection on the topic drops a messageId it has taken before.
    if (this.accepted.has(message.messageId)) return;
    this.accepted.add(message.messageId);
    const target = message.applicationProperties[TARGET_PROPERTY] as ServiceName | undefined;
    for (const service of target ? [target] : SERVICES) {
      this.subscriptions[service].push({ messageId: message.messageId, body: structuredClone(message.body), enqueuedAt: this.clock + this.scenario.skewMs, deliveries: 0, dueAt: this.clock + 200 });
    }
  }

  async start(): Promise<'started' | 'exists'> {
    if (this.monitorRunning) return 'exists';
    this.monitorRunning = true;
    this.monitorStarted = true;
    return 'started';
  }

  async status(): Promise<MonitorStatus | null> {
    return { runtimeStatus: this.monitorRunning ? 'Running' : 'Completed', customStatus: null };
  }

  async notifyOrderChanged(_orderId: string, _change: OrderChangeNotice): Promise<void> {
    this.changes += 1;
  }

  /** When the subscription's oldest message was enqueued, as a peek shows it (the broker's clock). */
  oldestWaiting(service: ServiceName): Date | undefined {
    if (nth(this.scenario.backlogCheckFails, this.backlogChecks++, false)) throw new Error('Service Bus did not answer');
    const times = this.subscriptions[service].map((m) => m.enqueuedAt);
    const other = this.scenario.backlog;
    if (other && other.service === service && this.clock >= T0 + other.fromMs && this.clock < T0 + other.fromMs + other.forMs) {
      times.push(T0 + this.scenario.skewMs);
    }
    return times.length ? new Date(Math.min(...times)) : undefined;
  }

  async createOrder(): Promise<OrderDocument> {
    const order = newOrder({
      id: ORDER_ID,
      eventId: 'event-1',
      correlationId: 'corr-1',
      customerId: 'c-1',
      items: [{ sku: LOW_STOCK_SKU, quantity: this.scenario.quantity, unitPrice: 10 }],
      total: 10 * this.scenario.quantity,
      now: this.stamp(),
      simulate: { billingFailures: this.scenario.billingFailures },
    });
    await this.deps.orders.create(order);
    if (this.scenario.publishFails) {
      await this.deps.orders.appendTimeline(ORDER_ID, { at: this.stamp(), kind: TIMELINE.publishFailed, reason: 'Service Bus did not take the event' });
    } else {
      await publishOrderCreated(order, this.deps);
    }
    return (await this.deps.orders.get(ORDER_ID))!;
  }

  async order(): Promise<OrderDocument> {
    return (await this.deps.orders.get(ORDER_ID))!;
  }

  /** The next thing the environment does: a delivery, a sweep or a person's request, earliest first. */
  private nextEvent(): { at: number; run: () => Promise<void> } | undefined {
    let best: { at: number; run: () => Promise<void> } | undefined;
    const consider = (at: number, run: () => Promise<void>) => {
      if (!best || at < best.at) best = { at, run };
    };
    for (const service of SERVICES) {
      for (const message of this.subscriptions[service]) consider(message.dueAt, () => this.deliver(service, message));
    }
    for (const sweep of this.sweeps) consider(sweep.dueAt, () => this.sweep(sweep));
    for (const request of this.support) consider(request.atMs, () => this.ask(request));
    return best;
  }

  /**
   * Lets the environment act until `until`. Stops early, at the event that did it, when the
   * monitor was woken (`untilChange`) or started again (`untilStart`). True when it stopped early.
   */
  async runUntil(until: number, stop: 'change' | 'start' | 'none'): Promise<boolean> {
    const changes = this.changes;
    for (;;) {
      const event = this.nextEvent();
      if (!event || event.at >= until) break;
      this.clock = Math.max(this.clock, event.at);
      await event.run();
      if (stop === 'change' && this.changes > changes) return true;
      if (stop === 'start' && this.monitorStarted) return true;
    }
    if (Number.isFinite(until)) this.clock = Math.max(this.clock, until);
    return false;
  }

  private remove(service: ServiceName, message: Queued): void {
    this.subscriptions[service] = this.subscriptions[service].filter((m) => m !== message);
  }

  private deadLetter(service: ServiceName, message: Queued): void {
    this.remove(service, message);
    this.sweeps.push({
      dueAt: this.clock + SWEEP_MS,
      service,
      message: { body: message.body, messageId: message.messageId, deliveryCount: MAX_DELIVERY_COUNT, deadLetterReason: MAX_DELIVERY_COUNT_EXCEEDED, orderId: ORDER_ID, correlationId: 'corr-1' },
    });
  }

  private async deliver(service: ServiceName, message: Queued): Promise<void> {
    const fate = nth(this.scenario.fates, this.deliveries++, this.scenario.afterwards);
    const delivery = () => ({ body: message.body, messageId: message.messageId, deliveryCount: (message.deliveries += 1), orderId: ORDER_ID, correlationId: 'corr-1' });
    switch (fate) {
      case 'lost':
        this.remove(service, message);
        return;
      case 'late':
        message.dueAt = this.clock + nth(this.scenario.lateMs, this.lates++ % this.scenario.lateMs.length, 0);
        return;
      case 'deadletter':
        this.deadLetter(service, message);
        return;
      case 'crash':
        this.crashing = true;
        try {
          await consumeOrderCreated(service, delivery(), this.env);
        } catch {
          // The host died after the claim: nothing after it ran.
        } finally {
          this.crashing = false;
        }
        if (message.deliveries >= MAX_DELIVERY_COUNT) this.deadLetter(service, message);
        else message.dueAt = this.clock + LOCK_MS;
        return;
      case 'work':
        try {
          await consumeDelivery(service, delivery(), this.env);
          this.remove(service, message);
        } catch {
          // The last delivery's failure recorded the dead-letter itself.
          if (message.deliveries >= MAX_DELIVERY_COUNT) this.remove(service, message);
          else message.dueAt = this.clock + RETRY_MS;
        }
        return;
    }
  }

  private async sweep(sweep: Sweep): Promise<void> {
    this.sweeps.splice(this.sweeps.indexOf(sweep), 1);
    await recordDeadLetter(sweep.service, sweep.message, this.env);
  }

  private async ask(request: { atMs: number; action: 'requeue' | 'compensate' }): Promise<void> {
    this.support.splice(this.support.indexOf(request), 1);
    await (request.action === 'requeue' ? requestRequeue : requestCompensation)(ORDER_ID, ana, this.env);
  }
}

interface Turn {
  at: number;
  step: Step;
}

interface Run {
  turns: Turn[];
  order: OrderDocument;
  /** Virtual time from the order's acceptance to the monitor's end. */
  elapsedMs: number;
  /** Targeted sends and compensation runs: each lets the environment and the monitor go on for a bounded while. */
  episodes: number;
  /** Runs (their numbers) the monitor escalated to `attention` as tried whose sub-orchestration never ran. */
  escalatedNeverRun: number[];
}

const context = (name: string) => ({ functionName: name, ...silentSink, log: () => undefined }) as unknown as InvocationContext;

/** Runs one of the monitor's activities, as the engine would, on the current world's order. */
const activity = async <T>(name: string, args: object = {}): Promise<T> =>
  (await mockActivities.get(name)!({ orderId: ORDER_ID, correlationId: 'corr-1', ...args }, context(name))) as T;

/** Carries out monitor turns as orchestrators/orderMonitor.ts does, until the order is terminal and nobody asks for more. */
async function runMonitor(scenario: Scenario): Promise<Run> {
  const world = new World(scenario);
  mockWorld.current = world;
  const policy = scenario.policy;
  const created = await world.createOrder();

  let observations: MonitorObservations | undefined;
  let quietPolls = 0;
  let unansweredBegin: UnansweredBegin | undefined;
  let carriedOutStep: string | undefined;
  let handedOver: MonitorSnapshot | undefined = monitorSnapshotOf(created);
  let takenChanges = 0;
  let actions = 0;
  let begins = 0;
  /** Runs whose sub-orchestration ran: the world's truth, which no monitor remembers across a restart. */
  const carriedOut = new Set<number>();
  const escalatedNeverRun: number[] = [];
  const turns: Turn[] = [];
  let endedAt = world.clock;

  /** The monitor's wait for an OrderChanged or the time: an event raised while it was busy is taken at once. */
  const waitForChange = async (until: number): Promise<boolean> => {
    const woken = world.changes > takenChanges || (await world.runUntil(until, 'change'));
    takenChanges = world.changes;
    return woken;
  };

  for (;;) {
    if (scenario.restarts.includes(turns.length)) {
      observations = undefined;
      quietPolls = 0;
      unansweredBegin = undefined;
      carriedOutStep = undefined;
      handedOver = undefined;
      takenChanges = world.changes;
    }
    if (turns.length > MAX_TURNS) throw new Error(`the monitor did not end within ${MAX_TURNS} turns: ${JSON.stringify(turns.slice(-5))}`);
    const read: MonitorSnapshot = handedOver ?? (await activity<MonitorSnapshot>('readMonitorSnapshot'));
    handedOver = undefined;
    const now = new Date(world.clock);
    observations = observe(observations, read, now);
    const snapshot: MonitorSnapshot = turnSnapshot(read, observations, quietPolls, unansweredBegin?.step, carriedOutStep);
    const step = decideNextStep(snapshot, policy, now);
    turns.push({ at: world.clock, step });

    if (step.kind === 'done') {
      if (step.outcome === 'completed') await activity('markOrderCompleted');
      endedAt = world.clock;
      world.monitorRunning = false;
      // The world goes on: a person may ask again, which starts a new monitor with no memory.
      if (!(await world.runUntil(Number.POSITIVE_INFINITY, 'start'))) break;
      world.monitorStarted = false;
      observations = undefined;
      quietPolls = 0;
      unansweredBegin = undefined;
      carriedOutStep = undefined;
      takenChanges = world.changes;
      continue;
    }

    if (step.kind === 'wait') {
      expect(step.until.getTime()).toBeGreaterThan(now.getTime());
      quietPolls = (await waitForChange(step.until.getTime())) ? 0 : quietPolls + 1;
      continue;
    }

    const fate = nth(scenario.actions, actions, 'ok');
    const runs = nth(scenario.twice, actions, false) ? 2 : 1;
    actions += 1;
    let failed = fate !== 'ok';
    const carryOut = async (work: () => Promise<unknown>) => {
      if (fate === 'failed') return;
      for (let i = 0; i < runs; i++) await work();
    };
    switch (step.kind) {
      case 'requeueBilling':
        await carryOut(() => activity('requeueBilling', { attempt: step.attempt, requestedBy: step.requestedBy }));
        break;
      case 'republish':
        await carryOut(() => activity('republishToStuckService', { service: step.service, attempt: step.attempt, reason: step.why }));
        break;
      case 'markCompleted':
        await carryOut(() => activity('markOrderCompleted'));
        break;
      case 'markAttention': {
        const latest = compensationRunsStarted(await world.order());
        if (snapshot.state === 'compensating' && !carriedOut.has(latest)) escalatedNeverRun.push(latest);
        await carryOut(() => activity('markOrderAttention', { reason: step.reason }));
        break;
      }
      case 'checkBacklog': {
        let check: BacklogCheck;
        try {
          if (fate !== 'ok') throw new Error('Service Bus did not answer');
          check = await activity<BacklogCheck>('checkServiceBacklog', {
            service: step.service,
            sentAt: snapshot.sentAt?.[step.service] ?? observations.progress[step.service].stamp,
          });
        } catch {
          // As the monitor does: counted as waiting, so the bound on the wait still holds.
          check = { waiting: true };
        }
        observations = noteBacklogCheck(observations, step.service, new Date(world.clock), check);
        failed = false;
        break;
      }
      case 'compensate': {
        const begin: UnansweredBegin =
          unansweredBegin && (step.requestedBy === undefined || unansweredBegin.requestedBy === step.requestedBy)
            ? unansweredBegin
            : { step: `step-${++begins}`, ...(step.requestedBy !== undefined ? { requestedBy: step.requestedBy } : {}) };
        unansweredBegin = begin;
        let started: CompensationStart | null = null;
        await carryOut(async () => {
          started = await activity<CompensationStart | null>('beginCompensation', {
            reason: step.reason,
            requestedBy: step.requestedBy,
            step: begin.step,
            ...(step.resume ? { resume: true } : {}),
          });
        });
        if (fate !== 'ok') break;
        unansweredBegin = undefined;
        if (started) {
          carriedOutStep = begin.step;
          // The run's sub-orchestration: its compensations are the saga's business, not the
          // monitor's; what matters here is how it ends on the order, or that it never records it.
          const { attempt } = started as CompensationStart;
          const end = nth(scenario.runEnds, attempt! - 1, 'cancelled');
          carriedOut.add(attempt!);
          if (end !== 'failed-before-underway') await noteRunUnderway(await world.order(), attempt!, world.deps);
          if (end === 'unfinished' || end === 'failed-before-underway') {
            failed = true;
          } else {
            await finishCompensationRun(
              await world.order(),
              {
                outcome: end,
                failures: end === 'attention' ? [{ name: 'refundPayment', error: 'payment gateway unavailable' }] : [],
                reason: step.reason,
                attempt: (started as CompensationStart).attempt,
              },
              world.deps,
              silent,
            );
          }
        }
        break;
      }
    }
    if (failed) {
      // Failed after its retries: the monitor looks again after a poll, or when woken.
      await waitForChange(world.clock + pollIntervalMs(policy, quietPolls));
    } else {
      await world.runUntil(world.clock + ACTION_MS, 'none');
    }
    quietPolls = 0;
  }

  const order = await world.order();
  const sends = order.timeline.filter((e) => e.kind === TIMELINE.republished).length;
  const runsBegun = order.timeline.filter((e) => e.kind === TIMELINE.compensationStarted).length;
  const episodes = 1 + sends + runsBegun + scenario.support.length + scenario.restarts.length + turns.filter((t) => isAction(t.step)).length;
  return { turns, order, elapsedMs: endedAt - T0, episodes, escalatedNeverRun };
}

/**
 * Bounds every stretch between two things the monitor or the world does: the environment's slowest
 * message, the longest patience with a stuck service, the longest wait for a backlog and its checks,
 * a requeue's longest backoff, and the longest poll.
 */
function longestStretchMs(policy: MonitorPolicy): number {
  const patience = Math.max(...SERVICES.map((s) => policy.stuckAfterMs[s] * (policy.stuckBackoffCoefficient ?? 1) ** policy.maxRepublishes));
  const environment = MAX_DELIVERY_COUNT * (MAX_LATE_MS + LOCK_MS) + SWEEP_MS;
  return environment + patience + (policy.maxBacklogWaitMs ?? 0) + BACKLOG_RECHECK_MAX_MS + policy.requeueBackoffMaxMs + 2 * policy.pollMaxMs;
}

const stuckRepublishes = (order: OrderDocument, service: ServiceName) =>
  order.timeline.filter((e) => e.kind === TIMELINE.republished && e.service === service && e.reason?.startsWith(REPUBLISH_REASON.stuck)).length;

/** The checks every run must pass, whatever the consumers and the activities did. */
function expectWithinBounds(scenario: Scenario, run: Run): void {
  const { policy } = scenario;
  const { order } = run;
  const supportCompensations = scenario.support.filter((s) => s.action === 'compensate').length;

  // It ends, in bounded virtual time.
  expect(TERMINAL).toContain(order.state);
  expect(run.elapsedMs).toBeLessThanOrEqual(run.episodes * longestStretchMs(policy));

  // Republishes to a stuck service: one per step, the step bounded by the policy.
  for (const service of SERVICES) expect(stuckRepublishes(order, service)).toBeLessThanOrEqual(policy.maxRepublishes);

  // The monitor's own requeues: the bound, plus the free ones whose message never reached billing.
  const monitorRequeues = order.timeline.filter((e) => e.kind === TIMELINE.requeued && e.actor === MONITOR_ACTOR).length;
  expect(monitorRequeues).toBeLessThanOrEqual(policy.maxBillingRequeues + UNTRIED_REQUEUES_FREE);
  expect(monitorSnapshotOf(order).billingRequeues).toBeLessThanOrEqual(policy.maxBillingRequeues);

  // Compensation runs: the bound, afresh after each time a person asks. A run begun and never
  // carried out is resumed rather than counted, at most once by each monitor the sweeper starts,
  // and MAX_RUN_RESUMES times in all.
  const begun = order.timeline.filter((e) => e.kind === TIMELINE.compensationStarted);
  const resumed = begun.filter((e) => e.resumes !== undefined).length;
  expect(begun.length - resumed).toBeLessThanOrEqual(policy.maxCompensationRuns * (1 + supportCompensations));
  expect(resumed).toBeLessThanOrEqual(Math.min(scenario.restarts.length, MAX_RUN_RESUMES));
  // Escalated as used up only once the latest run was carried out: never a run that never ran,
  // until the resumes are used up.
  if (resumed < MAX_RUN_RESUMES) expect(run.escalatedNeverRun).toEqual([]);

  // Completed only with the three done; never compensated once they were.
  if (order.state === 'completed') expect(SERVICES.every((s) => order.status[s] === 'done')).toBe(true);
  const firstRun = order.timeline.findIndex((e) => e.kind === TIMELINE.compensationStarted);
  if (firstRun >= 0) {
    const doneBefore = new Set(order.timeline.slice(0, firstRun).filter((e) => e.kind === 'done').map((e) => e.service));
    expect(doneBefore.size).toBeLessThan(SERVICES.length);
  }

  // A business failure: compensated, nothing sent again after it, never completed.
  const failedAt = order.timeline.findIndex((e) => e.kind === 'failed');
  if (failedAt >= 0) {
    expect(order.state).not.toBe('completed');
    expect(firstRun).toBeGreaterThan(failedAt);
    const after = order.timeline.slice(failedAt);
    expect(after.filter((e) => (e.kind === TIMELINE.republished || e.kind === TIMELINE.requeued) && e.actor === MONITOR_ACTOR)).toEqual([]);
  }
}

/** An order whose messages are lost and whose activities behave: for running one activity by hand. */
const QUIET_SCENARIO: Scenario = {
  policy: DEFAULT_MONITOR_POLICY,
  fates: [],
  afterwards: 'lost',
  lateMs: [0],
  billingFailures: 0,
  quantity: 1,
  publishFails: false,
  actions: [],
  twice: [],
  runEnds: [],
  backlogCheckFails: [],
  support: [],
  skewMs: 0,
  restarts: [],
};

describe('the monitor over a simulated order', () => {
  /** `sent` as its dead-letter queue gives it back once its last delivery failed. */
  const deadLetterOf = (sent: Queued) => ({ body: sent.body, messageId: sent.messageId, deliveryCount: MAX_DELIVERY_COUNT, deadLetterReason: MAX_DELIVERY_COUNT_EXCEEDED, orderId: ORDER_ID });

  /**
   * Has `sent` dead-letter, and its dead-letter recorded, between a republish's send and the write
   * that records it (once). Returns the dead-letter's record, once made, and what puts the store back.
   */
  function deadLetterBeforeRepublishRecorded(world: World, sent: Queued) {
    const append = world.deps.orders.appendTimeline.bind(world.deps.orders);
    let deadLetter: DeadLetterRecord | undefined;
    world.deps.orders.appendTimeline = async (id, entry, options) => {
      if (entry.kind === TIMELINE.republished && !deadLetter) deadLetter = await recordDeadLetter('billing', deadLetterOf(sent), { deps: world.deps, monitor: world, log: silent });
      return append(id, entry, options);
    };
    return { deadLetter: () => deadLetter, restore: () => (world.deps.orders.appendTimeline = append) };
  }

  /** A quiet order created in a world of its own (the activities' world), billing set to `billing` when given. */
  async function quietOrder(billing?: ServiceStatus): Promise<World> {
    const world = new World(QUIET_SCENARIO);
    mockWorld.current = world;
    await world.createOrder();
    if (billing) world.deps.orders.docs.get(ORDER_ID)!.status.billing = billing;
    return world;
  }

  it('sends a republish step once, and counts it once, when the engine runs its activity twice', async () => {
    // The host died after the activity wrote its send and before the engine heard it finish: the
    // step runs again. Counted twice, the order would run out of republishes a step early.
    const world = await quietOrder();
    const republish = () => activity('republishToStuckService', { service: 'notification', attempt: 1, reason: 'notification pending for 60 s' });
    await republish();
    await republish();
    expect(stuckRepublishes(await world.order(), 'notification')).toBe(1);
    expect(world.subscriptions.notification.map((m) => m.messageId)).toEqual(['event-1', 'event-1:notification:1']);
  });

  it('sends a requeue of billing once when the engine runs its activity twice', async () => {
    // As above: a second message would be one of its own (numbered past the first, so duplicate
    // detection keeps it), taken by billing once more for nothing, and written on the order again.
    const world = await quietOrder('deadlettered');
    const requeue = () => activity('requeueBilling', { attempt: 1 });
    await requeue();
    await requeue();
    const order = await world.order();
    expect(order.timeline.filter((e) => e.kind === TIMELINE.requeued)).toHaveLength(1);
    expect(order.timeline.filter((e) => e.kind === TIMELINE.republished && e.service === 'billing')).toHaveLength(1);
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1', 'event-1:billing:1']);
  });

  /** A dead-lettered billing's requeue written, its message not sent: Service Bus failed it on every retry of the step. */
  async function requeueWrittenNotSent() {
    const world = await quietOrder('deadlettered');
    const publish = world.publish.bind(world);
    world.publish = async () => {
      throw new Error('Service Bus is unavailable');
    };
    await expect(activity('requeueBilling', { attempt: 1 })).rejects.toThrow('Service Bus is unavailable');
    world.publish = publish;
    return world;
  }

  it('sends a requeue whose message did not go out on the next turn, once, and leaves it to the stuck path after the threshold', async () => {
    const world = await requeueWrittenNotSent();
    let order = await world.order();
    expect(order.status.billing).toBe('pending');
    const policy = QUIET_SCENARIO.policy;
    const writtenAt = new Date(order.timeline.at(-1)!.at);
    const snapshot = monitorSnapshotOf(order);
    expect(snapshot.requeueUnsentBy).toBe('monitor');
    // Without it, billing would wait `pending` with nothing in flight until it counted as stuck.
    expect(decideNextStep(snapshot, policy, new Date(writtenAt.getTime() + 1_000))).toEqual({ kind: 'requeueBilling', attempt: 1 });
    expect(decideNextStep(snapshot, policy, new Date(writtenAt.getTime() + policy.stuckAfterMs.billing))).not.toMatchObject({ kind: 'requeueBilling' });

    await activity('requeueBilling', { attempt: 1 });
    order = await world.order();
    expect(order.timeline.filter((e) => e.kind === TIMELINE.requeued)).toHaveLength(1);
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1', 'event-1:billing:1']);
    expect(monitorSnapshotOf(order).requeueUnsentBy).toBeUndefined();
  });

  it('a requeue step that reads a compensate request recorded since the monitor decided sends nothing: billing is to be refunded, not retried', async () => {
    // The monitor decided to requeue from an older read; a person asked to compensate before the step read the order.
    const world = await quietOrder('deadlettered');
    expect(await requestCompensation(ORDER_ID, ana, { deps: world.deps, monitor: world, log: silent })).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    expect(await activity('requeueBilling', { attempt: 1 })).toEqual({ requeued: false, reason: `compensation was asked for by ${ana.name}; the order is being cancelled` });
    const order = await world.order();
    expect(order.timeline.filter((e) => e.kind === TIMELINE.requeued)).toEqual([]);
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1']);
    expect(decideNextStep(monitorSnapshotOf(order), QUIET_SCENARIO.policy, new Date('2030-01-01T00:00:00.000Z'))).toMatchObject({ kind: 'compensate', requestedBy: ana.name });
  });

  it('a requeue written whose message did not go out is not sent once a compensate request is recorded: billing is to be refunded, not retried', async () => {
    const world = await requeueWrittenNotSent();
    // The monitor decided to send it again from that read; a person asked to compensate before the step read the order.
    const decided = decideNextStep(monitorSnapshotOf(await world.order()), QUIET_SCENARIO.policy, new Date(Date.parse((await world.order()).timeline.at(-1)!.at) + 1_000));
    expect(decided).toEqual({ kind: 'requeueBilling', attempt: 1 });
    expect(await requestCompensation(ORDER_ID, ana, { deps: world.deps, monitor: world, log: silent })).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    expect(await activity('requeueBilling', { attempt: 1 })).toEqual({ requeued: false, reason: `compensation was asked for by ${ana.name}; the order is being cancelled` });
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1']);
    const order = await world.order();
    expect(decideNextStep(monitorSnapshotOf(order), QUIET_SCENARIO.policy, new Date('2030-01-01T00:00:00.000Z'))).toMatchObject({ kind: 'compensate', requestedBy: ana.name });
  });

  it("carries out a person's requeue of a billing in flight once when the engine runs its activity twice at once", async () => {
    // Both copies read the order, with the request pending, before either wrote: the second must
    // not record the same request carried out again.
    const world = await quietOrder();
    expect(await requestRequeue(ORDER_ID, ana, { deps: world.deps, monitor: world, log: silent })).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    const requeue = () => activity('requeueBilling', { attempt: 1, requestedBy: ana.name });
    await Promise.all([requeue(), requeue()]);
    const order = await world.order();
    expect(order.timeline.filter((e) => e.kind === TIMELINE.requeued)).toEqual([expect.objectContaining({ actor: ana.name, detail: 'attempt 1, message event-1:billing:1' })]);
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1', 'event-1:billing:1']);
  });

  it('a copy of a requeue step that read the order before its twin requeued leaves the requeue to the twin, once billing dead-letters again', async () => {
    // Two copies of one step (an activity whose lease ran out while its first copy still ran) read
    // the order together; the second is held up before its write until billing, requeued by the
    // first, has dead-lettered again.
    const world = await quietOrder('deadlettered');
    const transition = world.deps.orders.transitionStatus.bind(world.deps.orders);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let readBoth!: () => void;
    const bothRead = new Promise<void>((resolve) => (readBoth = resolve));
    let copies = 0;
    world.deps.orders.transitionStatus = async (id, change) => {
      if (++copies === 1) {
        readBoth();
        await held;
      }
      return transition(id, change);
    };
    const late = activity<{ requeued: boolean }>('requeueBilling', { attempt: 1 });
    await bothRead;
    expect(await activity('requeueBilling', { attempt: 1 })).toMatchObject({ requeued: true, messageId: 'event-1:billing:1' });
    world.deps.orders.transitionStatus = transition;
    const sent = world.subscriptions.billing.find((m) => m.messageId === 'event-1:billing:1')!;
    // Billing takes the requeued message and fails it on its last delivery: dead-lettered again.
    expect((await recordDeadLetter('billing', deadLetterOf(sent), { deps: world.deps, monitor: world, log: silent })).outcome).toBe('recorded');
    release();
    await late;
    const order = await world.order();
    const requeues = order.timeline.filter((e) => e.kind === TIMELINE.requeued);
    // Written from its stale read, the held copy's entry named the first copy's message again, which
    // the topic dropped: billing waited `pending` with nothing in flight, and the monitor sent the
    // dropped message again on every turn until billing counted as stuck.
    expect(requeues.map((e) => e.detail)).toEqual(['attempt 1, message event-1:billing:1']);
    expect(order.status.billing).toBe('deadlettered');
    expect(decideNextStep(monitorSnapshotOf(order), QUIET_SCENARIO.policy, new Date(Date.parse(order.timeline.at(-1)!.at) + 3_600_000))).toEqual({ kind: 'requeueBilling', attempt: 2 });
  });

  it("sends a message of its own for a request a retried step takes up, when the record of the step's first send was lost", async () => {
    const world = await quietOrder();
    const env = { deps: world.deps, monitor: world, log: silent };
    expect(await requestRequeue(ORDER_ID, ana, env)).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    const append = world.deps.orders.appendTimeline.bind(world.deps.orders);
    // The step's message goes out; Cosmos DB then fails the write that records it, on every try.
    world.deps.orders.appendTimeline = async (id, entry, options) => {
      if (entry.kind === TIMELINE.republished) throw new Error('Cosmos DB is unavailable');
      return append(id, entry, options);
    };
    await expect(activity('requeueBilling', { attempt: 1, requestedBy: ana.name })).rejects.toThrow('Cosmos DB is unavailable');
    world.deps.orders.appendTimeline = append;
    // Before the engine runs the step again, someone else asks for a requeue: the retry takes it up.
    expect(await requestRequeue(ORDER_ID, bea, env)).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    await activity('requeueBilling', { attempt: 1, requestedBy: ana.name });
    const order = await world.order();
    expect(order.timeline.filter((e) => e.kind === TIMELINE.requeued).map((e) => [e.actor, e.detail])).toEqual([
      [ana.name, 'attempt 1, message event-1:billing:1'],
      [bea.name, 'attempt 2, message event-1:billing:2'],
    ]);
    // Numbered from the sends recorded, it reused the first message's id, which the topic dropped.
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1', 'event-1:billing:1', 'event-1:billing:2']);
    expect(order.timeline.filter((e) => e.kind === TIMELINE.republished).map((e) => e.reason)).toEqual([`requeue 2 by ${bea.name}`]);
  });

  it("an older billing message's dead-letter, processed while a stuck republish's message is on its way unrecorded, leaves billing to that message", async () => {
    const world = await quietOrder('processing');
    const event = world.subscriptions.billing.find((m) => m.messageId === 'event-1')!;
    // Between the republish's send and its record, the event's last delivery fails and its
    // dead-letter is recorded from the order as it then reads.
    const { deadLetter, restore } = deadLetterBeforeRepublishRecorded(world, event);
    expect(await activity('republishToStuckService', { service: 'billing', attempt: 1, reason: 'billing processing for 60 s' })).toMatchObject({ republished: true, messageId: 'event-1:billing:1' });
    restore();
    const order = await world.order();
    // Decided before the send was recorded, the dead-letter marked billing dead-lettered with
    // event-1:billing:1 on its way, and the monitor requeued it after the backoff unless that
    // message was claimed first: a requeue used up, and a second message sent, for nothing.
    expect(deadLetter()?.outcome).toBe('noted');
    expect(order.timeline.filter((e) => e.kind === TIMELINE.deadLettered).map((e) => e.detail)).toEqual(['message event-1; send 1 to billing is in play']);
    expect(order.status.billing).toBe('processing');
    const policy = QUIET_SCENARIO.policy;
    expect(decideNextStep(monitorSnapshotOf(order), policy, new Date(Date.parse(order.timeline.at(-1)!.at) + policy.requeueBackoffBaseMs))).toMatchObject({ kind: 'wait' });
  });

  it("an older billing message's dead-letter read before a stuck republish named its message, and written after, leaves billing to that message", async () => {
    const world = await quietOrder('processing');
    const event = world.subscriptions.billing.find((m) => m.messageId === 'event-1')!;
    const transition = world.deps.orders.transitionStatus.bind(world.deps.orders);
    // The dead-letter reads the order; the republish names its message and sends it; then the
    // dead-letter writes, from what it read.
    let republished: unknown;
    world.deps.orders.transitionStatus = async (id, change) => {
      if (change.to === 'deadlettered' && !republished) {
        republished = await activity('republishToStuckService', { service: 'billing', attempt: 1, reason: 'billing processing for 60 s' });
      }
      return transition(id, change);
    };
    const message = deadLetterOf(event);
    const deadLetter = await recordDeadLetter('billing', message, { deps: world.deps, monitor: world, log: silent });
    world.deps.orders.transitionStatus = transition;
    expect(republished).toMatchObject({ republished: true, messageId: 'event-1:billing:1' });
    const order = await world.order();
    // Written onto an order that had changed since it was read, the dead-letter marked billing
    // dead-lettered with event-1:billing:1 on its way.
    expect(deadLetter.outcome).toBe('noted');
    expect(order.status.billing).toBe('processing');
    expect(order.timeline.filter((e) => e.kind === TIMELINE.deadLettered).map((e) => e.detail)).toEqual(['message event-1; send 1 to billing is in play']);
  });

  it('gives the next send to billing a message of its own when the record of a stuck republish was lost', async () => {
    const world = await quietOrder('processing');
    const append = world.deps.orders.appendTimeline.bind(world.deps.orders);
    // The republish's message goes out; Cosmos DB then fails the write that records it, on every try.
    world.deps.orders.appendTimeline = async (id, entry, options) => {
      if (entry.kind === TIMELINE.republished) throw new Error('Cosmos DB is unavailable');
      return append(id, entry, options);
    };
    await expect(activity('republishToStuckService', { service: 'billing', attempt: 1, reason: 'billing processing for 60 s' })).rejects.toThrow('Cosmos DB is unavailable');
    world.deps.orders.appendTimeline = append;
    // Billing takes the republished message and fails it on its last delivery: dead-lettered.
    const sent = world.subscriptions.billing.find((m) => m.messageId === 'event-1:billing:1')!;
    const message = deadLetterOf(sent);
    expect((await recordDeadLetter('billing', message, { deps: world.deps, monitor: world, log: silent })).outcome).toBe('recorded');
    let order = await world.order();
    const policy = QUIET_SCENARIO.policy;
    expect(decideNextStep(monitorSnapshotOf(order), policy, new Date(Date.parse(order.timeline.at(-1)!.at) + policy.requeueBackoffMaxMs))).toEqual({ kind: 'requeueBilling', attempt: 1 });
    expect(await activity('requeueBilling', { attempt: 1 })).toMatchObject({ requeued: true, messageId: 'event-1:billing:2' });
    order = await world.order();
    // Numbered from the sends recorded, the requeue reused the lost record's message id, which the
    // topic dropped: billing waited `pending` with nothing in flight until it counted as stuck.
    expect(order.timeline.filter((e) => e.kind === TIMELINE.requeued).map((e) => e.detail)).toEqual(['attempt 1, message event-1:billing:2']);
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1', 'event-1:billing:1', 'event-1:billing:2']);
  });

  it('sends a stuck republish whose message did not go out under the name its entry gave it, once, when the step runs again', async () => {
    const world = await quietOrder();
    const publish = world.publish.bind(world);
    // Service Bus fails the send on every retry of the step: the republish is named, its message not sent.
    world.publish = async () => {
      throw new Error('Service Bus is unavailable');
    };
    const republish = () => activity('republishToStuckService', { service: 'notification', attempt: 1, reason: 'notification pending for 60 s' });
    await expect(republish()).rejects.toThrow('Service Bus is unavailable');
    let order = await world.order();
    expect(order.timeline.filter((e) => e.kind === TIMELINE.republishing).map((e) => e.detail)).toEqual(['attempt 1, message event-1:notification:1']);
    // Not a send, nor progress: the monitor reads the order as before the step, and takes it again.
    const snapshot = monitorSnapshotOf(order);
    expect(snapshot.republishes.notification).toBe(0);
    expect(snapshot.lastProgressAt.notification).toBe(order.createdAt);
    world.publish = publish;
    await Promise.all([republish(), republish()]);
    order = await world.order();
    expect(order.timeline.filter((e) => e.kind === TIMELINE.republishing)).toHaveLength(1);
    expect(stuckRepublishes(order, 'notification')).toBe(1);
    expect(world.subscriptions.notification.map((m) => m.messageId)).toEqual(['event-1', 'event-1:notification:1']);
  });

  /** An order whose billing is processing, with Service Bus failing every send until `restore()`. */
  async function billingWithSendsFailing() {
    const world = await quietOrder('processing');
    const publish = world.publish.bind(world);
    world.publish = async () => {
      throw new Error('Service Bus is unavailable');
    };
    return { world, env: { deps: world.deps, monitor: world, log: silent }, restore: () => (world.publish = publish) };
  }

  it('names a fresh message for a stuck republish run again after a later send to the service was named', async () => {
    // Service Bus fails every try of the monitor's republish: it named event-1:billing:1, never sent.
    const { world, env, restore } = await billingWithSendsFailing();
    const republish = () => activity('republishToStuckService', { service: 'billing', attempt: 1, reason: 'billing processing for 60 s' });
    await expect(republish()).rejects.toThrow('Service Bus is unavailable');
    restore();
    // A person's requeue goes out next, as send 2; billing is found stuck again later.
    expect(await requestRequeue(ORDER_ID, ana, env)).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    expect(await activity('requeueBilling', { attempt: 1, requestedBy: ana.name })).toMatchObject({ requeued: true, messageId: 'event-1:billing:2' });
    expect(await republish()).toMatchObject({ republished: true, messageId: 'event-1:billing:3' });
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1', 'event-1:billing:2', 'event-1:billing:3']);
    // Sent under its old name, after send 2, the republished message was in flight unseen: send 2's
    // dead-letter found no later send and marked billing dead-lettered.
    const sent = world.subscriptions.billing.find((m) => m.messageId === 'event-1:billing:2')!;
    const message = deadLetterOf(sent);
    expect((await recordDeadLetter('billing', message, env)).outcome).toBe('noted');
    expect((await world.order()).status.billing).toBe('processing');
  });

  it("names a fresh message for a stuck republish run again after an earlier requeue's message was sent and recorded since", async () => {
    // Service Bus fails every try of a person's requeue (it named event-1:billing:1), then every try
    // of the monitor's republish to the stuck billing (it named event-1:billing:2).
    const { world, env, restore } = await billingWithSendsFailing();
    expect(await requestRequeue(ORDER_ID, ana, env)).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
    const requeue = () => activity('requeueBilling', { attempt: 1, requestedBy: ana.name });
    const republish = () => activity('republishToStuckService', { service: 'billing', attempt: 1, reason: 'billing processing for 60 s' });
    await expect(requeue()).rejects.toThrow('Service Bus is unavailable');
    await expect(republish()).rejects.toThrow('Service Bus is unavailable');
    restore();
    // A delivery's progress brings the unsent requeue round again: its message goes out and is
    // recorded, after the republish named a later one. The sweep now counts that later one, never
    // recorded sent, as a message that may never have gone out.
    expect(await requeue()).toMatchObject({ requeued: true, messageId: 'event-1:billing:1' });
    const sent = world.subscriptions.billing.find((m) => m.messageId === 'event-1:billing:1')!;
    // Billing is found stuck again; between the republish's send and its record, the requeue's
    // message dead-letters and its dead-letter is recorded.
    const deadLettered = deadLetterBeforeRepublishRecorded(world, sent);
    // Sent under its old name, the republished message was in flight unseen: the requeue's
    // dead-letter found no later send in play and marked billing dead-lettered.
    expect(await republish()).toMatchObject({ republished: true, messageId: 'event-1:billing:3' });
    deadLettered.restore();
    expect(deadLettered.deadLetter()?.outcome).toBe('noted');
    expect((await world.order()).status.billing).toBe('processing');
    expect(world.subscriptions.billing.map((m) => m.messageId)).toEqual(['event-1', 'event-1:billing:1', 'event-1:billing:3']);
  });

  it('ends an order whose consumers never answer, within bounded turns and time, after no more sends than the policy allows', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ fates: fc.array(fc.constantFrom<Fate>('lost', 'late', 'crash', 'deadletter'), { maxLength: 40 }), afterwards: fc.constant<Fate>('lost') }), async (scenario) => {
        const run = await runMonitor(scenario);
        expectWithinBounds(scenario, run);
        // Nothing was ever done by every service, so the order cannot have completed.
        expect(run.order.state).not.toBe('completed');
      }),
      searchOptions(60),
    );
  });

  it('ends any order, whatever its consumers and activities do, within the bounds on republishes, requeues and compensation runs', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(), async (scenario) => {
        expectWithinBounds(scenario, await runMonitor(scenario));
      }),
      searchOptions(100),
    );
  });

  it('compensates an order that ran out of stock, sending nothing again after it', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ quantity: fc.integer({ min: 4, max: 6 }), afterwards: fc.constant<Fate>('work') }), async (scenario) => {
        const run = await runMonitor(scenario);
        expectWithinBounds(scenario, run);
        expect(['cancelled', 'attention']).toContain(run.order.state);
      }),
      searchOptions(40),
    );
  });

  it('keeps its bounds with support staff asking to requeue and to compensate', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ support: true }), async (scenario) => {
        expectWithinBounds(scenario, await runMonitor(scenario));
      }),
      searchOptions(60),
    );
  });

  it('keeps its bounds when the sweeper starts a new monitor that remembers nothing but the order', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ restarts: true }), async (scenario) => {
        expectWithinBounds(scenario, await runMonitor(scenario));
      }),
      searchOptions(60),
    );
  });

  it('carries out a run begun by a monitor that died before starting it, when the sweeper starts a new one: resumed, not counted, never escalated unrun', async () => {
    let resumed = 0;
    await fc.assert(
      fc.asyncProperty(
        scenarioArb({
          // Out of stock: compensated at once, the begin among the first actions.
          quantity: fc.integer({ min: 4, max: 6 }),
          fates: fc.constant([]),
          afterwards: fc.constant<Fate>('work'),
          actions: fc.array(fc.constantFrom<ActionFate>('ok', 'unheard', 'unheard'), { maxLength: 8 }),
          // Up to more restarts than runs may be resumed: past the bound, a run never taken up counts.
          restarts: fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 1, maxLength: MAX_RUN_RESUMES + 2 }),
        }),
        async (scenario) => {
          const run = await runMonitor(scenario);
          expectWithinBounds(scenario, run);
          resumed += run.order.timeline.filter((e) => e.kind === TIMELINE.compensationStarted && e.resumes !== undefined).length;
        },
      ),
      searchOptions(60),
    );
    // The fixed seed's cases do take that path (a search with another seed may not).
    if (!process.env.FC_RANDOM && process.env.FC_SEED === undefined) expect(resumed).toBeGreaterThan(0);
  });

  it('cannot requeue forever in an outage that dead-letters every message before a consumer takes it', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ fates: fc.constant([]), afterwards: fc.constant<Fate>('deadletter') }), async (s) => {
        // Inventory and notification patient for a day, so billing's requeues run their course first.
        const scenario = { ...s, policy: { ...s.policy, stuckAfterMs: { ...s.policy.stuckAfterMs, inventory: 86_400_000, notification: 86_400_000 } } };
        const run = await runMonitor(scenario);
        expectWithinBounds(scenario, run);
        const requeues = run.order.timeline.filter((e) => e.kind === TIMELINE.requeued && e.actor === MONITOR_ACTOR).length;
        const firstRun = run.order.timeline.find((e) => e.kind === TIMELINE.compensationStarted);
        // None of them reached billing: the free ones, then the bound, and only then compensation.
        // With requeues turned off (a bound of 0) there are none to be free: compensated at once.
        const max = scenario.policy.maxBillingRequeues;
        if (firstRun?.reason?.startsWith('billing dead-lettered')) expect(requeues).toBe(max === 0 ? 0 : max + UNTRIED_REQUEUES_FREE);
      }),
      searchOptions(40),
    );
  });

  it('decides the same whatever the writers\' and the broker\'s clocks say, as it measures on its own', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(), fc.integer({ min: -3 * 3_600_000, max: 3 * 3_600_000 }), async (scenario, skewMs) => {
        // The reasons quote the broker's times; the steps themselves must not move.
        const shape = (run: Run) =>
          run.turns.map(({ at, step }) => ({ at, kind: step.kind, ...('service' in step ? { service: step.service } : {}), ...('attempt' in step ? { attempt: step.attempt } : {}), ...(step.kind === 'wait' ? { until: step.until.getTime() } : {}) }));
        const straight = await runMonitor(scenario);
        const skewed = await runMonitor({ ...scenario, skewMs });
        expect(shape(skewed)).toEqual(shape(straight));
        expect(skewed.order.state).toBe(straight.order.state);
      }),
      searchOptions(30),
    );
  });
});
