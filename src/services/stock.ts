/** Stock reservation for an order (all items or none) and its compensation. */
import type { OrderDocument } from '../domain/order';
import { COMPENSATABLE_FROM, IN_FLIGHT } from '../domain/orderState';
import { appDependencies, type OrderSagaDependencies } from './dependencies';

export type ReservationOutcome = { ok: true; heldBy: Record<string, string> } | { ok: false; reason: string };

/**
 * Reserves every item, as `delivery`, in SKU order, stopping at the first that cannot be had. Safe
 * to repeat: holds are per order, and a hold another delivery of the same order took is used as it
 * is. `heldBy` names, per SKU, the delivery whose hold the order now has (recorded with `done`).
 *
 * On failure nothing is released here: the caller records `failed` first and then puts the holds
 * right with `reconcileHolds`. Released before the outcome is recorded, a hold that another
 * delivery of the order is about to record `done` with (or one a delivery that died left, which
 * this one used) would go back while the order still counts on it, or stay taken for an order
 * that never completes.
 */
export async function reserveStock(order: OrderDocument, delivery: string, deps: OrderSagaDependencies = appDependencies()): Promise<ReservationOutcome> {
  const items = [...order.items].sort((a, b) => a.sku.localeCompare(b.sku));
  const heldBy: Record<string, string> = {};
  for (const item of items) {
    const result = await deps.inventory.reserve(item.sku, order.id, item.quantity, delivery);
    if (result === 'reserved') {
      heldBy[item.sku] = delivery;
    } else if (result === 'alreadyReserved') {
      const holder = (await deps.inventory.hold(item.sku, order.id))?.delivery;
      if (holder !== undefined) heldBy[item.sku] = holder;
    } else {
      return {
        ok: false,
        reason: result === 'insufficient' ? `out of stock: ${item.sku} (requested ${item.quantity})` : `unknown sku: ${item.sku}`,
      };
    }
  }
  return { ok: true, heldBy };
}

/**
 * Puts right the holds of an order whose inventory status has moved on (`done`, `failed`,
 * `compensated`): after a `failed` is recorded, for a delivery that lost a race to another
 * delivery or to compensation, or for one whose predecessor died. A hold that the recorded `done`
 * does not rely on (`stockHeldBy`; none does after `failed` or `compensated`) is given back, and
 * on a completed order the one it relies on is settled if that has not happened yet. While the
 * status is `pending` or `processing`, a delivery in flight owns the holds and nothing is touched.
 * Costs one read per item.
 */
export async function reconcileHolds(order: OrderDocument, deps: OrderSagaDependencies = appDependencies()): Promise<{ released: number; settled: number }> {
  const outcome = { released: 0, settled: 0 };
  const status = order.status.inventory;
  if (IN_FLIGHT.includes(status)) return outcome;
  const reliedOn = status === 'done' ? (order.stockHeldBy ?? {}) : undefined;
  for (const item of order.items) {
    const hold = await deps.inventory.hold(item.sku, order.id);
    if (!hold) continue;
    if (reliedOn && hold.delivery === reliedOn[item.sku]) {
      if (order.state === 'completed' && (await deps.inventory.settle(item.sku, order.id, hold.delivery))) outcome.settled++;
    } else if (await deps.inventory.release(item.sku, order.id, item.quantity, hold.delivery)) outcome.released++;
  }
  return outcome;
}

/** Returns every hold of this order to stock, without touching the order's status. */
export async function returnHeldStock(order: OrderDocument, deps: OrderSagaDependencies = appDependencies()): Promise<number> {
  let released = 0;
  for (const item of order.items) if (await deps.inventory.release(item.sku, order.id, item.quantity)) released++;
  return released;
}

/**
 * A completed order's stock is sold: drop its holds so SKU documents stay small. Safe to repeat.
 * Runs after the order is `completed`, when no release can come any more (compensation only
 * applies to orders that are not terminal).
 */
export async function settleStock(order: Pick<OrderDocument, 'id' | 'items'>, deps: OrderSagaDependencies = appDependencies()): Promise<number> {
  const settled = await Promise.all(order.items.map((item) => deps.inventory.settle(item.sku, order.id)));
  return settled.filter(Boolean).length;
}

/** Inventory statuses a release marks `compensated`: an out-of-stock `failed` stays what support reads. */
const RELEASE_MARKS_FROM = COMPENSATABLE_FROM.filter((status) => status !== 'failed');

/**
 * Compensation: releases the order's stock and marks `status.inventory` `compensated` (unless it
 * is `failed`, which stays what support reads), which also stops a late inventory delivery from
 * reserving again. Idempotent. `compensated` is true only for the call that changed the status.
 */
export async function releaseStock(
  order: OrderDocument,
  deps: OrderSagaDependencies = appDependencies(),
  actor = 'monitor',
): Promise<{ compensated: boolean; itemsReleased: number }> {
  const updated = await deps.orders.transitionStatus(order.id, {
    service: 'inventory',
    from: RELEASE_MARKS_FROM,
    to: 'compensated',
    timeline: { at: deps.now(), kind: 'compensation', service: 'inventory', detail: 'stock released', actor },
  });
  // Release after the status change: a delivery still in flight then sees `compensated` at its
  // final patch and gives back what it reserved itself.
  const itemsReleased = await returnHeldStock(order, deps);
  if (!updated && itemsReleased > 0) {
    // Holds still there after the status was written (a run or delivery that died, or one still
    // finishing): support sees them return.
    await deps.orders.appendTimeline(order.id, {
      at: deps.now(),
      kind: 'compensation',
      service: 'inventory',
      detail: `stock released: ${itemsReleased} ${itemsReleased === 1 ? 'hold' : 'holds'} still held, given back`,
      actor,
    });
  }
  return { compensated: updated !== undefined, itemsReleased };
}
