/** The simulated notification sender: one confirmation and at most one cancellation per order. */
import type { NotificationKind, OrderDocument } from '../domain/order';
import { COMPENSATABLE_FROM } from '../domain/orderState';
import { appDependencies, type OrderSagaDependencies } from './dependencies';

export const noticeId = (orderId: string, kind: NotificationKind): string => `${orderId}:${kind}`;

async function sendNotice(order: OrderDocument, kind: NotificationKind, message: string, deps: OrderSagaDependencies): Promise<boolean> {
  const { created, record } = await deps.notifications.send({
    id: noticeId(order.id, kind),
    orderId: order.id,
    kind,
    customerId: order.customerId,
    message,
    at: deps.now(),
  });
  // The order's `notifications` array gets the entry once, whoever sent it.
  await deps.orders.recordNotification(order.id, kind, record.at);
  return created;
}

/** Sends the order confirmation once. `sent` is true only for the call that sent it. */
export async function sendConfirmation(order: OrderDocument, deps: OrderSagaDependencies = appDependencies()): Promise<{ sent: boolean }> {
  const message = `Your order ${order.id} is confirmed: ${order.total.toFixed(2)} ${order.currency}.`;
  return { sent: await sendNotice(order, 'confirmation', message, deps) };
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
  const message = `Your order ${order.id} was cancelled${reason ? `: ${reason}` : ''}. Any payment has been refunded.`;
  const sent = await sendNotice(order, 'cancellation', message, deps);
  const updated = await deps.orders.transitionStatus(order.id, {
    service: 'notification',
    from: COMPENSATABLE_FROM,
    to: 'compensated',
    timeline: { at: deps.now(), kind: 'compensation', service: 'notification', detail: 'cancellation notice sent', actor, ...(reason ? { reason } : {}) },
  });
  return { sent, compensated: updated !== undefined };
}
