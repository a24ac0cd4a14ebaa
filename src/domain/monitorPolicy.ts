/**
 * What the order monitor does next. `decideNextStep` is pure: the orchestrator reads the order,
 * hands the snapshot here, and only carries out the step it gets back. Everything the monitor
 * must remember across restarts (requeues so far, support requests, compensation runs) is read
 * back from the order's own timeline, so a monitor restarted by the sweeper carries on where the
 * last one stopped instead of starting its bounds again.
 */
import { z } from 'zod';
import { SERVICES, type ServiceName } from '../topology';
import {
  TERMINAL_STATES,
  type OrderDocument,
  type OrderState,
  type ServiceStatus,
  type TimelineEntry,
} from './order';
import {
  COMPENSATION_STARTED_KIND,
  currentReasons,
  deadLetterMarker,
  isDeadLetterOf,
  isNotedDeadLetter,
  IN_FLIGHT,
  latestSupportRequest,
  pendingRequeueRequest,
  REPUBLISHED_KIND,
  REQUEUED_KIND,
  SUPPORT_ACTION_KIND,
} from './orderState';

/** Timeline kinds the monitor writes and reads back; consumers write `delivery`, `done`, `failed`. */
export const TIMELINE = {
  deadLettered: 'deadlettered',
  requeued: REQUEUED_KIND,
  /** A stuck republish about to send: names its message (see `targetedSends`); `republished` once sent. */
  republishing: 'republishing',
  republished: REPUBLISHED_KIND,
  supportAction: SUPPORT_ACTION_KIND,
  compensationStarted: COMPENSATION_STARTED_KIND,
  /** Written by a run's sub-orchestration when it takes the run up (detail: `run <attempt>`). */
  compensationUnderway: 'compensation-underway',
  compensation: 'compensation',
  compensationFailed: 'compensation-failed',
  completed: 'completed',
  cancelled: 'cancelled',
  attention: 'attention',
  publishFailed: 'publish-failed',
} as const;

/**
 * Every targeted send is recorded as `republished` with a reason starting with one of these, so
 * the stuck-republish bound counts only republishes to stuck consumers, not billing requeues.
 */
export const REPUBLISH_REASON = { requeue: 'requeue', stuck: 'stuck' } as const;

// Where a dead-letter's entry names its message, and whether it was only noted: read by the portal too.
export { deadLetterMarker, isDeadLetterOf, isNotedDeadLetter, notedDeadLetterDetail } from './orderState';

const REPUBLISHED_MESSAGE = ', message ';

/**
 * A `republished` entry's detail (the targeted send's number and its message id), a `requeued`
 * one's (the requeue's number and the message it sends), and a `republishing` one's (the stuck
 * republish step's number and the message it sends).
 */
export function republishedDetail(attempt: number, messageId: string): string {
  return `attempt ${attempt}${REPUBLISHED_MESSAGE}${messageId}`;
}

/** The message id a `republished` entry's detail names. */
export function republishedMessageId(detail: string | undefined): string | undefined {
  const at = detail?.indexOf(REPUBLISHED_MESSAGE) ?? -1;
  return detail !== undefined && at >= 0 ? detail.slice(at + REPUBLISHED_MESSAGE.length) : undefined;
}

/** The kinds of entry that name a targeted send's message before it goes out. */
const NAMES_ITS_SEND: readonly string[] = [TIMELINE.requeued, TIMELINE.republishing];

/**
 * Targeted sends of the order's event to `service` so far: one a message, however often its
 * `republished` entry was written (two copies of one step may both send it, duplicate detection
 * drops the second, and both write the entry). Counted by entries, a message dead-lettered later
 * would seem to have a newer send in play that was never made, and be only noted.
 *
 * A requeue names its message in its `requeued` entry, and a stuck republish in its `republishing`
 * one, written before the send: that message counts from then on, so a send whose record was lost
 * is still counted, and the next send never reuses its id (duplicate detection would drop it).
 * Entries written before requeues named their message name none, and before stuck republishes
 * did there are no `republishing` entries.
 */
export function targetedSends(timeline: readonly TimelineEntry[], service: ServiceName): number {
  const named = new Set<string>();
  let unnamed = 0;
  for (const e of timeline) {
    if (e.service !== service) continue;
    const id = e.kind === TIMELINE.republished || NAMES_ITS_SEND.includes(e.kind) ? republishedMessageId(e.detail) : undefined;
    if (id !== undefined) named.add(id);
    else if (e.kind === TIMELINE.republished) unnamed += 1;
  }
  return named.size + unnamed;
}

/**
 * The messages to `service` that `requeued` and `republishing` entries name and no `republished`
 * entry records sent (the send failed, or its record was lost).
 */
export function unrecordedSends(timeline: readonly TimelineEntry[], service: ServiceName): Set<string> {
  const named = new Set<string>();
  for (const e of timeline) {
    const id = e.service === service && NAMES_ITS_SEND.includes(e.kind) ? republishedMessageId(e.detail) : undefined;
    if (id !== undefined) named.add(id);
  }
  for (const e of timeline) if (e.kind === TIMELINE.republished && e.service === service) named.delete(republishedMessageId(e.detail) ?? '');
  return named;
}

/**
 * The latest `requeued` or `republishing` entry of `service` while no send to it has been recorded
 * since (a second record of an earlier message is not one): its message is going out, or its send
 * failed and the step will be run again.
 */
export function sendInTheMaking(timeline: readonly TimelineEntry[], service: ServiceName): TimelineEntry | undefined {
  let making: TimelineEntry | undefined;
  const recorded = new Set<string>();
  for (const e of timeline) {
    if (e.service !== service) continue;
    if (NAMES_ITS_SEND.includes(e.kind)) making = e;
    else if (e.kind === TIMELINE.republished) {
      const id = republishedMessageId(e.detail);
      if (id !== undefined && recorded.has(id)) continue;
      if (id !== undefined) recorded.add(id);
      making = undefined;
    }
  }
  return making;
}

/** The `republishing` entry of stuck republish step `attempt` to `service`, once written: it names the step's message. */
export function stuckRepublishNamed(timeline: readonly TimelineEntry[], service: ServiceName, attempt: number): TimelineEntry | undefined {
  const prefix = republishedDetail(attempt, '');
  for (let i = timeline.length - 1; i >= 0; i--) {
    const e = timeline[i];
    if (e.kind === TIMELINE.republishing && e.service === service && e.detail?.startsWith(prefix)) return e;
  }
  return undefined;
}

