/**
 * Order state rules: which consumer status changes are allowed from where, and when an order is
 * complete. Pure functions and tables; the repositories turn them into conditional patches.
 *
 * Completion: the consumer that records the LAST `done` moves the order to `completed`. Every
 * consumer's `processing -> done` patch returns the order as it is after that patch; when that
 * shows all three done, the consumer tries one conditional patch "state is accepted|processing
 * AND all three statuses are done -> completed". Patches on one document are serialised, so the
 * last `done` writer always sees all three; when two see it, they race on the conditional patch
 * and exactly one wins. A consumer whose claim already showed the other two done makes its `done`
 * patch the completing one: it also requires them done and the order active, and sets `completed`
 * (one write instead of two; under load the last service nearly always starts after the other two
 * finished). The monitor therefore never has to complete an order; it owns failures, compensation
 * and the `cancelled`/`attention` outcomes.
 */
import { SERVICES, type ServiceName } from '../topology';
import { CURRENCY } from './pricing';
import type { OrderDocument, OrderItem, OrderState, ServiceStatus, TimelineEntry } from './order';

/** Statuses a delivery may claim (-> `processing`) from. A redelivery during processing re-claims. */
export const CLAIMABLE_FROM: Record<ServiceName, readonly ServiceStatus[]> = {
  inventory: ['pending', 'processing'],
  // A requeue after a dead-letter is processed like a first delivery.
  billing: ['pending', 'processing', 'deadlettered'],
  notification: ['pending', 'processing'],
};

/** A service still on its way: no outcome recorded, nothing dead-lettered. */
export const IN_FLIGHT: readonly ServiceStatus[] = ['pending', 'processing'];

/** Order states in which consumers still make progress and completion is possible. */
export const ACTIVE_STATES: readonly OrderState[] = ['accepted', 'processing'];

/**
 * The order's state in words, for the reasons support reads: "the order is cancelled", and for
 * `attention` "the order needs attention". A state the reader does not know is said as it came.
 */
export function theOrderIs(state: string | undefined): string {
  return state === 'attention' ? 'the order needs attention' : `the order is ${state ?? 'unknown'}`;
}

/** Billing statuses from which support may requeue billing (on an active order): not finished yet. */
export const REQUEUE_BILLING_FROM: readonly ServiceStatus[] = [...IN_FLIGHT, 'deadlettered'];

/**
 * Why a requeue of billing is pointless although billing itself may be retried: another service
 * failed for a business reason (out of stock), so the monitor compensates the order, and a charge
 * now would only be refunded. Undefined when none did.
 */
export function requeueOvertakenReason(status: Partial<Record<ServiceName, string>>): string | undefined {
  const failed = SERVICES.find((s) => s !== 'billing' && status[s] === 'failed');
  return failed && `${failed} failed for a business reason; the order is compensated, not retried`;
}

/** The timeline kind of a person's request (its `detail` names the action, its `actor` the person). */
export const SUPPORT_ACTION_KIND = 'support-action';
/** The timeline kind of a billing requeue carried out (by the monitor, for itself or for a person). */
export const REQUEUED_KIND = 'requeued';
/** The timeline kind of a targeted send recorded once its message went out (a requeue's, a stuck republish's). */
export const REPUBLISHED_KIND = 'republished';
/** The timeline kind of a compensation run begun (by the monitor, for itself or for a person). */
export const COMPENSATION_STARTED_KIND = 'compensation-started';

/**
 * A `deadlettered` entry's detail names its message: `message <id>`, followed by `; <why>` when it
 * was only noted. The three subscriptions get the same message (same id), so an entry is one
 * service's by its `service`.
 */
export function deadLetterMarker(messageId: string | undefined): string {
  return `message ${messageId ?? 'without id'}`;
}

const NOTED = '; ';

/** The detail of a dead-letter only noted on the timeline (the status left as it was), and why. */
export function notedDeadLetterDetail(messageId: string | undefined, why: string): string {
  return `${deadLetterMarker(messageId)}${NOTED}${why}`;
}

