/**
 * The simulated payment gateway: one charge and at most one refund per order, keyed in the
 * payments ledger (`<orderId>:charge`, `<orderId>:refund`), mirrored in the order's `payment`.
 */
import type { OrderDocument } from '../domain/order';
import { COMPENSATABLE_FROM } from '../domain/orderState';
import { appDependencies, type OrderSagaDependencies } from './dependencies';

export const chargeId = (orderId: string): string => `${orderId}:charge`;
export const refundId = (orderId: string): string => `${orderId}:refund`;

export interface ChargeResult {
  /** Amount charged for this order (by this call or an earlier one); 0 when voided. */
  charged: number;
  /** True when this call made the charge. */
  created: boolean;
  /** The order was compensated before it was charged: it must never be charged. */
  voided: boolean;
}

/**
 * Charges the order total once; a repeat returns the existing charge. The order's `payment`
 * mirror is the caller's to record (billing does it in the patch that marks it done).
 */
export async function chargePayment(order: OrderDocument, deps: OrderSagaDependencies = appDependencies()): Promise<ChargeResult> {
  const { created, entry } = await deps.payments.charge({
    id: chargeId(order.id),
    orderId: order.id,
    kind: 'charge',
    amount: order.total,
    currency: order.currency,
    at: deps.now(),
  });
  if (entry.voided) return { charged: 0, created: false, voided: true };
  return { charged: entry.amount, created, voided: false };
}

/**
 * Compensation: refunds exactly what was charged, once, and marks `status.billing`
 * `compensated`. When nothing was charged yet, the charge slot is taken by a zero "void" entry
 * first, so a billing delivery arriving later can never charge a cancelled order.
 */
export async function refundPayment(
  order: OrderDocument,
  deps: OrderSagaDependencies = appDependencies(),
  actor = 'monitor',
  /** Runs only when there is a charge to refund, before the refund is asked for (the gateway's say). */
  beforeRefund?: () => Promise<void>,
): Promise<{ refunded: number; compensated: boolean }> {
  const now = deps.now();
  const { entry: charge } = await deps.payments.charge({
    id: chargeId(order.id),
    orderId: order.id,
    kind: 'charge',
    amount: 0,
    currency: order.currency,
    voided: true,
    at: now,
  });
  let refunded = 0;
  if (!charge.voided && charge.amount > 0) {
    // Both amounts are set absolutely, so the order shows the truth even if the charge's own
    // mirror write was lost (a billing delivery that charged and died, whose redelivery the
    // compensating order no longer takes). The charge goes first: a refund the gateway refuses
    // leaves the order in `attention` showing what is still to refund, and the cancellation
    // notice, written from the order, says a refund is coming rather than "not charged".
    await deps.orders.recordPayment(order.id, 'charged', charge.amount);
    await beforeRefund?.();
    const { entry } = await deps.payments.refund({
      id: refundId(order.id),
      orderId: order.id,
      kind: 'refund',
      amount: charge.amount,
      currency: charge.currency,
      at: now,
    });
    refunded = entry.amount;
    await deps.orders.recordPayment(order.id, 'refunded', refunded);
  }
  const updated = await deps.orders.transitionStatus(order.id, {
    service: 'billing',
    from: COMPENSATABLE_FROM,
    to: 'compensated',
    timeline: {
      at: now,
      kind: 'compensation',
      service: 'billing',
      detail: refunded > 0 ? `refunded ${refunded.toFixed(2)} ${order.currency}` : 'nothing charged; charge voided',
      actor,
    },
  });
  return { refunded, compensated: updated !== undefined };
}
