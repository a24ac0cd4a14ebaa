/**
 * Support actions on one order: requeue its billing, compensate it. An action is recorded on the
 * order's timeline (who, when, what) and carried out by the order's monitor, which it wakes (or
 * starts again when it has ended). The timeline entry is the request: a monitor restarted later
 * still sees it, and asking twice while a request is pending records nothing new.
 *
 * When an action applies:
 * - requeue: the order is active (accepted/processing) and billing is not finished: `pending`,
 *   `processing` or `deadlettered`. Not for `done`, `compensated`, or `failed` (a business
 *   failure a retry will not fix: compensate instead), nor when another service failed for a
 *   business reason (the monitor compensates the order), nor once compensation is asked for or
 *   running, nor once terminal.
 * - compensate: any order that is not `completed`, unless an active one whose services are all
 *   `done` (an order about to complete is not cancelled). Repeating it while compensation is requested or
 *   running, or once the order is `cancelled`, is a no-op. On an `attention` order it runs the
 *   compensation again: a person fixed what failed, every step is idempotent.
 *
 * A repeated request is answered with the pending request's person and time, not the repeat's.
 * Each action may be asked for a bounded number of times per order (`MAX_SUPPORT_REQUEUES`,
 * `MAX_SUPPORT_COMPENSATIONS`): every request grows the order's document, which Cosmos DB caps.
 */
import type { OrderDocument, TimelineEntry } from '../domain/order';
import {
  ACTIVE_STATES,
  latestSupportRequest,
  pendingRequeueRequest,
  REQUEUE_BILLING_FROM,
  requeueOverruledReason,
  supportRequestLimitReason,
  theOrderIs,
} from '../domain/orderState';
import { MONITOR_ACTOR, TIMELINE, type SupportActionName } from '../domain/monitorPolicy';
import { stillWaited } from '../deadline';
import { TransientError } from '../errors';
import type { Logger } from '../log';
import type { OrderSagaDependencies } from '../services/dependencies';
import type { MonitorClient } from '../services/ports';
import { SERVICES } from '../topology';
import type { SupportPrincipal } from './principal';

export interface SupportEnvironment {
  deps: OrderSagaDependencies;
  monitor: MonitorClient;
  log: Logger;
  /**
   * Aborted once the request stopped waiting for Cosmos DB (`withinStoreWait`): the order's read
   * stops retrying, and no write starts after. A write already sent may land; the request is a
   * timeline entry that a repeat finds pending, so asking again is safe.
   */
  signal?: AbortSignal;
}

export interface AcceptedAction {
  orderId: string;
  action: SupportActionName;
  accepted: true;
  /** True when an identical request was already pending or done: nothing new was recorded. */
  alreadyRequested: boolean;
  requestedBy: string;
  requestedAt: string;
  /** How the monitor was told: woken by an event, started again because it had ended, or not at all (nothing left to do). */
  monitor: 'woken' | 'started' | 'untouched';
}

export type SupportActionResult =
  | { kind: 'accepted'; body: AcceptedAction }
  | { kind: 'notFound' }
  /** The action does not apply to the order as it is now (answered 409). */
  | { kind: 'notApplicable'; detail: string; state: string; status: OrderDocument['status'] };

const RUNNING = ['Running', 'Pending', 'ContinuedAsNew', 'Suspended'];

/** Wakes the order's monitor, or starts it again when it is not running any more. */
async function wakeMonitor(
  order: OrderDocument,
  action: SupportActionName,
  principal: SupportPrincipal,
  env: SupportEnvironment,
): Promise<'woken' | 'started'> {
  const status = await env.monitor.status(order.id);
  if (status && RUNNING.includes(status.runtimeStatus)) {
    await env.monitor.notifyOrderChanged(order.id, { source: 'support', action, by: principal.name });
    return 'woken';
  }
  await env.monitor.start(order.id, { orderId: order.id, correlationId: order.correlationId });
  return 'started';
}

function notApplicable(order: OrderDocument, detail: string): SupportActionResult {
  return { kind: 'notApplicable', detail, state: order.state, status: order.status };
}

/** What a decision returns when its request lost the race to be recorded: decide again. */
const RACED = Symbol('raced');

/** How many times an action reads the order again when its record raced another write. */
const RECORD_ATTEMPTS = 5;

/**
 * Reads the order and lets `decide` act on it. `record` appends a support request to the timeline
 * as it was read: false when anything was recorded since (another request, say, from a double
 * click), and `decide` then returns RACED to decide anew on a fresh read. After a few such races
 * the person is asked to try again (503). A request recorded regardless would rest on a decision
 * made from an order that has moved on: a requeue written after compensation began, which nothing
 * carries out.
 */