/** Whether a `deadlettered` entry's detail is this message's: one id can be the start of another's (`<event>` of `<event>:billing:1`, which is of `<event>:billing:10`). */
export function isDeadLetterOf(detail: string | undefined, messageId: string | undefined): boolean {
  const marker = deadLetterMarker(messageId);
  return detail === marker || detail?.startsWith(`${marker}${NOTED}`) === true;
}

/** Why a dead-letter is only noted (`recordDeadLetter` writes these; `NOTED_WHY` reads them back). */
export const notedWhy = {
  /** A later send to the service, number `send`, is in play. */
  inPlay: (send: number, service: string): string => `send ${send} to ${service} is in play`,
  /** The service had finished (done, compensated, failed), or the order. */
  finished: (service: string, status: string, state: string): string => `${service} already ${status}, order ${state}`,
};

/**
 * The reasons a dead-letter is only noted for (`notedWhy`; the second as written before it named
 * the order's state too). By these, not by `; ` alone: a message id another sender wrote may hold
 * one, and that message's dead-letter, recorded, is the service's state.
 */
const NOTED_WHY = /; (?:send \d+ to \w+ is in play|\w+ already \w+(?:, order \w+)?)$/;

/** Whether a `deadlettered` entry was only noted: the service had finished, or a later send to it was in play. */
export function isNotedDeadLetter(detail: string | undefined): boolean {
  return detail?.startsWith(deadLetterMarker('')) === true && NOTED_WHY.test(detail);
}

/** What the support rules read of a timeline entry (the portal holds entries as the API sent them). */
export type TimelineLike = readonly Partial<Pick<TimelineEntry, 'kind' | 'detail' | 'actor' | 'at' | 'service'>>[];

/**
 * The latest request for this support action on the timeline: who asked and when. On an active
 * order a compensate request is still pending (compensation moves the order out of the active
 * states), so support asks nothing else of it.
 */
export function latestSupportRequest(timeline: TimelineLike | undefined, action: 'requeue' | 'compensate'): { by: string; at: string } | undefined {
  // The last written: the timeline is only appended to, so its order is the order of the writes.
  let latest: { by: string; at: string } | undefined;
  for (const entry of timeline ?? []) {
    if (entry.kind === SUPPORT_ACTION_KIND && entry.detail === action && entry.at !== undefined) latest = { by: entry.actor ?? 'support', at: entry.at };
  }
  return latest;
}

/**
 * A person's requeue request the monitor has not carried out yet: no `requeued` entry written
 * after it. By the entries' places (the order of the writes), not the clocks that stamped them.
 */
export function pendingRequeueRequest(timeline: TimelineLike | undefined): { by: string; at: string } | undefined {
  let pending: { by: string; at: string } | undefined;
  for (const entry of timeline ?? []) {
    if (entry.kind === REQUEUED_KIND) pending = undefined;
    else if (entry.kind === SUPPORT_ACTION_KIND && entry.detail === 'requeue' && entry.at !== undefined) pending = { by: entry.actor ?? 'support', at: entry.at };
  }
  return pending;
}

/**
 * Requests a person may make of one order, per action. Every request is recorded on the order's
 * timeline with what it sets off, and the order is one Cosmos DB item, which may not pass 2 MB: a
 * requeue of a billing that dead-letters again adds about 1.5 KB, a compensation run that fails
 * again about 0.6 KB, so a script that asks forever would fill the order in about 1,400 cycles
 * and stop every write to it. Past these a billing that keeps failing is compensated instead, and
 * an order whose compensation keeps failing is settled by a person outside this API.
 */
export const MAX_SUPPORT_REQUEUES = 10;
export const MAX_SUPPORT_COMPENSATIONS = 10;

/** How many times a person asked for this action on the order (requests recorded, not repeats). */
export function supportRequestCount(timeline: TimelineLike | undefined, action: 'requeue' | 'compensate'): number {
  let count = 0;
  for (const entry of timeline ?? []) if (entry.kind === SUPPORT_ACTION_KIND && entry.detail === action) count++;
  return count;
}

