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
 *   stay in the queue. Poison stays until someone purges it. One enqueued more than an hour ago is
 *   deferred when a removal has to get past it (still in the queue, still shown by a peek, but no
 *   longer in the way of receives).
 *
 * A run peeks (which locks nothing) a page of each queue from where the last run stopped, without
 * bodies, and starts again from the head once it reaches the end, so a long queue is read across
 * runs and a message dead-lettered behind the cursor (a dead-lettered message may keep its sequence
 * number) is found on the next pass. Bodies are read only for messages not recorded yet. What was
 * recorded is remembered by sequence number in this process; a new process records again, which is
 * idempotent. Each message is recorded on its own, so one that keeps failing holds up nothing else.
 * The orders of kept messages are read every run while fresh, then every `recheckMs`.
 */
import type { OrderDocument } from '../domain/order';
import { DEAD_LETTER_SWEEP_FAILED_EVENT, type Logger } from '../log';
import type { OrderSagaDependencies } from '../services/dependencies';
import { OrderKeptChangingError } from '../services/orderAsRead';
import type { MonitorClient } from '../services/ports';
import type { ServiceName } from '../topology';
import { recordDeadLetter, type DeadLetteredMessage } from './deadLetters';

export interface PeekedDeadLetter extends DeadLetteredMessage {
  /** The message's sequence number in its dead-letter queue. */
  sequence: bigint;
  /** Set aside by an earlier removal (enqueued long ago): taken by sequence number, not from the head. */
  deferred?: boolean;
}

export type RemovalTarget = Pick<PeekedDeadLetter, 'sequence' | 'deferred'>;

export interface RemovalLimits {
  /** Messages a removal may lock from the head of the queue. */
  maxLocks: number;
  /** A kept message enqueued before this, met on the way, is deferred rather than put back. */
  deferEnqueuedBefore: Date;
}

/** One consumer's dead-letter queue. */
export interface DeadLetterQueue {
  /**
   * Up to `max` messages from sequence number `from` on, in sequence order, locked ones included;
   * without their bodies unless `bodies` (a long queue is read every run, its bodies only once).
   */
  peek(from: bigint, max: number, options: { bodies: boolean }): Promise<PeekedDeadLetter[]>;
  /**
   * Takes out these messages: deferred ones by sequence number, the others by receiving from the
   * head, where any other message locked on the way is put back, or deferred when it is older than
   * `deferEnqueuedBefore`. Returns the sequence numbers it took out.
   */
  remove(targets: RemovalTarget[], limits: RemovalLimits): Promise<bigint[]>;
}

export interface DeadLetterSweepSettings {
  /** Messages peeked per queue per run. */
  pageSize: number;
  /** Messages a run may lock in one queue to reach those it takes out. */
  maxLocks: number;
  /**
   * A kept message enqueued longer ago than this (its original enqueue time: a dead-lettered
   * message keeps it) is deferred when a removal meets it, so that kept messages at the head never
   * hide for long those behind them that can go.
   */
  deferAfterMs: number;
  /** A message recorded this recently has its order read every run (it is likely to finish soon)... */
  freshMs: number;
  /** ...an older one at most this often (an order in `attention` may wait days for a person). */
  recheckMs: number;
  /** Order reads at once. */
  readConcurrency: number;
}

/** Passes in a row that find a message's order too busy to record it onto before that is alerted on. */
const BUSY_PASSES_BEFORE_ALERT = 10;

export const DEFAULT_DEAD_LETTER_SWEEP: DeadLetterSweepSettings = {
  pageSize: 500,
  maxLocks: 1_000,
  deferAfterMs: 3_600_000,
  freshMs: 120_000,
  recheckMs: 30_000,
  readConcurrency: 8,
};

export interface DeadLetterSweepReport {
  service: ServiceName;
  peeked: number;
  /** Messages recorded (surfaced or kept) in this run. */
  recorded: number;
  /** Messages taken out because their order is completed or cancelled. */
  removed: number;
  /** Messages that could not be recorded, or whose order could not be read (tried again; the others went on). */
  unrecorded?: number;
  /** Why this queue's run stopped (its messages are taken up again next run). */
  failed?: string;
}

