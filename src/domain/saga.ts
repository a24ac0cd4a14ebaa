/**
 * Saga compensation plan: which forward steps of an order to undo, and in which order. Pure; the
 * compensation orchestration carries the plan out step by step.
 */
import type { ServiceName } from '../topology';
import type { OrderDocument, TimelineEntry } from './order';

export type CompensationName = 'refundPayment' | 'releaseStock' | 'sendCancellation';

export interface CompensationStep {
  name: CompensationName;
  /** The forward step it undoes; the cancellation notice stands for the whole order. */
  undoes: ServiceName | 'order';
}

/**
 * The forward steps that may have taken effect, each with its compensation. A step counts when
 * it is `done`, or when it may still have taken effect without saying so yet (in flight, or
 * dead-lettered after a charge that went through and a failure after it): the compensations
 * themselves are create-if-absent and check the ledger and reservations, so undoing a step that
 * never happened is a recorded no-op, while skipping one that did would lose money or stock.
 *
 * A step that ended in `failed` is a business failure that took no effect (inventory reserves
 * all or none; a declined charge charges nothing) and one already `compensated` is undone.
 *
 * Stock is the exception: its status is written before its holds are back. Compensation marks
 * inventory `compensated` first (so a delivery still in flight gives back what it reserved), and
 * the out-of-stock path records `failed` first. A run or a delivery that died in between leaves
 * holds behind: an inventory redelivery gives them back, but not when the dying delivery was the
 * last Service Bus allows, nor for a compensation run. Returning holds that are gone is a no-op,
 * so stock is always released, whatever its status says.
 */
const UNDO: Partial<Record<ServiceName, CompensationName>> = {
  billing: 'refundPayment',
  inventory: 'releaseStock',
};

function completedAt(order: OrderDocument, service: ServiceName): string {
  const done = (order.timeline ?? []).filter((e: TimelineEntry) => e.service === service && e.kind === 'done');
  // Not done yet (in flight): treat it as the most recent step, so it is undone first.
  return done.length ? done[done.length - 1].at : '\uffff';
}

/**
 * Compensations in reverse order of the forward steps that succeeded, then exactly one
 * cancellation notice. Running the plan twice is safe: every step is idempotent.
 */
export function planCompensation(order: OrderDocument): CompensationStep[] {
  const undoable = (Object.keys(UNDO) as ServiceName[]).filter((service) => {
    const status = order.status[service];
    return service === 'inventory' || (status !== 'failed' && status !== 'compensated');
  });
  const reversed = undoable.sort((a, b) => {
    const ta = completedAt(order, a);
    const tb = completedAt(order, b);
    return ta < tb ? 1 : ta > tb ? -1 : 0;
  });
  return [
    ...reversed.map((service) => ({ name: UNDO[service]!, undoes: service })),
    { name: 'sendCancellation', undoes: 'order' },
  ];
}

/** How a compensation run ended, recorded on the order and returned to the monitor. */
export interface CompensationOutcome {
  outcome: 'cancelled' | 'attention';
  /** Compensations that kept failing after their retries, with the last error. */
  failures: { name: CompensationName; error: string }[];
}

export function compensationOutcome(failures: CompensationOutcome['failures']): CompensationOutcome {
  return { outcome: failures.length ? 'attention' : 'cancelled', failures };
}

/** The instance id of the order's compensation run number `attempt` (its sub-orchestration). */
export function compensationRunInstanceId(orderId: string, attempt: number): string {
  return `${orderId}:compensation:${attempt}`;
}