/** Why a new request for this action is refused, in the words support reads; undefined while one may still be made. */
export function supportRequestLimitReason(timeline: TimelineLike | undefined, action: 'requeue' | 'compensate'): string | undefined {
  const count = supportRequestCount(timeline, action);
  if (action === 'requeue') {
    return count >= MAX_SUPPORT_REQUEUES ? `billing was requeued ${count} times on request, the most an order takes; compensate the order instead` : undefined;
  }
  return count >= MAX_SUPPORT_COMPENSATIONS
    ? `compensation was asked for ${count} times, the most an order takes; settle what failed outside the system (the timeline names it)`
    : undefined;
}

/** What became of a person's request, as the order shows it now. */
export interface SupportRequestOutcome {
  action: 'requeue' | 'compensate';
  by: string;
  at: string;
  /**
   * `pending`: the monitor has yet to act on it. `carried-out`: it requeued billing, or began a
   * compensation run. `overtaken`: the order moved on first (billing finished, every service
   * finished, compensation began) and nothing will carry it out.
   */
  outcome: 'pending' | 'carried-out' | 'overtaken';
  /** What happened or will, in the words support reads. */
  detail: string;
  /** When: the stamp of the requeue or the run's begin that carried it out. */
  carriedOutAt?: string;
}

/**
 * Every request a person made of the order, oldest first, with what became of it. A request is
 * carried out by the first requeue (or compensation run) written after it, by the entries' places,
 * as the monitor reads them. One not carried out is pending while the monitor still would, and
 * otherwise overtaken, with why: a compensate request the order completed before (every service
 * finished before the run began), a requeue that billing's end, compensation (asked for or begun)
 * or another service's business failure made pointless: the requeue step declines from then on,
 * and its write is conditional on the timeline it read. Derived from the timeline when read, so it
 * holds for orders written before it existed.
 */
export function supportRequestOutcomes(order: {
  state?: string;
  status?: Partial<Record<ServiceName, string>> | null;
  timeline?: TimelineLike | null;
}): SupportRequestOutcome[] {
  const requests: SupportRequestOutcome[] = [];
  const open = (action: SupportRequestOutcome['action']) => requests.filter((r) => r.action === action && r.outcome === 'pending');
  // Requeue requests a compensate request followed: the monitor compensates before any requeue,
  // and its requeue step declines once it reads the compensate request.
  const compensationAskedAfter = new Set<SupportRequestOutcome>();
  // Requests whose requeue is written and its message not yet recorded sent (Service Bus did not
  // take it): the monitor sends it again on its next turn while billing is in flight.
  let unsent: SupportRequestOutcome[] = [];
  for (const entry of order.timeline ?? []) {
    if (entry.kind === SUPPORT_ACTION_KIND && (entry.detail === 'requeue' || entry.detail === 'compensate') && entry.at !== undefined) {
      if (entry.detail === 'compensate') for (const r of open('requeue')) compensationAskedAfter.add(r);
      requests.push({ action: entry.detail, by: entry.actor ?? 'support', at: entry.at, outcome: 'pending', detail: '' });
    } else if (entry.kind === REQUEUED_KIND) {
      unsent = open('requeue');
      for (const r of unsent) carryOut(r, entry, 'billing requeued');
    } else if (entry.kind === REPUBLISHED_KIND && entry.service === 'billing') {
      unsent = [];
    } else if (entry.kind === COMPENSATION_STARTED_KIND) {
      overtake(open('requeue'), 'compensation began before billing was requeued; billing is refunded, not retried');
      for (const r of open('compensate')) carryOut(r, entry, 'compensation began');
    }
  }
  const status = order.status ?? {};
  const active = order.state !== undefined && (ACTIVE_STATES as readonly string[]).includes(order.state);
  // Only an active order completes: one compensating (asked again after `attention`) whose services
  // a late delivery finished gets the run it was asked for all the same.
  const completing = active && SERVICES.every((s) => status[s] === 'done');
  // A written requeue whose message is not recorded sent, billing not done: carried out only once it
  // is. The monitor sends it again while billing is in flight on an active order, unless compensation
  // is asked for or another service failed for a business reason; then its requeue step declines to
  // send it, and it stays pending until the order is settled (a send already under way may still
  // land), overtaken after that with no send recorded (billing was never retried).
  if (status.billing !== 'done') {
    const compensationAsked = latestSupportRequest(order.timeline ?? undefined, 'compensate') !== undefined;
    const overtaken = requeueOvertakenReason(status);
    const inFlight = status.billing !== undefined && (IN_FLIGHT as readonly string[]).includes(status.billing);
    const sendsAgain = active && !compensationAsked && overtaken === undefined && inFlight;
    const why = compensationAsked ? 'compensation was asked for before its message was recorded sent' : (overtaken ?? theOrderIs(order.state));
    for (const r of unsent) {
      delete r.carriedOutAt;
      if (sendsAgain) {
        r.outcome = 'pending';
        r.detail = `${r.detail}; its message has not gone out yet: the monitor sends it again`;
      } else if (active || order.state === 'compensating') {
        r.outcome = 'pending';
        r.detail = `${r.detail}; its message has not gone out yet, and ${why}: the monitor does not send it again`;
      } else overtake([r], `${why}; billing was not retried (a send that lands late finds it compensated)`);
    }
  }
  for (const r of open('requeue').filter((r) => !unsent.includes(r))) {
    const billing = status.billing;
    const why =
      billing === 'done'
        ? 'billing finished before it was requeued'
        : billing === 'failed'
          ? 'billing failed for a business reason before it was requeued'
          : compensationAskedAfter.has(r)
            ? 'compensation was asked for after it; the order is compensated, not retried'
            : !active
              ? `${theOrderIs(order.state)}; billing was not requeued`
              : billing !== undefined && !(REQUEUE_BILLING_FROM as readonly string[]).includes(billing)
                ? `billing is ${billing}; it was not requeued`
                : requeueOvertakenReason(status);
    if (why) overtake([r], why);
    else r.detail = 'the monitor requeues billing at its next look';
  }
  for (const r of open('compensate')) {
    if (order.state === 'completed' || completing) {
      overtake([r], `every service finished before compensation began: the order ${order.state === 'completed' ? 'completed' : 'is completing'}, and nothing was undone`);
    } else if (active || order.state === 'compensating') {
      r.detail = 'the monitor begins compensation at its next look';
    } else {
      overtake([r], `${theOrderIs(order.state)}; compensation did not begin after this request`);
    }
  }
  return requests;
}

