/**
 * What must hold after the fault-injection run, as a pure function of what the API shows at the
 * end: every order terminal, stock conserved per SKU, money conserved per order, notices sent
 * exactly as often as the outcome says. Pure so the checker itself is tested on synthetic data.
 */

/** The parts of `GET /api/orders/{id}` the checks read. */
export interface ObservedOrder {
  id: string;
  state: string;
  total: number;
  items: { sku: string; quantity: number }[];
  status: Record<string, string>;
  statusReason?: Record<string, string>;
  payment: { charged: number; refunded: number };
  notifications: { kind: string; at: string }[];
  /** What happened to the order, as `GET /api/orders/{id}` lists it. */
  timeline?: { kind: string; service?: string; detail?: string; reason?: string }[];
}

/** `GET /api/inventory/{sku}`. */
export interface ObservedStock {
  sku: string;
  available: number;
  reserved: number;
  /** Orders holding part of `reserved` (`GET /api/inventory/{sku}`; read for the final stock). */
  holds?: { orderId: string; quantity: number }[];
}

export interface ChaosObservation {
  /** Stock before the first order. */
  initialStock: ObservedStock[];
  /** Stock after the run. */
  finalStock: ObservedStock[];
  /** Every order the run accepted, as last read. */
  orders: ObservedOrder[];
  /** Orders the run tried to place but never got a 202 for (ids unknown: their idempotency keys). */
  neverAccepted: string[];
  /** Unreadable copies of orders' events the run sent to one consumer each (they must dead-letter). */
  corruptCopies?: CorruptCopy[];
  /** What the consumers' dead-letter queues held at the end (peeked). */
  deadLetterQueues?: QueuedDeadLetter[];
}

export interface QueuedDeadLetter {
  service: string;
  messageId: string;
  /** Its `order_id` application property. */
  orderId?: string;
}

export interface CorruptCopy {
  orderId: string;
  service: string;
  messageId: string;
}

/** Whether the order's timeline shows this copy dead-lettered (its record of the dead-letter carries the message id). */
export function corruptCopySurfaced(copy: CorruptCopy, order: ObservedOrder | undefined): boolean {
  return (order?.timeline ?? []).some((e) => e.kind === 'deadlettered' && e.service === copy.service && (e.detail ?? '').startsWith(`message ${copy.messageId}`));
}

/**
 * The queued messages the dead-letter sweep takes out: those of a completed or cancelled order,
 * except the unreadable copies the run sent (poison stays).
 */
export function messagesOfFinishedOrders(
  queued: QueuedDeadLetter[],
  stateOf: (orderId: string) => string | undefined,
  corruptCopies: CorruptCopy[],
): QueuedDeadLetter[] {
  const copies = new Set(corruptCopies.map((c) => c.messageId));
  return queued.filter((m) => {
    const state = m.orderId !== undefined ? stateOf(m.orderId) : undefined;
    return !copies.has(m.messageId) && (state === 'completed' || state === 'cancelled');
  });
}

export type ViolationKind =
  | 'not-accepted'
  | 'not-terminal'
  | 'attention'
  | 'money'
  | 'confirmation'
  | 'cancellation-notice'
  | 'cancelled-without-cause'
  | 'services'
  | 'stock'
  | 'hold'
  | 'dead-letter'
  | 'dead-letter-queue';

export interface Violation {
  kind: ViolationKind;
  /** Order id, SKU or idempotency key the violation is about. */
  subject: string;
  detail: string;
}

export interface StockLine {
  sku: string;
  initial: number;
  available: number;
  reserved: number;
  /** Units of this SKU in completed orders: what must be reserved now (on top of what was before). */
  completedQuantity: number;
  ok: boolean;
}

export interface ChaosVerdict {
  counts: Record<string, number>;
  stock: StockLine[];
  violations: Violation[];
}

const CENT = 0.005;
const TERMINAL = new Set(['completed', 'cancelled']);

/**
 * The holds on a SKU of orders that finished (completed or cancelled), with their order: there
 * should be none (a completed order's hold is settled, a cancelled one's given back).
 */
export function holdsOfFinishedOrders(
  line: ObservedStock,
  orders: ReadonlyMap<string, ObservedOrder>,
): { hold: NonNullable<ObservedStock['holds']>[number]; order: ObservedOrder }[] {
  return (line.holds ?? []).flatMap((hold) => {
    const order = orders.get(hold.orderId);
    return order && TERMINAL.has(order.state) ? [{ hold, order }] : [];
  });
}