/** The latest `requeued` entry of the timeline: the requeue a requeue step carries out, once written. */
export function latestRequeue(timeline: readonly TimelineEntry[]): TimelineEntry | undefined {
  for (let i = timeline.length - 1; i >= 0; i--) if (timeline[i].kind === TIMELINE.requeued) return timeline[i];
  return undefined;
}

/** The timeline entry a consumer's delivery writes when it takes the order's message (its claim). */
export const DELIVERY_KIND = 'delivery';

/**
 * Requeues of billing whose message dead-lettered with no delivery taking it that do not count
 * against `maxBillingRequeues`; past them they do, so an outage that never ends cannot requeue
 * (and grow the order) forever.
 */
export const UNTRIED_REQUEUES_FREE = 10;

/** Actor recorded on the timeline for what the monitor does on its own. */
export const MONITOR_ACTOR = 'monitor';

export type SupportActionName = 'requeue' | 'compensate';

// ---------------------------------------------------------------------------------------------
// Policy

export interface RetryPolicy {
  maxAttempts: number;
  firstRetryIntervalMs: number;
  backoffCoefficient: number;
  maxRetryIntervalMs: number;
}

export interface OutagePolicy {
  firstWaitMs: number;
  maxWaitMs: number;
  giveUpAfterMs: number;
}

export interface MonitorPolicy {
  /** Automatic requeues of a dead-lettered billing before the order is compensated. */
  maxBillingRequeues: number;
  /** Delay before requeue n (0-based) after the dead-letter: base * 2^n, capped. */
  requeueBackoffBaseMs: number;
  requeueBackoffMaxMs: number;
  /** A service still `pending`/`processing` this long after its last progress is stuck. */
  stuckAfterMs: Record<ServiceName, number>;
  /** Targeted republishes to one stuck service before the order is compensated. */
  maxRepublishes: number;
  /**
   * Each republish to a stuck service multiplies the wait before its next step by this. The
   * policy rides in the monitor's history (loaded by an activity, carried across continue-as-new),
   * and a monitor started before the field existed must decide on replay as it did: none is 1.
   */
  stuckBackoffCoefficient?: number;
  /**
   * A stuck service whose subscription still holds a message enqueued before the order's latest
   * send to it is behind a backlog (a burst bigger than the consumer keeps up with, or the backlog
   * an outage left), not stuck: sending again would only add to the backlog, and compensating would
   * cancel an order whose message is still coming. Such a service is not sent again nor compensated
   * until a check finds the subscription clear of older messages, or until this long after the
   * first check that found it behind. Checks are `stuckAfterMs` apart, doubling up to
   * BACKLOG_RECHECK_MAX_MS. None (a policy carried in a history from before the checks) or 0: no checks.
   */
  maxBacklogWaitMs?: number;
  /**
   * Poll interval with backoff while nothing happens: min * 2^quietPolls, capped at max. Consumers,
   * the dead-letter handler and support actions wake the monitor with OrderChanged for everything
   * it acts on; polls only catch a wake-up that was lost (a host that died in between), so they
   * need not be frequent: each one costs the task hub a timer, an episode and an order read.
   */
  pollMinMs: number;
  pollMaxMs: number;
  /** Each compensation activity is retried with this policy; then the order needs attention. */
  compensationRetry: RetryPolicy;
  /**
   * A compensation step that still fails after `compensationRetry` because Cosmos DB did not serve
   * it (throttled, unavailable, no answer) is called again after these waits, doubling from
   * `firstWaitMs` up to `maxWaitMs`, until `giveUpAfterMs` have passed since the first such failure.
   */
  compensationOutage: OutagePolicy;
  /** Compensation runs (e.g. across host restarts) before the monitor gives up to a person. */
  maxCompensationRuns: number;
  /** Loop iterations per orchestration execution before continue-as-new trims the history. */
  iterationsPerExecution: number;
}

export const DEFAULT_MONITOR_POLICY: MonitorPolicy = {
  maxBillingRequeues: 3,
  requeueBackoffBaseMs: 5_000,
  requeueBackoffMaxMs: 60_000,
  stuckAfterMs: { inventory: 60_000, billing: 60_000, notification: 60_000 },
  maxRepublishes: 2,
  stuckBackoffCoefficient: 2,
  maxBacklogWaitMs: 60 * 60_000,
  pollMinMs: 10_000,
  pollMaxMs: 60_000,
  compensationRetry: { maxAttempts: 5, firstRetryIntervalMs: 2_000, backoffCoefficient: 2, maxRetryIntervalMs: 30_000 },
  compensationOutage: { firstWaitMs: 15_000, maxWaitMs: 5 * 60_000, giveUpAfterMs: 60 * 60_000 },
  maxCompensationRuns: 3,
  iterationsPerExecution: 20,
};

const seconds = (fallbackMs: number) =>
  z.coerce
    .number()
    .nonnegative()
    .optional()
    .transform((s) => (s === undefined ? fallbackMs : Math.round(s * 1000)));
const count = (fallback: number, min = 0) =>
  z.coerce
    .number()
    .int()
    .min(min)
    .optional()
    .transform((n) => n ?? fallback);

const d = DEFAULT_MONITOR_POLICY;
/** App settings (all optional) that tune the monitor; seconds where the name says so. */
const settingsSchema = z.object({
  MONITOR_MAX_BILLING_REQUEUES: count(d.maxBillingRequeues),
  MONITOR_REQUEUE_BACKOFF_SECONDS: seconds(d.requeueBackoffBaseMs),
  MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: seconds(d.requeueBackoffMaxMs),
  MONITOR_STUCK_AFTER_SECONDS: z.coerce.number().positive().optional(),
  MONITOR_STUCK_AFTER_SECONDS_INVENTORY: z.coerce.number().positive().optional(),
  MONITOR_STUCK_AFTER_SECONDS_BILLING: z.coerce.number().positive().optional(),
  MONITOR_STUCK_AFTER_SECONDS_NOTIFICATION: z.coerce.number().positive().optional(),
  MONITOR_MAX_REPUBLISHES: count(d.maxRepublishes),
  MONITOR_BACKLOG_WAIT_SECONDS: seconds(d.maxBacklogWaitMs!),
  MONITOR_POLL_MIN_SECONDS: seconds(d.pollMinMs),
  MONITOR_POLL_MAX_SECONDS: seconds(d.pollMaxMs),
  MONITOR_COMPENSATION_MAX_ATTEMPTS: count(d.compensationRetry.maxAttempts, 1),
  MONITOR_COMPENSATION_FIRST_RETRY_SECONDS: seconds(d.compensationRetry.firstRetryIntervalMs),
  MONITOR_COMPENSATION_MAX_RETRY_SECONDS: seconds(d.compensationRetry.maxRetryIntervalMs),
  MONITOR_COMPENSATION_OUTAGE_SECONDS: seconds(d.compensationOutage.giveUpAfterMs),
  MONITOR_MAX_COMPENSATION_RUNS: count(d.maxCompensationRuns, 1),
  MONITOR_ITERATIONS_PER_EXECUTION: count(d.iterationsPerExecution, 1),
});

