/**
 * Stores whose every call goes through a function the test gives: it may hold the call until a
 * scheduler lets it go, fail it before it lands, or land it and then fail (an answer lost, a host
 * that died). The interleaving property tests build each operation's view of the stores with it.
 */
import type { OrderSagaDependencies } from '../../../src/services/dependencies';

/** `args` are the call's own, so a view can see what it was given (an abort signal, say). */
export type Through = (name: string, land: () => Promise<unknown>, args: readonly unknown[]) => Promise<unknown>;

/** `target` with each of its methods called through `through`, by the method's name. */
export function callsThrough<T extends object>(target: T, through: Through): T {
  return new Proxy(target, {
    get(t, property) {
      const value = Reflect.get(t, property, t) as unknown;
      return typeof value === 'function' ? (...args: unknown[]) => through(String(property), () => Promise.resolve(value.apply(t, args)), args) : value;
    },
  });
}

/** Every store of `base` called through `through`; the simulated work (`sleep`) as given. */
export function storesThrough(base: OrderSagaDependencies, through: Through, sleep: OrderSagaDependencies['sleep']): OrderSagaDependencies {
  return {
    ...base,
    orders: callsThrough(base.orders, through),
    inventory: callsThrough(base.inventory, through),
    payments: callsThrough(base.payments, through),
    notifications: callsThrough(base.notifications, through),
    idempotency: callsThrough(base.idempotency, through),
    control: callsThrough(base.control, through),
    deadLetters: callsThrough(base.deadLetters, through),
    publisher: callsThrough(base.publisher, through),
    sleep,
  };
}