interface Known {
  /** Set for a readable event of an existing order; unset for poison. */
  orderId?: string;
  /** When this process recorded it, and last read its order (ms). */
  since: number;
  checkedAt: number;
}

/** What one process remembers of one queue between runs. */
class QueueMemory {
  cursor = 0n;
  readonly known = new Map<bigint, Known>();
  /** Failed attempts to record a message or read its order, by sequence number. */
  readonly failures = new Map<bigint, number>();
}

type SweepEnvironment = { deps: OrderSagaDependencies; monitor: MonitorClient; log: Logger };

export class DeadLetterSweep {
  readonly #memory = new Map<ServiceName, QueueMemory>();

  constructor(
    private readonly settings: DeadLetterSweepSettings = DEFAULT_DEAD_LETTER_SWEEP,
    private readonly clock: () => number = Date.now,
  ) {}

  /** One run over one queue. Never throws: a failure is reported and logged, and the next run picks it up. */
  async sweep(service: ServiceName, queue: DeadLetterQueue, env: SweepEnvironment): Promise<DeadLetterSweepReport> {
    const memory = this.#memoryOf(service);
    const report: DeadLetterSweepReport = { service, peeked: 0, recorded: 0, removed: 0 };
    try {
      const from = memory.cursor;
      const page = await queue.peek(from, this.settings.pageSize, { bodies: false });
      report.peeked = page.length;
      const reachedEnd = page.length < this.settings.pageSize;
      const last = page.at(-1)?.sequence;
      memory.cursor = reachedEnd || last === undefined ? 0n : last + 1n;
      // Forget what is no longer in the part of the queue this page covers (taken out or purged).
      const present = new Set(page.map((m) => m.sequence));
      const covered = (sequence: bigint) => sequence >= from && (reachedEnd || (last !== undefined && sequence <= last));
      for (const map of [memory.known, memory.failures]) {
        for (const sequence of map.keys()) if (covered(sequence) && !present.has(sequence)) map.delete(sequence);
      }

      await this.#recordNew(service, page, queue, memory, env, report);

      const now = this.clock();
      const due = page
        .map((message) => ({ message, known: memory.known.get(message.sequence) }))
        .filter((m): m is { message: PeekedDeadLetter; known: Known & { orderId: string } } => {
          const k = m.known;
          return k?.orderId !== undefined && (now - k.since < this.settings.freshMs || now - k.checkedAt >= this.settings.recheckMs);
        });
      const finished: RemovalTarget[] = [];
      await inBatches(due, this.settings.readConcurrency, async ({ message, known }) => {
        let order: OrderDocument | undefined;
        try {
          order = await env.deps.orders.get(known.orderId);
        } catch (err) {
          // Read again next run; the others go on.
          this.#failed(service, memory, message, err, env, report);
          return;
        }
        known.checkedAt = now;
        memory.failures.delete(message.sequence);
        // `attention` keeps its messages: a person still has to act on that order.
        if (order?.state === 'completed' || order?.state === 'cancelled') finished.push({ sequence: message.sequence, deferred: message.deferred });
      });
      if (finished.length > 0) {
        const removed = await queue.remove(finished, { maxLocks: this.settings.maxLocks, deferEnqueuedBefore: new Date(now - this.settings.deferAfterMs) });
        for (const sequence of removed) memory.known.delete(sequence);
        report.removed = removed.length;
      }
    } catch (err) {
      report.failed = err instanceof Error ? err.message : String(err);
      env.log.error(`${service}-${DEAD_LETTER_SWEEP_FAILED_EVENT}`, err);
    }
    return report;
  }

