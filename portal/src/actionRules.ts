/**
 * When each support action applies: the API's rules (src/support/actions.ts), so the portal offers
 * a button only when the API would accept it, and says why not otherwise. Asking again while the
 * same request is pending (a requeue the monitor has not carried out, a compensation asked for or
 * running) or compensating a cancelled order is accepted there as a no-op: not offered here.
 * test/unit/portalActionRules.test.ts holds both to the same answers.
 */
import {
  ACTIVE_STATES,
  compensationPendingReason,
  latestSupportRequest,
  pendingRequeueRequest,
  REQUEUE_BILLING_FROM,
  requeueOverruledReason,
  requeuePendingReason,
  supportRequestLimitReason,
  theOrderIs,
  type TimelineLike,
} from '../../src/domain/orderState';
import { SERVICES, type ServiceName } from '../../src/topology';
import { capitalize, formatWhen, shortId, statusLabel } from './format';

// The portal reads states and statuses as plain strings (an answer may carry one it does not know).
const ACTIVE: readonly string[] = ACTIVE_STATES;
const REQUEUE_FROM: readonly string[] = REQUEUE_BILLING_FROM;
const COMPENSATE_IN: readonly string[] = [...ACTIVE_STATES, 'attention'];

export interface ActionSubject {
  state?: string;
  status?: Partial<Record<ServiceName, string>> | null;
  timeline?: TimelineLike | null;
}

/** A compensate request an active order has not begun to carry out. */
function pendingCompensation(order: ActionSubject): string | undefined {
  const request = order.state && ACTIVE.includes(order.state) ? latestSupportRequest(order.timeline ?? undefined, 'compensate') : undefined;
  return request && compensationPendingReason(request);
}

/** Why requeue does not apply now, or undefined when it does. */
export function requeueRefusal(order: ActionSubject): string | undefined {
  if (!order.state || !ACTIVE.includes(order.state)) return theOrderIs(order.state);
  const billing = order.status?.billing ?? '';
  if (billing === 'failed') return 'billing failed for a business reason; compensate instead';
  if (!REQUEUE_FROM.includes(billing)) return `billing is ${statusLabel(billing)}`;
  const overruled = requeueOverruledReason(order);
  if (overruled) return overruled;
  const requeue = pendingRequeueRequest(order.timeline ?? undefined);
  return requeue ? requeuePendingReason(requeue) : supportRequestLimitReason(order.timeline ?? undefined, 'requeue');
}

/** What the API answers an action (`SupportActionResult` in src/support/actions.ts). */
export interface ActionAnswer {
  orderId?: string;
  action?: string;
  accepted?: boolean;
  /** An identical request was already pending or done: nothing new was recorded. */
  alreadyRequested?: boolean;
  requestedBy?: string;
  /** When the pending request was made (ISO 8601). */
  requestedAt?: string;
}

/**
 * What the portal says after the API answered an action. A repeat names the pending request's
 * person and time, as the API does: two people at once learn who acted, and whether it was just now.
 */
export function actionOutcome(result: ActionAnswer | undefined, action: 'requeue' | 'compensate', orderId: string): string {
  const name = capitalize(result?.action ?? action);
  const order = shortId(orderId);
  if (result?.accepted === false) return `${name} was not accepted for order ${order}.`;
  if (result?.alreadyRequested) {
    const by = result.requestedBy ? ` by ${result.requestedBy}` : '';
    const at = result.requestedAt ? ` at ${formatWhen(result.requestedAt)}` : '';
    return `${name} was already asked for${by}${at} on order ${order}: nothing new was recorded.`;
  }
  return `${name} accepted for order ${order}. Watch the lanes and timeline below.`;
}

/** Why compensate does not apply now, or undefined when it does. */
export function compensateRefusal(order: ActionSubject): string | undefined {
  if (order.state && !COMPENSATE_IN.includes(order.state)) return theOrderIs(order.state);
  if (order.state && ACTIVE.includes(order.state) && SERVICES.every((s) => order.status?.[s] === 'done')) return 'every service is done; the order is completing';
  return pendingCompensation(order) ?? supportRequestLimitReason(order.timeline ?? undefined, 'compensate');
}