export class MonitorSettingsError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid monitor settings: ${issues.join('; ')}`);
    this.name = 'MonitorSettingsError';
  }
}

/** The policy from app settings; unset settings keep the defaults, bad ones fail loudly. */
export function monitorPolicyFromSettings(settings: Record<string, string | undefined>): MonitorPolicy {
  const blankAsUnset = Object.fromEntries(
    Object.entries(settings).filter(([k, v]) => k.startsWith('MONITOR_') && v !== undefined && v.trim() !== ''),
  );
  const parsed = settingsSchema.safeParse(blankAsUnset);
  if (!parsed.success) {
    throw new MonitorSettingsError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const s = parsed.data;
  // A bound left unset follows its base up: setting only a base above the default bound means it.
  const bound = (name: keyof typeof s, base: number, value: number) => (name in blankAsUnset ? value : Math.max(value, base));
  const stuck = (specific: number | undefined, service: ServiceName) =>
    Math.round(
      (specific ?? s.MONITOR_STUCK_AFTER_SECONDS ?? d.stuckAfterMs[service] / 1000) * 1000,
    );
  const policy: MonitorPolicy = {
    maxBillingRequeues: s.MONITOR_MAX_BILLING_REQUEUES,
    requeueBackoffBaseMs: s.MONITOR_REQUEUE_BACKOFF_SECONDS,
    requeueBackoffMaxMs: bound('MONITOR_REQUEUE_BACKOFF_MAX_SECONDS', s.MONITOR_REQUEUE_BACKOFF_SECONDS, s.MONITOR_REQUEUE_BACKOFF_MAX_SECONDS),
    stuckAfterMs: {
      inventory: stuck(s.MONITOR_STUCK_AFTER_SECONDS_INVENTORY, 'inventory'),
      billing: stuck(s.MONITOR_STUCK_AFTER_SECONDS_BILLING, 'billing'),
      notification: stuck(s.MONITOR_STUCK_AFTER_SECONDS_NOTIFICATION, 'notification'),
    },
    maxRepublishes: s.MONITOR_MAX_REPUBLISHES,
    stuckBackoffCoefficient: d.stuckBackoffCoefficient,
    maxBacklogWaitMs: s.MONITOR_BACKLOG_WAIT_SECONDS,
    pollMinMs: Math.max(1, s.MONITOR_POLL_MIN_SECONDS),
    pollMaxMs: Math.max(1, bound('MONITOR_POLL_MAX_SECONDS', s.MONITOR_POLL_MIN_SECONDS, s.MONITOR_POLL_MAX_SECONDS)),
    compensationRetry: {
      maxAttempts: s.MONITOR_COMPENSATION_MAX_ATTEMPTS,
      firstRetryIntervalMs: Math.max(1, s.MONITOR_COMPENSATION_FIRST_RETRY_SECONDS),
      backoffCoefficient: d.compensationRetry.backoffCoefficient,
      maxRetryIntervalMs: Math.max(
        1,
        bound('MONITOR_COMPENSATION_MAX_RETRY_SECONDS', s.MONITOR_COMPENSATION_FIRST_RETRY_SECONDS, s.MONITOR_COMPENSATION_MAX_RETRY_SECONDS),
      ),
    },
    compensationOutage: { ...d.compensationOutage, giveUpAfterMs: s.MONITOR_COMPENSATION_OUTAGE_SECONDS },
    maxCompensationRuns: s.MONITOR_MAX_COMPENSATION_RUNS,
    iterationsPerExecution: s.MONITOR_ITERATIONS_PER_EXECUTION,
  };
  if (policy.pollMaxMs < policy.pollMinMs) {
    throw new MonitorSettingsError(['MONITOR_POLL_MAX_SECONDS must not be below MONITOR_POLL_MIN_SECONDS']);
  }
  if (policy.requeueBackoffMaxMs < policy.requeueBackoffBaseMs) {
    throw new MonitorSettingsError(['MONITOR_REQUEUE_BACKOFF_MAX_SECONDS must not be below MONITOR_REQUEUE_BACKOFF_SECONDS']);
  }
  if (policy.compensationRetry.maxRetryIntervalMs < policy.compensationRetry.firstRetryIntervalMs) {
    throw new MonitorSettingsError(['MONITOR_COMPENSATION_MAX_RETRY_SECONDS must not be below MONITOR_COMPENSATION_FIRST_RETRY_SECONDS']);
  }
  return policy;
}

/** `firstMs` doubled `n` times, at most `maxMs`. */
export function doubledWaitMs(firstMs: number, maxMs: number, n: number): number {
  return Math.min(maxMs, firstMs * 2 ** Math.min(n, 30));
}

/** Delay between the dead-letter and requeue number `requeuesSoFar + 1`. */
export function requeueDelayMs(policy: MonitorPolicy, requeuesSoFar: number): number {
  return doubledWaitMs(policy.requeueBackoffBaseMs, policy.requeueBackoffMaxMs, requeuesSoFar);
}

/** Wait number `waits` (0-based) before a compensation step Cosmos DB did not serve is called again. */
export function outageWaitMs(outage: OutagePolicy, waits: number): number {
  return doubledWaitMs(outage.firstWaitMs, outage.maxWaitMs, waits);
}

/** Poll interval after `quietPolls` timer wake-ups in a row with nothing to do. */
export function pollIntervalMs(policy: MonitorPolicy, quietPolls: number): number {
  return doubledWaitMs(policy.pollMinMs, policy.pollMaxMs, quietPolls);
}

/** The longest wait between two checks of a backlog a stuck service is behind. */
export const BACKLOG_RECHECK_MAX_MS = 10 * 60_000;

/**
 * How much later than the order's latest send to a service its subscription's oldest message may
 * have been enqueued and still be taken for that send or an older one: the send's stamp is the
 * order's creation or the monitor's record of a targeted send, written by the app's clocks just
 * before or after the message went out, and its enqueued time is the broker's clock.
 */
export const BACKLOG_CLOCK_ALLOWANCE_MS = 10_000;

/**
 * Whether a service's subscription, whose oldest message was enqueued at `oldestEnqueuedAt`
 * (undefined: it holds none), still holds the order's latest message to it, stamped `sentAt`, or
 * messages older than that one.
 */
export function behindBacklog(oldestEnqueuedAt: Date | undefined, sentAt: string): boolean {
  return oldestEnqueuedAt !== undefined && oldestEnqueuedAt.getTime() <= ms(sentAt) + BACKLOG_CLOCK_ALLOWANCE_MS;
}

/** Longest free text (a reason, an error) an orchestration puts in its custom status. */
export const STATUS_TEXT_MAX = 1_000;

/**
 * Free text for a custom status, cut to STATUS_TEXT_MAX. On Azure a custom status over 16 KB
 * (UTF-16) fails the orchestration, and reasons carry error messages of any length.
 */
export function statusText(text: string | undefined): string | undefined {
  return text !== undefined && text.length > STATUS_TEXT_MAX ? `${text.slice(0, STATUS_TEXT_MAX - 1)}…` : text;
}

// ---------------------------------------------------------------------------------------------
// Snapshot

/** What the decision needs to know about one order, derived from its document. */
export interface MonitorSnapshot {
  orderId: string;
  state: OrderState;
  status: Record<ServiceName, ServiceStatus>;
  statusReason: Partial<Record<ServiceName, string>>;
  /**
   * When each service's latest progress (delivery, outcome, dead-letter, republish) was stamped, as
   * written: a change stamp, which `onMonitorClock` turns into when the monitor saw it.
   */
  lastProgressAt: Record<ServiceName, string>;
  /** When billing was last dead-lettered, while it is. */
  billingDeadLetteredAt?: string;
  /**
   * Inventory or notification, still in flight, whose latest progress is a dead-letter: its message
   * is gone, so nothing will come unless the monitor republishes. (Billing's shows in its status.)
   */
  deadLettered?: ServiceName[];
  /**
   * Services still in flight that nothing has been recorded for, when the intake noted that
   * Service Bus did not take the order's event: it may never have gone out, so their
   * subscriptions may hold nothing of the order's to wait for. (`published` does not tell: the
   * claim of any message, a targeted republish to another service too, records it.) Snapshots in
   * a history from before this field have none.
   */
  unsentTo?: ServiceName[];
  /**
   * When the order's latest message to a service still in flight was sent (its creation, or the
   * latest targeted send), for a service whose progress was stamped later (a claim): a backlog
   * check measures the subscription against the send, so that others' messages enqueued between
   * the send and the claim do not count as ahead of it. Absent where it is the progress stamp, and
   * in snapshots from before this field.
   */
  sentAt?: Partial<Record<ServiceName, string>>;
  /**
   * Requeues of billing the monitor made on its own (support requeues are not counted), but those
   * whose message dead-lettered with no billing delivery taking it (Cosmos DB throttling or out):
   * the payment was not tried, so they do not use up the requeues (up to UNTRIED_REQUEUES_FREE).
   */
  billingRequeues: number;
  /** The monitor's requeues of billing that dead-lettered with no delivery taking their message. */
  billingRequeuesUntried?: number;
  /**
   * Every requeue of billing the monitor wrote, tried or not. Only the monitor's own writes move
   * it, so it numbers the requeue steps: `requeueBilling` finds a requeue it already wrote by it
   * even after that requeue's message dead-lettered untaken (which takes it out of `billingRequeues`).
   */
  billingRequeuesMade?: number;
  /** Targeted republishes the monitor made to each stuck service. */
  republishes: Record<ServiceName, number>;
  /** Support principal whose requeue request has not been carried out yet. */
  requeueRequestedBy?: string;
  /**
   * Who made the latest requeue of billing (MONITOR_ACTOR for the monitor) while no billing send
   * has followed it and billing is in flight: the requeue was written, and its message did not go
   * out (Service Bus failed the send on every retry). Absent in snapshots from before this field.
   */
  requeueUnsentBy?: string;
  /** Support principal who asked for compensation. */
  compensationRequestedBy?: string;
  /** Why compensation started, once it has. */
  compensationReason?: string;
  /** Who asked for compensation since its last run began (e.g. again after `attention`): the next run is theirs. */
  compensationAskedAgainBy?: string;
  /** How many times compensation has started since the last support request for it. */
  compensationRuns: number;
  /** The monitor's step that began the latest run (absent for runs begun before steps were named). */
  latestRunStep?: string;
  /**
   * The order says the latest run was begun and its sub-orchestration never took it up (its monitor
   * died first, a restarted one has no memory of it): it is carried out, not counted as tried.
   */
  latestRunNeverUnderway?: true;
  /**
   * The latest run is one whose begin the monitor never heard answer (every retry failed, the write
   * landed): it has not been carried out, so it is carried out even when it was the last run allowed.
   * The monitor's own memory, like `quietPolls`.
   */
  latestRunUnheard?: boolean;
  /** Timer wake-ups in a row with nothing to do (the monitor's own memory; drives poll backoff). */
  quietPolls: number;
  /** The monitor's latest backlog check of each service since its latest progress (its own memory; see `observe`). */
  backlog?: Partial<Record<ServiceName, BacklogSighting>>;
}

/**
 * How many compensation runs the order ever had, a run resumed counted anew. A run is numbered by
 * it when it begins (its sub-orchestration's name), and a run whose number is below it was superseded.
 */
export function compensationRunsStarted(order: OrderDocument): number {
  return order.timeline.filter((e) => e.kind === TIMELINE.compensationStarted).length;
}

/** The detail of a run's `compensation-underway` entry. */
export function underwayDetail(attempt: number): string {
  return `run ${attempt}`;
}

/**
 * Runs resumed on one order at most. Each takes a monitor that died between its begin and the run
 * being taken up, and none counts against the runs allowed: past this, a run never taken up counts
 * as tried, so a monitor that fails the same way every time still ends with the order in `attention`
 * rather than adding runs to it for as long as the sweeper starts it again.
 */
export const MAX_RUN_RESUMES = 3;

/**
 * Whether the order's latest compensation run was begun and never taken up by its sub-orchestration:
 * its begin says it would note it (`notesUnderway`), and no `compensation-underway` of that run
 * followed. A run begun before runs noted it decides as it did: carried out; and so does any run
 * once `MAX_RUN_RESUMES` were resumed.
 */
export function latestRunNeverUnderway(order: OrderDocument): boolean {
  const timeline = order.timeline ?? [];
  const at = timeline.map((e) => e.kind).lastIndexOf(TIMELINE.compensationStarted);
  if (at < 0 || timeline[at].notesUnderway !== true) return false;
  if (timeline.filter((e) => e.kind === TIMELINE.compensationStarted && e.resumes !== undefined).length >= MAX_RUN_RESUMES) return false;
  const detail = underwayDetail(compensationRunsStarted(order));
  return !timeline.slice(at + 1).some((e) => e.kind === TIMELINE.compensationUnderway && e.detail === detail);
}

/**
 * A person's compensate request that no run has begun to carry out yet (written after the last
 * `compensation-started`). An activity of an earlier run, run once more after a host restart, must
 * then not end the order: the next run is the person's. Decided by the entries' places, not their
 * times: the timeline is only appended to, one patch at a time, so its order is the order of the
 * writes, while the request's time is the API's clock and the run's another machine's.
 */
export function compensationAskedSinceLastRun(order: OrderDocument): { by: string; at: string } | undefined {
  return latestSupportRequest(sinceLastCompensationRun(order), 'compensate');
}

/** The timeline entries written after the last `compensation-started` (all of them when no run began). */
export function sinceLastCompensationRun(order: OrderDocument): TimelineEntry[] {
  const timeline = order.timeline ?? [];
  return timeline.slice(timeline.map((e) => e.kind).lastIndexOf(TIMELINE.compensationStarted) + 1);
}

/**
 * Reads the monitor's view out of an order document; `quietPolls` is the monitor's own count. The
 * timeline is read in the order it was written (it is only appended to), as the support rules
 * read it: its entries are stamped by different machines' clocks, so their times may disagree
 * with their order. A pending requeue and a compensation asked for again are the very functions
 * support actions and compensation activities decide by, so the monitor cannot disagree with them.
 */
export function monitorSnapshotOf(order: OrderDocument, quietPolls = 0): MonitorSnapshot {
  const timeline = order.timeline ?? [];
  const lastProgressAt = Object.fromEntries(SERVICES.map((s) => [s, order.createdAt])) as Record<ServiceName, string>;
  const lastSentAt = { ...lastProgressAt };
  const republishes = Object.fromEntries(SERVICES.map((s) => [s, 0])) as Record<ServiceName, number>;
  let billingRequeues = 0;
  let billingRequeuesUntried = 0;
  let billingRequeuesMade = 0;
  /**
   * The monitor's latest requeue, while no billing delivery has taken a message since, with the
   * messages it sent: only one of those dead-lettering makes it untried. Another billing message's
   * dead-letter recorded after it (an older message the sweep found late, a stuck republish's)
   * says nothing of the requeue's message, which is claimed from `deadlettered` and tried.
   */
  let requeueUntaken: { messages: string[]; sending: boolean } | undefined;
  let billingDeadLetteredAt: string | undefined;
  let compensationRequestedBy: string | undefined;
  let compensationReason: string | undefined;
  let compensationRuns = 0;
  let latestRunStep: string | undefined;
  let requeueUnsentBy: string | undefined;
  const recordedSends = new Set<string>();
  const lastKind: Partial<Record<ServiceName, string>> = {};

  for (const entry of timeline) {
    // A dead-letter only noted is of a message no longer in play (a later send is, or the service
    // finished): it is neither the service's state nor its progress, so it does not make the
    // service read as dead-lettered, nor restart the wait before a stuck service is sent again.
    const noted = entry.kind === TIMELINE.deadLettered && isNotedDeadLetter(entry.detail);
    // Nor is a stuck republish about to send: the order reads as before it until its send is recorded.
    if (entry.service && !noted && entry.kind !== TIMELINE.republishing) {
      lastKind[entry.service] = entry.kind;
      // The stamp of the latest progress written: the monitor only asks whether it changed, and
      // measures from when it saw the change on its own clock (`observe`).
      lastProgressAt[entry.service] = entry.at;
    }
    switch (entry.kind) {
      case TIMELINE.deadLettered:
        if (entry.service === 'billing') {
          if (!noted) billingDeadLetteredAt = entry.at;
          if (requeueUntaken?.messages.some((m) => isDeadLetterOf(entry.detail, m))) {
            billingRequeues -= 1;
            billingRequeuesUntried += 1;
            requeueUntaken = undefined;
          }
        }
        break;
      case TIMELINE.requeued:
        requeueUnsentBy = entry.actor ?? MONITOR_ACTOR;
        if (entry.actor === MONITOR_ACTOR) {
          billingRequeues += 1;
          billingRequeuesMade += 1;
          requeueUntaken = { messages: [], sending: true };
        } else if (requeueUntaken) {
          // A message sent after a person's requeue is the person's, not the monitor's requeue's.
          requeueUntaken.sending = false;
        }
        break;
      case DELIVERY_KIND:
        if (entry.service === 'billing') requeueUntaken = undefined;
        break;
      case TIMELINE.republished: {
        // Written once the message went out, by the monitor: a targeted send of either kind. A
        // second entry of one message (two copies of one step) is not a second send.
        const id = republishedMessageId(entry.detail);
        if (id !== undefined && recordedSends.has(id)) break;
        if (id !== undefined) recordedSends.add(id);
        if (entry.service) lastSentAt[entry.service] = entry.at;
        if (entry.service === 'billing') requeueUnsentBy = undefined;
        if (entry.service && entry.reason?.startsWith(REPUBLISH_REASON.stuck)) republishes[entry.service] += 1;
        else if (entry.service === 'billing' && requeueUntaken?.sending && entry.reason?.startsWith(REPUBLISH_REASON.requeue)) {
          if (id !== undefined) requeueUntaken.messages.push(id);
        }
        break;
      }
      case TIMELINE.supportAction:
        if (entry.detail === 'compensate') {
          compensationRequestedBy ??= entry.actor ?? 'support';
          // A person asking again (e.g. after `attention`) gets fresh compensation runs.
          compensationRuns = 0;
        }
        break;
      case TIMELINE.compensationStarted:
        // A run that carries out one begun and never carried out is that run, not another.
        if (entry.resumes === undefined) compensationRuns += 1;
        compensationReason ??= entry.reason;
        latestRunStep = entry.step;
        break;
    }
  }

  const deadLettered = SERVICES.filter(
    (s) => s !== 'billing' && lastKind[s] === TIMELINE.deadLettered && IN_FLIGHT.includes(order.status[s]),
  );
  // A retry of the request with its key, or the intake's send that went on after its answer, may
  // have published it since, unrecorded: then one send too many, which the consumer ignores.
  const publishFailed = timeline.some((e) => e.kind === TIMELINE.publishFailed);
  const unsentTo = publishFailed ? SERVICES.filter((s) => IN_FLIGHT.includes(order.status[s]) && lastKind[s] === undefined) : [];
  const sentBeforeProgress = SERVICES.filter((s) => IN_FLIGHT.includes(order.status[s]) && lastSentAt[s] !== lastProgressAt[s]);
  const askedAgain = order.state === 'compensating' ? compensationAskedSinceLastRun(order) : undefined;
  return {
    orderId: order.id,
    state: order.state,
    status: { ...order.status },
    statusReason: currentReasons(order.statusReason),
    lastProgressAt,
    billingDeadLetteredAt: order.status.billing === 'deadlettered' ? billingDeadLetteredAt ?? order.updatedAt : undefined,
    ...(deadLettered.length ? { deadLettered } : {}),
    ...(unsentTo.length ? { unsentTo } : {}),
    ...(sentBeforeProgress.length ? { sentAt: Object.fromEntries(sentBeforeProgress.map((s) => [s, lastSentAt[s]])) } : {}),
    // Past the free ones, untried requeues count like the others: the requeues stay bounded.
    billingRequeues: billingRequeues + Math.max(0, billingRequeuesUntried - UNTRIED_REQUEUES_FREE),
    ...(billingRequeuesUntried ? { billingRequeuesUntried } : {}),
    billingRequeuesMade,
    republishes,
    requeueRequestedBy: pendingRequeueRequest(timeline)?.by,
    ...(requeueUnsentBy !== undefined && IN_FLIGHT.includes(order.status.billing) ? { requeueUnsentBy } : {}),
    compensationRequestedBy,
    compensationReason,
    ...(askedAgain ? { compensationAskedAgainBy: askedAgain.by } : {}),
    compensationRuns,
    ...(latestRunStep !== undefined ? { latestRunStep } : {}),
    ...(order.state === 'compensating' && latestRunNeverUnderway(order) ? { latestRunNeverUnderway: true as const } : {}),
    quietPolls,
  };
}

/**
 * Every requeue of billing the monitor wrote, as this snapshot knows it. Snapshots in an
 * orchestration's history may predate `billingRequeuesMade`: before untried requeues were counted
 * apart, `billingRequeues` was every one; after, it left out the untried ones up to the free ones.
 */
export function billingRequeuesMadeOf(snapshot: MonitorSnapshot): number {
  return snapshot.billingRequeuesMade ?? snapshot.billingRequeues + Math.min(snapshot.billingRequeuesUntried ?? 0, UNTRIED_REQUEUES_FREE);
}

/** Whether the monitor's requeue step number `attempt` is already written on the order this snapshot was read from. */
export function requeueRecorded(snapshot: MonitorSnapshot, attempt: number): boolean {
  return billingRequeuesMadeOf(snapshot) >= attempt;
}

/**
 * Whether the monitor's republish step number `attempt` to a stuck `service` is already written on
 * the order this snapshot was read from. Only that step's own write moves the count, and it is
 * written after the message went out, so a step run once more finds its send there.
 */
export function republishRecorded(snapshot: MonitorSnapshot, service: ServiceName, attempt: number): boolean {
  return snapshot.republishes[service] >= attempt;
}

// ---------------------------------------------------------------------------------------------
// Observations: durations on the monitor's own clock

/** A document timestamp and when the monitor first saw it, on the orchestration clock. */
export interface Sighting {
  stamp: string;
  seenAt: string;
}

/**
 * What the monitor has seen so far. Document timestamps are written by other machines (consumers,
 * the dead-letter handler) whose clocks are not the orchestration's; comparing the two would make
 * an order look stuck, or a backoff look over, because of clock skew (or a virtual clock in tests).
 * So the monitor measures every duration from the moment it first saw a change, on its own clock.
 */
export interface MonitorObservations {
  progress: Record<ServiceName, Sighting>;
  deadLetter?: Sighting;
  backlog?: Partial<Record<ServiceName, BacklogSighting>>;
}

/** The latest check of whether a stuck service is behind a backlog in its subscription (times on the monitor's clock). */
export interface BacklogSighting {
  /** The service's progress sighting (`seenAt`) it was made for: newer progress starts afresh. */
  progressSeenAt: string;
  checkedAt: string;
  /** The subscription still held the order's message or older ones, or the check could not tell. */
  waiting: boolean;
  /** When a check first found the service waiting, of the checks in a row that did. */
  waitingSince?: string;
  /** Checks in a row that found it waiting. */
  waits: number;
  /** The oldest message in the subscription when it was checked (the broker's clock). */
  oldestEnqueuedAt?: string;
}

/** What one backlog check found: when Service Bus did not answer it, waiting with no oldest message. */
export interface BacklogCheck {
  waiting: boolean;
  oldestEnqueuedAt?: string;
}

/** The observations with a backlog check of `service` made at `now` noted. */
export function noteBacklogCheck(observations: MonitorObservations, service: ServiceName, now: Date, check: BacklogCheck): MonitorObservations {
  const before = observations.backlog?.[service];
  const progressSeenAt = observations.progress[service].seenAt;
  const still = before?.waiting === true && before.progressSeenAt === progressSeenAt;
  const checkedAt = now.toISOString();
  const sighting: BacklogSighting = {
    progressSeenAt,
    checkedAt,
    waiting: check.waiting,
    ...(check.waiting ? { waitingSince: still ? before.waitingSince ?? before.checkedAt : checkedAt } : {}),
    waits: check.waiting ? (still ? before.waits : 0) + 1 : 0,
    ...(check.oldestEnqueuedAt ? { oldestEnqueuedAt: check.oldestEnqueuedAt } : {}),
  };
  return { ...observations, backlog: { ...observations.backlog, [service]: sighting } };
}

export function observe(previous: MonitorObservations | undefined, snapshot: MonitorSnapshot, now: Date): MonitorObservations {
  const seenAt = now.toISOString();
  const sighting = (before: Sighting | undefined, stamp: string): Sighting =>
    before && before.stamp === stamp ? before : { stamp, seenAt };
  const progress = Object.fromEntries(
    SERVICES.map((s) => [s, sighting(previous?.progress[s], snapshot.lastProgressAt[s])]),
  ) as Record<ServiceName, Sighting>;
  const deadLetter = snapshot.billingDeadLetteredAt ? sighting(previous?.deadLetter, snapshot.billingDeadLetteredAt) : undefined;
  // A backlog check speaks of the send the service had when it was made: progress since starts afresh.
  const backlog = Object.fromEntries(
    SERVICES.flatMap((s) => {
      const check = previous?.backlog?.[s];
      return check && check.progressSeenAt === progress[s].seenAt ? [[s, check]] : [];
    }),
  ) as Partial<Record<ServiceName, BacklogSighting>>;
  return { progress, ...(deadLetter ? { deadLetter } : {}), ...(Object.keys(backlog).length ? { backlog } : {}) };
}

/** The snapshot with its timestamps moved onto the monitor's clock, ready for `decideNextStep`. */
export function onMonitorClock(snapshot: MonitorSnapshot, observations: MonitorObservations): MonitorSnapshot {
  return {
    ...snapshot,
    lastProgressAt: Object.fromEntries(SERVICES.map((s) => [s, observations.progress[s].seenAt])) as Record<ServiceName, string>,
    billingDeadLetteredAt: snapshot.billingDeadLetteredAt ? observations.deadLetter?.seenAt : undefined,
    ...(observations.backlog ? { backlog: observations.backlog } : {}),
  };
}

/**
 * What one turn of the monitor decides from: the order as read, measured on the monitor's clock,
 * with the monitor's own memory: its quiet polls, the step of a compensation begin it never heard
 * answer (which makes the latest run unheard when that step began it), and the step of the latest
 * run it handed to a sub-orchestration itself (that run was carried out, whatever the order says:
 * a run that ended before it could note itself underway is counted, not resumed again and again).
 */
export function turnSnapshot(
  read: MonitorSnapshot,
  observations: MonitorObservations,
  quietPolls: number,
  unansweredStep?: string,
  carriedOutStep?: string,
): MonitorSnapshot {
  const { latestRunNeverUnderway: neverUnderway, ...rest } = onMonitorClock(read, observations);
  return {
    ...rest,
    quietPolls,
    // A snapshot recorded before runs named their step has none, and decides as it did then.
    ...(unansweredStep !== undefined && read.latestRunStep === unansweredStep ? { latestRunUnheard: true } : {}),
    ...(neverUnderway && (carriedOutStep === undefined || read.latestRunStep !== carriedOutStep) ? { latestRunNeverUnderway: true as const } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Decision

/** The phase the monitor shows in its custom status while carrying out a step. */
export type MonitorPhase =
  | 'watching'
  | 'behind-backlog'
  | 'checking-backlog'
  | 'awaiting-requeue'
  | 'requeueing'
  | 'republishing'
  | 'compensating'
  | 'completing'
  | 'escalating'
  | 'done';

export type Step =
  /** Nothing to do until `until`, unless the order changes first. */
  | { kind: 'wait'; until: Date; phase: 'watching' | 'behind-backlog' | 'awaiting-requeue'; why: string }
  /** Targeted republish to billing; `requestedBy` is set when a support principal asked for it. */
  | { kind: 'requeueBilling'; attempt: number; requestedBy?: string }
  /** Look whether a stuck service's subscription still holds the order's message or older ones. */
  | { kind: 'checkBacklog'; service: ServiceName; why: string }
  /** Targeted republish to a stuck consumer. */
  | { kind: 'republish'; service: ServiceName; attempt: number; why: string }
  /**
   * Undo what succeeded, in reverse. `resume`: the latest run was begun and never carried out;
   * carry it out instead of counting another.
   */
  | { kind: 'compensate'; reason: string; requestedBy?: string; resume?: true }
  | { kind: 'markCompleted' }
  | { kind: 'markAttention'; reason: string }
  /** The order is terminal; the monitor ends. */
  | { kind: 'done'; outcome: 'completed' | 'cancelled' | 'attention' };

export function phaseOf(step: Step): MonitorPhase {
  switch (step.kind) {
    case 'wait':
      return step.phase;
    case 'checkBacklog':
      return 'checking-backlog';
    case 'requeueBilling':
      return 'requeueing';
    case 'republish':
      return 'republishing';
    case 'compensate':
      return 'compensating';
    case 'markCompleted':
      return 'completing';
    case 'markAttention':
      return 'escalating';
    case 'done':
      return 'done';
  }
}

const ms = (iso: string) => Date.parse(iso);

/**
 * The next step for one order. Rules, first match wins:
 * 1. terminal order -> done;
 * 2. compensation already started -> carry it on (or escalate after too many runs, unless the
 *    latest was begun but never carried out: that run is carried out, as the same run);
 * 3. all three services done -> completed;
 * 4. a support principal asked for compensation -> compensate;
 * 5. a service failed for a business reason (e.g. out of stock) -> compensate at once;
 * 6. billing dead-lettered -> requeue after backoff (at once when support asked), compensate
 *    when the requeues are used up;
 * 7. support asked to requeue a billing still in flight -> requeue;
 * 8. a service stuck past its threshold (doubled for each republish it already had) -> targeted
 *    republish, compensate when republishes are used up; an inventory or notification whose
 *    message was dead-lettered gets its first
 *    republish after the requeue backoff instead of the stuck threshold; before either, unless the
 *    message is known gone (dead-lettered) or may never have been sent (the intake's publish
 *    failed), a check of its subscription: a service behind a backlog waits for it (checked
 *    again later), up to `maxBacklogWaitMs`;
 * 9. otherwise wait for the next poll or the next stuck deadline, whichever is first.
 */
export function decideNextStep(snapshot: MonitorSnapshot, policy: MonitorPolicy, now: Date): Step {
  const { state, status } = snapshot;
  const nowMs = now.getTime();

  if ((TERMINAL_STATES as readonly string[]).includes(state)) {
    return { kind: 'done', outcome: state as 'completed' | 'cancelled' | 'attention' };
  }

  if (state === 'compensating') {
    const latestCarriedOut = !snapshot.latestRunUnheard && !snapshot.latestRunNeverUnderway;
    if (snapshot.compensationRuns >= policy.maxCompensationRuns && latestCarriedOut) {
      return {
        kind: 'markAttention',
        reason: `compensation did not finish after ${snapshot.compensationRuns} runs`,
      };
    }
    const again = snapshot.compensationAskedAgainBy;
    if (again) return { kind: 'compensate', reason: `requested again by ${again}`, requestedBy: again };
    const reason = snapshot.compensationReason ?? 'compensation in progress';
    return snapshot.latestRunNeverUnderway ? { kind: 'compensate', reason, resume: true } : { kind: 'compensate', reason };
  }

  if (SERVICES.every((s) => status[s] === 'done')) return { kind: 'markCompleted' };

  if (snapshot.compensationRequestedBy) {
    return {
      kind: 'compensate',
      reason: `requested by ${snapshot.compensationRequestedBy}`,
      requestedBy: snapshot.compensationRequestedBy,
    };
  }

  const failed = SERVICES.find((s) => status[s] === 'failed');
  if (failed) {
    const why = snapshot.statusReason[failed];
    return { kind: 'compensate', reason: `${failed} failed${why ? `: ${why}` : ''}` };
  }

  if (status.billing === 'deadlettered') {
    if (snapshot.requeueRequestedBy) {
      return { kind: 'requeueBilling', attempt: snapshot.billingRequeues + 1, requestedBy: snapshot.requeueRequestedBy };
    }
    if (snapshot.billingRequeues >= policy.maxBillingRequeues) {
      return {
        kind: 'compensate',
        reason: `billing dead-lettered after ${snapshot.billingRequeues} requeue${snapshot.billingRequeues === 1 ? '' : 's'}`,
      };
    }
    const deadLetteredAt = ms(snapshot.billingDeadLetteredAt ?? snapshot.lastProgressAt.billing);
    // Untried requeues back off too: the outage that kept their messages from billing may go on.
    const due = deadLetteredAt + requeueDelayMs(policy, snapshot.billingRequeues + (snapshot.billingRequeuesUntried ?? 0));
    // Numbered by every requeue written, which only this step's own write moves (see requeueRecorded).
    if (nowMs >= due) return { kind: 'requeueBilling', attempt: billingRequeuesMadeOf(snapshot) + 1 };
    return {
      kind: 'wait',
      until: new Date(due),
      phase: 'awaiting-requeue',
      why: `requeue ${snapshot.billingRequeues + 1} of ${policy.maxBillingRequeues} after backoff`,
    };
  }

  if (snapshot.requeueRequestedBy && IN_FLIGHT.includes(status.billing)) {
    return { kind: 'requeueBilling', attempt: snapshot.billingRequeues + 1, requestedBy: snapshot.requeueRequestedBy };
  }

  // A requeue written whose message never went out: the same requeue once more (its step finds it
  // written and sends), until billing would count as stuck, when the stuck path takes over.
  const unsentBy = snapshot.requeueUnsentBy;
  if (unsentBy !== undefined && IN_FLIGHT.includes(status.billing) && nowMs < ms(snapshot.lastProgressAt.billing) + policy.stuckAfterMs.billing) {
    return unsentBy === MONITOR_ACTOR
      ? { kind: 'requeueBilling', attempt: billingRequeuesMadeOf(snapshot) }
      : { kind: 'requeueBilling', attempt: snapshot.billingRequeues + 1, requestedBy: unsentBy };
  }

  let nextDeadline = nowMs + pollIntervalMs(policy, snapshot.quietPolls);
  let nextWhy = 'poll';
  /** What a service behind a backlog waits for, said even when another deadline comes first. */
  let behindWhy: string | undefined;
  for (const service of SERVICES) {
    if (!IN_FLIGHT.includes(status[service])) continue;
    // Snapshots written before this field existed (an orchestration's history) have none.
    const deadLettered = snapshot.deadLettered?.includes(service) ?? false;
    const republishes = snapshot.republishes[service];
    // A message dead-lettered gets its first republish after the short requeue backoff (a host
    // that died with it on every delivery); later ones wait as long as for a stuck consumer, so an
    // outage that dead-letters messages is ridden out before the order is compensated. Each
    // republish doubles the wait for its next step: after a broker outage every order's message
    // sits behind the backlog the outage left, and with a flat minute the monitors compensated
    // orders whose messages were still queued (2 x 300 s stalls of Service Bus, before this).
    const patience = deadLettered && republishes === 0
      ? Math.min(policy.requeueBackoffBaseMs, policy.stuckAfterMs[service])
      : policy.stuckAfterMs[service] * (policy.stuckBackoffCoefficient ?? 1) ** republishes;
    let dueAt = ms(snapshot.lastProgressAt[service]) + patience;
    // Whether the subscription is looked at first: not for a dead-lettered service, whichever send
    // it was. Its latest message is in the dead-letter queue (an older send's is only noted), so
    // the subscription holds nothing of the order's and waiting for it to drain only puts off the
    // send that replaces it, or the compensation once the sends are used up, as billing's
    // dead-letters are never held up by a backlog either.
    // Nor for an event the intake could not publish: Service Bus fails a publish in an outage,
    // which leaves a backlog behind it, and the order's message may not be in it at all.
    const unsent = snapshot.unsentTo?.includes(service) ?? false;
    const checks = Boolean(policy.maxBacklogWaitMs) && !deadLettered && !unsent;
    const backlog = checks ? snapshot.backlog?.[service] : undefined;
    let backlogOver = false;
    /** Since when the checks in a row found the service behind. */
    let behindSince = nowMs;
    if (backlog?.waiting) {
      behindSince = ms(backlog.waitingSince ?? backlog.checkedAt);
      const giveUpAt = behindSince + policy.maxBacklogWaitMs!;
      const recheckAt = ms(backlog.checkedAt) + doubledWaitMs(policy.stuckAfterMs[service], BACKLOG_RECHECK_MAX_MS, Math.max(0, backlog.waits - 1));
      dueAt = Math.max(dueAt, Math.min(recheckAt, giveUpAt));
      backlogOver = nowMs >= giveUpAt;
      if (!backlogOver) {
        behindWhy ??= `${service} behind a backlog${backlog.oldestEnqueuedAt ? ` (oldest message enqueued ${backlog.oldestEnqueuedAt})` : ' (Service Bus did not answer)'}`;
      }
    }
    const what = deadLettered ? `${service} dead-lettered` : `${service} stuck ${status[service]}`;
    const waitedS = () => Math.round((nowMs - ms(snapshot.lastProgressAt[service])) / 1000);
    if (nowMs >= dueAt) {
      const checkedClear = backlog !== undefined && !backlog.waiting && ms(backlog.checkedAt) >= dueAt;
      if (checks && !checkedClear && !backlogOver) {
        return { kind: 'checkBacklog', service, why: `${service} ${status[service]} for ${waitedS()} s` };
      }
      const behindFor = backlogOver ? `, behind a backlog for ${Math.round((nowMs - behindSince) / 60_000)} min` : '';
      const attempt = republishes + 1;
      if (attempt > policy.maxRepublishes) {
        return { kind: 'compensate', reason: `${what} after ${republishes} republish${republishes === 1 ? '' : 'es'}${behindFor}` };
      }
      return {
        kind: 'republish',
        service,
        attempt,
        why: `${deadLettered ? `${what} ${waitedS()} s ago` : `${service} ${status[service]} for ${waitedS()} s`}${behindFor}`,
      };
    }
    if (dueAt < nextDeadline) {
      nextDeadline = dueAt;
      nextWhy = backlog?.waiting
        ? `${service} backlog check`
        : deadLettered
          ? `${what}: republish`
          : `${service} stuck check`;
    }
  }

  return behindWhy
    ? { kind: 'wait', until: new Date(nextDeadline), phase: 'behind-backlog', why: `${behindWhy}; next: ${nextWhy}` }
    : { kind: 'wait', until: new Date(nextDeadline), phase: 'watching', why: nextWhy };
}