export function checkChaosInvariants(observation: ChaosObservation): ChaosVerdict {
  const violations: Violation[] = [];
  const counts: Record<string, number> = { accepted: observation.orders.length, 'never accepted': observation.neverAccepted.length };

  for (const key of observation.neverAccepted) {
    violations.push({ kind: 'not-accepted', subject: key, detail: 'no 202 for this Idempotency-Key within the time limit' });
  }

  for (const order of observation.orders) {
    counts[order.state] = (counts[order.state] ?? 0) + 1;
    const v = (kind: ViolationKind, detail: string) => violations.push({ kind, subject: order.id, detail });
    if (order.state === 'attention') {
      const reasons = Object.entries(order.statusReason ?? {}).map(([s, r]) => `${s}: ${r}`).join('; ');
      v('attention', `needs a person${reasons ? ` (${reasons})` : ''}; status ${JSON.stringify(order.status)}`);
      continue;
    }
    if (!TERMINAL.has(order.state)) {
      v('not-terminal', `still ${order.state}; status ${JSON.stringify(order.status)}`);
      continue;
    }
    const net = order.payment.charged - order.payment.refunded;
    const confirmations = order.notifications.filter((n) => n.kind === 'confirmation').length;
    const cancellations = order.notifications.filter((n) => n.kind === 'cancellation').length;
    if (order.state === 'completed') {
      if (Math.abs(net - order.total) > CENT) v('money', `completed but charged ${order.payment.charged} - refunded ${order.payment.refunded} != total ${order.total}`);
      if (confirmations !== 1) v('confirmation', `completed with ${confirmations} confirmations (expected exactly 1)`);
      if (cancellations !== 0) v('cancellation-notice', `completed but sent ${cancellations} cancellation notices`);
      const notDone = Object.entries(order.status).filter(([, s]) => s !== 'done');
      if (notDone.length > 0) v('services', `completed with ${notDone.map(([svc, s]) => `${svc} ${s}`).join(', ')}`);
    } else {
      if (Math.abs(net) > CENT) v('money', `cancelled but charged ${order.payment.charged} - refunded ${order.payment.refunded} != 0`);
      if (confirmations > 1) v('confirmation', `cancelled with ${confirmations} confirmations (at most 1)`);
      if (cancellations !== 1) v('cancellation-notice', `cancelled with ${cancellations} cancellation notices (expected exactly 1)`);
      // Faults must not cost a customer a valid order: only a business failure (out of stock) may
      // cancel one; the run's billing failures are all fewer than its retries can ride out.
      if (order.timeline && !order.timeline.some((e) => e.kind === 'failed')) {
        const why = order.timeline.find((e) => e.kind === 'compensation-started')?.reason ?? 'no compensation reason on the timeline';
        v('cancelled-without-cause', `cancelled with no business failure on its timeline: ${why}`);
      }
    }
  }

  const ordersById = new Map(observation.orders.map((o) => [o.id, o]));
  for (const copy of observation.corruptCopies ?? []) {
    if (!corruptCopySurfaced(copy, ordersById.get(copy.orderId))) {
      violations.push({ kind: 'dead-letter', subject: copy.orderId, detail: `unreadable copy ${copy.messageId} sent to ${copy.service} is not on the order's timeline as dead-lettered` });
    }
  }

  // Poison stays in its dead-letter queue; a finished order's own messages are taken out.
  if (observation.deadLetterQueues) {
    const queued = new Set(observation.deadLetterQueues.map((m) => `${m.service} ${m.messageId}`));
    for (const copy of observation.corruptCopies ?? []) {
      if (!queued.has(`${copy.service} ${copy.messageId}`)) {
        violations.push({ kind: 'dead-letter-queue', subject: copy.orderId, detail: `unreadable copy ${copy.messageId} is not in ${copy.service}'s dead-letter queue` });
      }
    }
    for (const m of messagesOfFinishedOrders(observation.deadLetterQueues, (id) => ordersById.get(id)?.state, observation.corruptCopies ?? [])) {
      const state = ordersById.get(m.orderId!)?.state;
      violations.push({ kind: 'dead-letter-queue', subject: m.orderId!, detail: `${state} order's message ${m.messageId} is still in ${m.service}'s dead-letter queue` });
    }
  }

  const completedQuantity = new Map<string, number>();
  for (const order of observation.orders) {
    if (order.state !== 'completed') continue;
    for (const item of order.items) completedQuantity.set(item.sku, (completedQuantity.get(item.sku) ?? 0) + item.quantity);
  }
  const finalBySku = new Map(observation.finalStock.map((s) => [s.sku, s]));
  const describe = (order: ObservedOrder | undefined) => (order ? `${order.state}, inventory ${order.status['inventory']}` : 'not an order of this run');
  const stock: StockLine[] = observation.initialStock.map((before) => {
    const after = finalBySku.get(before.sku);
    const initial = before.available + before.reserved;
    const line: StockLine = {
      sku: before.sku,
      initial,
      available: after?.available ?? NaN,
      reserved: after?.reserved ?? NaN,
      completedQuantity: completedQuantity.get(before.sku) ?? 0,
      ok: true,
    };
    const problems: string[] = [];
    if (!after) problems.push('missing after the run');
    else {
      if (after.available + after.reserved !== initial) problems.push(`available ${after.available} + reserved ${after.reserved} != initial ${initial}`);
      if (after.reserved - before.reserved !== line.completedQuantity) {
        problems.push(`reserved ${after.reserved} (was ${before.reserved}) but completed orders hold ${line.completedQuantity}`);
      }
      if (after.available < 0) problems.push(`available is negative (${after.available}): oversold`);
    }
    if (problems.length > 0) {
      line.ok = false;
      // Name the orders still holding some of it, and where they ended.
      const holds = (after?.holds ?? []).map((h) => `${h.orderId} x${h.quantity} (${describe(ordersById.get(h.orderId))})`);
      if (holds.length > 0) problems.push(`holds left: ${holds.join(', ')}`);
      violations.push({ kind: 'stock', subject: before.sku, detail: problems.join('; ') });
    }
    for (const { hold, order } of after ? holdsOfFinishedOrders(after, ordersById) : []) {
      violations.push({ kind: 'hold', subject: before.sku, detail: `${hold.orderId} x${hold.quantity} still held by a ${describe(order)} order` });
    }
    return line;
  });
  for (const sku of completedQuantity.keys()) {
    if (!observation.initialStock.some((s) => s.sku === sku)) {
      violations.push({ kind: 'stock', subject: sku, detail: 'completed orders hold a SKU that was not in the catalog before the run' });
    }
  }
  return { counts, stock, violations };
}
