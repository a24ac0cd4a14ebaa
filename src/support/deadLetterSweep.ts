/**
 * The consumers' dead-letter queues (`orders/Subscriptions/<service>-sub/$DeadLetterQueue`), read
 * by a timer rather than drained by a trigger, so that what Service Bus dead-letters stays there,
 * with the reason it gave, for as long as someone may need it:
 * - each message is surfaced once (`recordDeadLetter`): on its order's timeline (billing shows
 *   `deadlettered`, the monitor is woken), and, when the app cannot read it or its order does not
 *   exist, in the dead-letter archive that support lists;
 * - a readable event of an existing order leaves the queue once that order is completed or
 *   cancelled: the order's own record is then the whole story;
 * - poison (unreadable, or for no order) and the messages of orders still open or in `attention`
 *   stay in the queue. Poison stays until someone purges it.
 *
 * A run peeks (which locks nothing) a page of each queue from where the last run stopped, and
 * starts again from the head once it reaches the end, so a long queue is read across runs and a
 * message dead-lettered behind the cursor (a dead-lettered message may keep its sequence number) is
 * found on the next pass. What was recorded is remembered by sequence number in this process; a
 * new process records again, which is idempotent.
 */
import type { Logger } from '../log';
import type { OrderSagaDependencies } from '../services/dependencies';
import type { MonitorClient } from '../services/ports';
import type { ServiceName } from '../topology';
import { recordDeadLetter, type DeadLetteredMessage } from './deadLetters';

export interface PeekedDeadLetter extends DeadLetteredMessage {
  /** The message's sequence number in its dead-letter queue. */
  sequence: bigint;
}

/** One consumer's dead-letter queue. */
export interface DeadLetterQueue {
  /** Up to `max` messages from sequence number `from` on, in sequence order, locked ones included. */
  peek(from: bigint, max: number): Promise<PeekedDeadLetter[]>;
  /**
   * Takes out the messages with these sequence numbers; any other message it locks on the way is
   * put back. Locks at most `maxLocks` messages. Returns the sequence numbers it took out.
   */
  remove(sequences: bigint[], maxLocks: number): Promise<bigint[]>;
}

export interface DeadLetterSweepSettings {
  /** Messages peeked per queue per run. */
  pageSize: number;
  /** Messages a run may lock in one queue to reach those it takes out. */
  maxLocks: number;
}

export const DEFAULT_DEAD_LETTER_SWEEP: DeadLetterSweepSettings = { pageSize: 500, maxLocks: 1_000 };

export interface DeadLetterSweepReport {
  service: ServiceName;
  peeked: number;
  /** Messages recorded (surfaced or kept) in this run. */
  recorded: number;
  /** Messages taken out because their order is completed or cancelled. */
  removed: number;
  /** Why this queue's run stopped early (its messages are taken up again next run). */
  failed?: string;
}

interface Known {
  /** Set for a readable event of an existing order; unset for poison. */
  orderId?: string;
}

/** What one process remembers of one queue between runs. */
class QueueMemory {
  cursor = 0n;
  readonly known = new Map<bigint, Known>();
}

export class DeadLetterSweep {
  readonly #memory = new Map<ServiceName, QueueMemory>();

  constructor(private readonly settings: DeadLetterSweepSettings = DEFAULT_DEAD_LETTER_SWEEP) {}

  /** One run over one queue. Never throws: a failure is reported, and the next run picks it up. */
  async sweep(
    service: ServiceName,
    queue: DeadLetterQueue,
    env: { deps: OrderSagaDependencies; monitor: MonitorClient; log: Logger },
  ): Promise<DeadLetterSweepReport> {
    const memory = this.#memoryOf(service);
    const report: DeadLetterSweepReport = { service, peeked: 0, recorded: 0, removed: 0 };
    try {
      const from = memory.cursor;
      const page = await queue.peek(from, this.settings.pageSize);
      report.peeked = page.length;
      const reachedEnd = page.length < this.settings.pageSize;
      const last = page.at(-1)?.sequence;
      // Forget what is no longer in the part of the queue this page covers (taken out or purged).
      const present = new Set(page.map((m) => m.sequence));
      for (const sequence of memory.known.keys()) {
        if (sequence >= from && (reachedEnd || (last !== undefined && sequence <= last)) && !present.has(sequence)) memory.known.delete(sequence);
      }

      const ofOrders: { sequence: bigint; orderId: string }[] = [];
      for (const message of page) {
        let known = memory.known.get(message.sequence);
        if (!known) {
          const { orderId } = await recordDeadLetter(service, message, env);
          known = orderId ? { orderId } : {};
          memory.known.set(message.sequence, known);
          report.recorded++;
        }
        if (known.orderId) ofOrders.push({ sequence: message.sequence, orderId: known.orderId });
      }
      // Only once the page is recorded: a failure above reads the same page again next run.
      memory.cursor = reachedEnd || last === undefined ? 0n : last + 1n;

      const finished: bigint[] = [];
      for (const { sequence, orderId } of ofOrders) {
        const order = await env.deps.orders.get(orderId);
        // `attention` keeps its messages: a person still has to act on that order.
        if (order?.state === 'completed' || order?.state === 'cancelled') finished.push(sequence);
      }
      if (finished.length > 0) {
        const removed = await queue.remove(finished, this.settings.maxLocks);
        for (const sequence of removed) memory.known.delete(sequence);
        report.removed = removed.length;
      }
    } catch (err) {
      report.failed = err instanceof Error ? err.message : String(err);
      env.log.error(`${service}-deadletter-sweep-failed`, err);
    }
    return report;
  }

  #memoryOf(service: ServiceName): QueueMemory {
    let memory = this.#memory.get(service);
    if (!memory) this.#memory.set(service, (memory = new QueueMemory()));
    return memory;
  }
}
