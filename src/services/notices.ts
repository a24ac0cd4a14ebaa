/** The simulated notification sender: one confirmation and at most one cancellation per order. */
import type { NotificationKind, OrderDocument } from '../domain/order';
import { ACTIVE_STATES, COMPENSATABLE_FROM } from '../domain/orderState';
import { appDependencies, type OrderSagaDependencies } from './dependencies';

export const noticeId = (orderId: string, kind: NotificationKind): string => `${orderId}:${kind}`;

/**
 * Sends the notice once (create-if-absent by id). `at` is when it was first sent. `voided`: the
 * slot was taken by compensation (`voidUnsentConfirmation`, which `voids` it: takes it with a void
 * record, nothing sent) and nothing was, or will be, sent.
 */
async function deliverNotice(
  order: OrderDocument,
  kind: NotificationKind,
  message: string,
  deps: OrderSagaDependencies,
  { voids = false }: { voids?: boolean } = {},
): Promise<{ sent: boolean; at: string; voided: boolean }> {
  const { created, record } = await deps.notifications.send({
    id: noticeId(order.id, kind),
    orderId: order.id,
    kind,
    customerId: order.customerId,
    message,
    at: deps.now(),
    ...(voids ? { voided: true as const } : {}),
  });
  return { sent: created, at: record.at, voided: record.voided === true };
}

async function sendNotice(
  order: OrderDocument,
  kind: NotificationKind,
  message: string,
  deps: OrderSagaDependencies,
): Promise<{ sent: boolean; at: string; voided: boolean }> {
  const delivered = await deliverNotice(order, kind, message, deps);
  // The order's `notifications` array gets the entry once, whoever sent it.
  if (!delivered.voided) await deps.orders.recordNotification(order.id, kind, delivered.at);
  return delivered;
}

/**
 * Sends the order confirmation once. `sent` is true only for the call that sent it; `voided` when
 * compensation took its slot first (nothing is sent: the order is being cancelled). With
 * `mirror: false` the caller records it on the order itself (the notification consumer does, in
 * the same patch as its `done`).
 */
export async function sendConfirmation(
  order: OrderDocument,
  deps: OrderSagaDependencies = appDependencies(),
  { mirror = true }: { mirror?: boolean } = {},
): Promise<{ sent: boolean; at: string; voided: boolean }> {
  const message = `Your order ${order.id} is confirmed: ${order.total.toFixed(2)} ${order.currency}.`;
  return (mirror ? sendNotice : deliverNotice)(order, 'confirmation', message, deps);
}

/**
 * Compensation: takes the confirmation's slot with a void record unless a confirmation already
 * went out, so a notification delivery still at work (claimed before compensation began, asleep in
 * its work) can never confirm an order being cancelled, as the void charge keeps billing from
 * charging it. An order under compensation never completes, so it is never owed a confirmation.
 * Create-if-absent: running it again, or after the confirmation, changes nothing.
 */
export async function voidUnsentConfirmation(order: OrderDocument, deps: OrderSagaDependencies = appDependencies()): Promise<{ voided: boolean }> {
  // Only for an order compensation began on, as read: one still active or completed is owed its confirmation.
  if (order.state === 'completed' || ACTIVE_STATES.includes(order.state)) return { voided: false };
  const { voided } = await deliverNotice(order, 'confirmation', '', deps, { voids: true });
  return { voided };
}

/** Puts a confirmation that went out (the sender's record says so) on the order, once. */
export async function recordSentConfirmation(orderId: string, deps: OrderSagaDependencies = appDependencies()): Promise<void> {
  const sent = (await deps.notifications.list(orderId)).find((n) => n.kind === 'confirmation' && !n.voided);
  if (sent) await deps.orders.recordNotification(orderId, 'confirmation', sent.at);
}

/**
 * Why the order was cancelled, in words for its customer. Compensation's reason is written for
 * support (`requested by <support person>`, `billing dead-lettered after 3 requeues`): the customer
 * learns which item was out of stock, and otherwise only who cancelled it or that it could not be
 * completed, never a support person's name or the system's internals.
 */
export function customerCancellationReason(reason: string | undefined): string {
  if (reason === undefined) return '';
  const business = /^inventory failed: (.+)$/s.exec(reason);
  if (business) return `: ${business[1]!.trim()}`;
  if (/^requested (again )?by /.test(reason)) return ' by our support team';
  if (reason.startsWith('billing')) return ': the payment could not be completed';
  return ': it could not be completed';
}

/**
 * What the customer is told about their money, from the order as it is when the notice goes out:
 * a refund that has not gone through (compensation still retrying, or left for a person) is not
 * announced as done.
 */
export function cancellationMessage(order: Pick<OrderDocument, 'id' | 'currency' | 'payment'>, reason?: string): string {
  const { charged, refunded } = order.payment;
  const amount = (n: number) => `${n.toFixed(2)} ${order.currency}`;
  const money =
    charged <= 0
      ? 'You have not been charged.'
      : refunded >= charged
        ? `Your payment of ${amount(charged)} has been refunded.`
        : `A refund of ${amount(charged - refunded)} is on its way; our support team will follow up.`;
  return `Your order ${order.id} was cancelled${customerCancellationReason(reason)}. ${money}`;
}

/**
 * Compensation: sends the cancellation notice once and marks `status.notification`
 * `compensated`, so a late notification delivery does not confirm a cancelled order.
 */
export async function sendCancellation(
  order: OrderDocument,
  deps: OrderSagaDependencies = appDependencies(),
  actor = 'monitor',
  reason?: string,
): Promise<{ sent: boolean; compensated: boolean }> {
  // Runs begun before the run's plan took the slot have not: a confirmation after this notice would contradict it.
  await voidUnsentConfirmation(order, deps);
  const { sent } = await sendNotice(order, 'cancellation', cancellationMessage(order, reason), deps);
  const updated = await deps.orders.transitionStatus(order.id, {
    service: 'notification',
    from: COMPENSATABLE_FROM,
    to: 'compensated',
    timeline: { at: deps.now(), kind: 'compensation', service: 'notification', detail: 'cancellation notice sent', actor, ...(reason ? { reason } : {}) },
  });
  return { sent, compensated: updated !== undefined };
}