function carryOut(request: SupportRequestOutcome, entry: TimelineLike[number], what: string): void {
  request.outcome = 'carried-out';
  request.detail = entry.detail ? `${what} (${entry.detail})` : what;
  if (entry.at !== undefined) request.carriedOutAt = entry.at;
}

function overtake(requests: SupportRequestOutcome[], why: string): void {
  for (const r of requests) {
    r.outcome = 'overtaken';
    r.detail = why;
  }
}

/** Why a requeue asked for again records nothing, in the words support reads. */
export function requeuePendingReason(request: { by: string }): string {
  return `a requeue was asked for by ${request.by}; the monitor carries it out`;
}

/** Why requeue cannot apply while compensation is asked for, in the words support reads. */
export function compensationPendingReason(request: { by: string }): string {
  return `compensation was asked for by ${request.by}; the order is being cancelled`;
}

/**
 * Why billing is not to be requeued though it could be retried, in the words support reads: another
 * service failed for a business reason, or compensation is asked for on an active order and has not
 * begun (compensation moves the order out of the active states). Undefined when neither. Support's
 * requeue is refused for it, and the monitor's requeue step declines for it.
 */
export function requeueOverruledReason(order: { state?: string; status?: Partial<Record<ServiceName, string>> | null; timeline?: TimelineLike | null }): string | undefined {
  const overtaken = requeueOvertakenReason(order.status ?? {});
  if (overtaken) return overtaken;
  const active = order.state !== undefined && (ACTIVE_STATES as readonly string[]).includes(order.state);
  const compensation = active ? latestSupportRequest(order.timeline ?? undefined, 'compensate') : undefined;
  return compensation && compensationPendingReason(compensation);
}