  /**
   * Records the page's messages this process has not recorded yet, each on its own: one that
   * cannot be recorded (a body Cosmos DB refuses, say) is tried again next pass, and holds up
   * nothing else. Bodies are read only for these, a stretch of the queue at a time.
   */
  async #recordNew(service: ServiceName, page: PeekedDeadLetter[], queue: DeadLetterQueue, memory: QueueMemory, env: SweepEnvironment, report: DeadLetterSweepReport): Promise<void> {
    const unknown = page.filter((m) => !memory.known.has(m.sequence));
    for (const stretch of stretchesOf(page, unknown)) {
      const whole = await this.#withBodies(queue, stretch);
      for (const { sequence } of stretch) {
        const message = whole.get(sequence);
        if (!message) continue; // taken out or purged since the page was read
        try {
          const { orderId } = await recordDeadLetter(service, message, env);
          const now = this.clock();
          memory.known.set(sequence, { ...(orderId ? { orderId } : {}), since: now, checkedAt: now });
          memory.failures.delete(sequence);
          report.recorded++;
        } catch (err) {
          this.#failed(service, memory, message, err, env, report);
        }
      }
    }
  }

  /**
   * The stretch's messages with their bodies. Read from its first sequence number until past its
   * last: a message dead-lettered meanwhile may have landed in between (it may keep its number).
   */
  async #withBodies(queue: DeadLetterQueue, stretch: PeekedDeadLetter[]): Promise<Map<bigint, PeekedDeadLetter>> {
    const last = stretch.at(-1)!.sequence;
    const whole = new Map<bigint, PeekedDeadLetter>();
    for (let from = stretch[0]!.sequence; from <= last; ) {
      const chunk = await queue.peek(from, stretch.length, { bodies: true });
      if (chunk.length === 0) break;
      for (const m of chunk) whole.set(m.sequence, m);
      from = chunk.at(-1)!.sequence + 1n;
    }
    return whole;
  }

  /**
   * A message that could not be recorded, or whose order could not be read: tried again next
   * time, and logged on its 1st and 10th failure and every 100th after, so that a message that
   * never goes through keeps its alert (15-minute window) without flooding the logs.
   */
  #failed(service: ServiceName, memory: QueueMemory, message: PeekedDeadLetter, err: unknown, env: SweepEnvironment, report: DeadLetterSweepReport): void {
    const failures = (memory.failures.get(message.sequence) ?? 0) + 1;
    memory.failures.set(message.sequence, failures);
    report.unrecorded = (report.unrecorded ?? 0) + 1;
    // An order others kept writing while this tried to record onto it (its deliveries, its
    // monitor): the next pass most likely gets through, so a person is called only if it keeps so.
    const busy = err instanceof OrderKeptChangingError && failures < BUSY_PASSES_BEFORE_ALERT;
    if (busy) {
      if (failures === 1) env.log.warn(`${service}-deadletter-order-busy`, { sequence: message.sequence.toString(), messageId: message.messageId, error: err.message });
      return;
    }
    if (failures === 1 || failures === 10 || failures % 100 === 0) {
      env.log.error(`${service}-${DEAD_LETTER_SWEEP_FAILED_EVENT}`, err, { sequence: message.sequence.toString(), messageId: message.messageId, failures });
    }
  }

  #memoryOf(service: ServiceName): QueueMemory {
    let memory = this.#memory.get(service);
    if (!memory) this.#memory.set(service, (memory = new QueueMemory()));
    return memory;
  }
}

/** `some` of `page` (in page order) cut where something not in `some` lies between. */
function stretchesOf(page: PeekedDeadLetter[], some: PeekedDeadLetter[]): PeekedDeadLetter[][] {
  const wanted = new Set(some);
  const stretches: PeekedDeadLetter[][] = [];
  let current: PeekedDeadLetter[] = [];
  for (const m of page) {
    if (wanted.has(m)) current.push(m);
    else if (current.length > 0) {
      stretches.push(current);
      current = [];
    }
  }
  if (current.length > 0) stretches.push(current);
  return stretches;
}

/** Runs `work` over `items`, `size` at a time. */
async function inBatches<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}
