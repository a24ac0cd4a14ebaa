/**
 * Writes that land only onto the order as it was read (the timeline's length), for steps that may
 * run twice at once: the copy whose write finds the order changed reads it again and decides anew,
 * and so finds what its twin did.
 */
import type { OrderDocument } from '../domain/order';
import type { OrderSagaDependencies } from './dependencies';

/** Reads of the order a write makes when others keep writing it between its read and its write. */
const READS = 5;
/** What `decide` answers when its write found the order changed since it was read. */
export const CHANGED = Symbol('changed');

/** The order changed under each of a write's reads: `what` did not happen (yet). */
export class OrderKeptChangingError extends Error {
  constructor(what: string) {
    super(`the order changed on each of ${READS} reads; ${what}`);
    this.name = 'OrderKeptChangingError';
  }
}

/**
 * Lets `decide` act on the order as read, its writes landing only onto that order (the timeline's
 * length): when one finds the order changed, the order is read again and `decide` runs anew, up to
 * READS reads, then fails (`what` did not happen) to be retried. `gone` answers for an order no
 * longer there.
 */
export async function onOrderAsRead<T>(
  order: OrderDocument,
  deps: OrderSagaDependencies,
  what: string,
  gone: T,
  decide: (current: OrderDocument) => Promise<T | typeof CHANGED>,
): Promise<T> {
  let current: OrderDocument | undefined = order;
  for (let read = 1; current; read++) {
    const result = await decide(current);
    if (result !== CHANGED) return result;
    if (read >= READS) throw new OrderKeptChangingError(what);
    current = await deps.orders.get(current.id);
  }
  return gone;
}
