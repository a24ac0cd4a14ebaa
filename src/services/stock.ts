/** Stock reservation for an order (all items or none) and its compensation. */
import type { OrderDocument } from '../domain/order';
import { COMPENSATABLE_FROM } from '../domain/orderState';
import { appDependencies, type OrderSagaDependencies } from './dependencies';

export type ReservationOutcome = { ok: true } | { ok: false; reason: string };

/**
 * Reserves every item or none. Items are taken in SKU order; when one cannot be reserved the ones
 * already held for this order are released again. Safe to repeat: holds are per order.
 */
export async function reserveStock(order: OrderDocument, deps: OrderSagaDependencies = appDependencies()): Promise<ReservationOutcome> {
  const items = [...order.items].sort((a, b) => a.sku.localeCompare(b.sku));
  const held: typeof items = [];
  for (const item of items) {
    const result = await deps.inventory.reserve(item.sku, order.id, item.quantity);
    if (result === 'reserved' || result === 'alreadyReserved') {
      held.push(item);
      continue;
    }
    for (const h of held.reverse()) await deps.inventory.release(h.sku, order.id, h.quantity);
    return {
      ok: false,
      reason: result === 'insufficient' ? `out of stock: ${item.sku} (requested ${item.quantity})` : `unknown sku: ${item.sku}`,
    };
  }
  return { ok: true };
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

/**
 * Compensation: releases the order's stock and marks `status.inventory` `compensated`, which
 * also stops a late inventory delivery from reserving again. Idempotent.
 * `compensated` is true only for the call that changed the status.
 */
export async function releaseStock(
  order: OrderDocument,
  deps: OrderSagaDependencies = appDependencies(),
  actor = 'monitor',
): Promise<{ compensated: boolean; itemsReleased: number }> {
  const updated = await deps.orders.transitionStatus(order.id, {
    service: 'inventory',
    from: COMPENSATABLE_FROM,
    to: 'compensated',
    timeline: { at: deps.now(), kind: 'compensation', service: 'inventory', detail: 'stock released', actor },
  });
  // Release after the status change: a delivery still in flight then sees `compensated` at its
  // final patch and gives back what it reserved itself.
  const itemsReleased = await returnHeldStock(order, deps);
  return { compensated: updated !== undefined, itemsReleased };
}