async function decideOnFreshOrder(
  orderId: string,
  env: SupportEnvironment,
  decide: (order: OrderDocument, record: (entry: TimelineEntry) => Promise<boolean>) => Promise<SupportActionResult | typeof RACED>,
): Promise<SupportActionResult> {
  const { signal } = env;
  const beforeWrite = () => signal && stillWaited(signal);
  for (let attempt = 1; ; attempt++) {
    beforeWrite();
    const order = await env.deps.orders.get(orderId, { signal });
    if (!order) return { kind: 'notFound' };
    const result = await decide(order, (entry) => {
      beforeWrite();
      return env.deps.orders.appendTimeline(order.id, entry, { whenTimelineLength: order.timeline.length });
    });
    if (result !== RACED) return result;
    if (attempt >= RECORD_ATTEMPTS) throw new TransientError(`the order changed on each of ${RECORD_ATTEMPTS} reads while the request was recorded; ask again`);
  }
}

export function requestRequeue(orderId: string, principal: SupportPrincipal, env: SupportEnvironment): Promise<SupportActionResult> {
  const { deps } = env;
  return decideOnFreshOrder(orderId, env, async (order, record) => {
    if (!ACTIVE_STATES.includes(order.state)) {
      return notApplicable(order, `${theOrderIs(order.state)}; only an active order can be requeued`);
    }
    const billing = order.status.billing;
    if (!REQUEUE_BILLING_FROM.includes(billing)) {
      const why = billing === 'failed' ? 'failed for a business reason; compensate the order instead' : `is already ${billing}`;
      return notApplicable(order, `billing ${why}`);
    }
    // Another service failed for a business reason, or compensation is asked for and not begun yet:
    // billing is about to be refunded, not retried.
    const overruled = requeueOverruledReason(order);
    if (overruled) return notApplicable(order, overruled);

    const pending = pendingRequeueRequest(order.timeline);
    // A repeat of a pending request records nothing; a new one past the limit is refused.
    const limit = pending ? undefined : supportRequestLimitReason(order.timeline, 'requeue');
    if (limit) return notApplicable(order, limit);
    const at = deps.now();
    if (!pending) {
      const recorded = await record({ at, kind: TIMELINE.supportAction, detail: 'requeue', actor: principal.name, service: 'billing' });
      if (!recorded) return RACED;
    }
    const monitor = await wakeMonitor(order, 'requeue', principal, env);
    env.log.info('support-action', { orderId, correlationId: order.correlationId, action: 'requeue', by: principal.name, alreadyRequested: !!pending });
    const request = pending ?? { by: principal.name, at };
    return {
      kind: 'accepted',
      body: { orderId, action: 'requeue', accepted: true, alreadyRequested: !!pending, requestedBy: request.by, requestedAt: request.at, monitor },
    };
  });
}

export function requestCompensation(orderId: string, principal: SupportPrincipal, env: SupportEnvironment): Promise<SupportActionResult> {
  const { deps } = env;
  return decideOnFreshOrder(orderId, env, async (order, record) => {
    if (order.state === 'completed') {
      return notApplicable(order, 'the order is completed; compensation undoes unfinished orders only');
    }
    // Only an active order completes: one in `attention` whose services late deliveries finished is
    // left for a person all the same, and compensating again is the way out.
    if (ACTIVE_STATES.includes(order.state) && SERVICES.every((s) => order.status[s] === 'done')) {
      return notApplicable(order, 'every service is done; the order is completing');
    }

    const at = deps.now();
    const asked = latestSupportRequest(order.timeline, 'compensate');
    // Nothing new to do: already cancelled, or compensation already asked for / running.
    const already = order.state === 'cancelled' || (order.state !== 'attention' && (order.state === 'compensating' || asked !== undefined));
    if (already) {
      const monitor = order.state === 'cancelled' ? 'untouched' : await wakeMonitor(order, 'compensate', principal, env);
      // The latest person's request, or the monitor's own start when nobody asked.
      const request = asked ?? {
        by: MONITOR_ACTOR,
        at: order.timeline.find((e) => e.kind === TIMELINE.compensationStarted)?.at ?? at,
      };
      return {
        kind: 'accepted',
        body: { orderId, action: 'compensate', accepted: true, alreadyRequested: true, requestedBy: request.by, requestedAt: request.at, monitor },
      };
    }

    // Only an order in `attention` can have been asked before: it gets a bounded number of runs more.
    const limit = supportRequestLimitReason(order.timeline, 'compensate');
    if (limit) return notApplicable(order, limit);
    const request: TimelineEntry = { at, kind: TIMELINE.supportAction, detail: 'compensate', actor: principal.name };
    if (order.state === 'attention') {
      // The monitor ended with the order; it resumes compensation once the order says so again.
      // The request and that state go in one patch: a crash between two writes would keep a request
      // that nothing carries out (the monitor sweeper looks after compensating orders, not attention).
      if (env.signal) stillWaited(env.signal);
      const moved = await deps.orders.transitionState(orderId, { from: ['attention'], to: 'compensating', timeline: request });
      if (!moved) return RACED;
    } else if (!(await record(request))) return RACED;
    const monitor = await wakeMonitor(order, 'compensate', principal, env);
    env.log.info('support-action', { orderId, correlationId: order.correlationId, action: 'compensate', by: principal.name });
    return {
      kind: 'accepted',
      body: { orderId, action: 'compensate', accepted: true, alreadyRequested: false, requestedBy: principal.name, requestedAt: at, monitor },
    };
  });
}