/** Statuses no reason describes: a service that moves to one loses the reason it had. */
const REASONLESS: readonly ServiceStatus[] = [...IN_FLIGHT, 'done'];
/** Statuses recorded with a reason (a business failure, a dead-letter). */
const REASONED: readonly ServiceStatus[] = ['failed', 'deadlettered'];

/** Every status but `compensated` can be compensated; compensating twice is a no-op. */
export const COMPENSATABLE_FROM: readonly ServiceStatus[] = ['pending', 'processing', 'done', 'failed', 'deadlettered'];

/**
 * What a status change writes to `statusReason[service]`: its own reason when it has one; null
 * when it may leave a status recorded with a reason for one no reason describes (`pending`,
 * `processing`, `done`: a requeued billing is no longer dead-lettered, and the dead-letter's reason
 * would say it still is); otherwise nothing (a change that cannot leave such a status has no
 * reason to clear, and a compensated service keeps the reason it failed or was dead-lettered for).
 * Null rather than removed: a patch cannot remove a path that may not be there.
 */
export function statusReasonAfter(change: { from: readonly ServiceStatus[]; to: ServiceStatus; reason?: string }): string | null | undefined {
  if (change.reason !== undefined) return change.reason;
  return REASONLESS.includes(change.to) && change.from.some((s) => REASONED.includes(s)) ? null : undefined;
}

/** The reasons that still describe their service's status. */
export function currentReasons(reasons: OrderDocument['statusReason'] | undefined): Partial<Record<ServiceName, string>> {
  const current: Partial<Record<ServiceName, string>> = {};
  for (const service of SERVICES) {
    const reason = reasons?.[service];
    if (typeof reason === 'string') current[service] = reason;
  }
  return current;
}

export const ALL_DONE: Record<ServiceName, readonly ServiceStatus[]> = {
  inventory: ['done'],
  billing: ['done'],
  notification: ['done'],
};

export function isTerminal(state: OrderState): boolean {
  return state === 'completed' || state === 'cancelled' || state === 'attention';
}

/** True when the order has every service done but has not been marked completed yet. */
export function isReadyToComplete(order: Pick<OrderDocument, 'state' | 'status'>): boolean {
  return othersDone(order, undefined);
}

/** True when the order is active and every service but `service` is done: its `done` is the last. */
export function othersDone(order: Pick<OrderDocument, 'state' | 'status'>, service: ServiceName | undefined): boolean {
  return ACTIVE_STATES.includes(order.state) && SERVICES.every((s) => s === service || order.status[s] === 'done');
}

export interface NewOrderInput {
  id: string;
  eventId: string;
  correlationId: string;
  customerId: string;
  items: OrderItem[];
  total: number;
  now: string;
  simulate?: { billingFailures?: number };
  idempotencyKey?: string;
}

export function newOrder(input: NewOrderInput): OrderDocument {
  const accepted: TimelineEntry = { at: input.now, kind: 'accepted', detail: `total ${input.total.toFixed(2)} ${CURRENCY}` };
  return {
    id: input.id,
    customerId: input.customerId,
    items: input.items,
    currency: CURRENCY,
    total: input.total,
    state: 'accepted',
    status: { inventory: 'pending', billing: 'pending', notification: 'pending' },
    statusReason: {},
    payment: { charged: 0, refunded: 0 },
    notifications: [],
    notified: { confirmation: false, cancellation: false },
    timeline: [accepted],
    correlationId: input.correlationId,
    eventId: input.eventId,
    createdAt: input.now,
    updatedAt: input.now,
    ...(input.simulate?.billingFailures !== undefined ? { simulate: { billingFailures: input.simulate.billingFailures } } : {}),
    ...(input.idempotencyKey !== undefined ? { idempotencyKey: input.idempotencyKey } : {}),
    published: false,
    billingAttempts: 0,
  };
}

/** Whether the billing step must fail this attempt (simulated gateway failure). */
export function billingMustFail(attempt: number, order: Pick<OrderDocument, 'simulate'>, billingFaultSwitchOn: boolean): boolean {
  return billingFaultSwitchOn || attempt <= (order.simulate?.billingFailures ?? 0);
}
