/**
 * A consumer's dead-letter queue in memory, as the `DeadLetterQueue` contract describes Service
 * Bus's (src/support/deadLetterSweep.ts, src/azure/deadLetterQueues.ts):
 * - messages in sequence order; one dead-lettered late may land anywhere (it may keep its number);
 * - a peek from a sequence number shows every message from there on, locked and deferred ones
 *   included, without bodies unless asked;
 * - a removal takes deferred targets by sequence number (one that is gone, not deferred or locked is
 *   skipped), and receives the others from the head, passing by deferred and locked messages,
 *   locking at most `maxLocks`: a target is completed, any other message enqueued before
 *   `deferEnqueuedBefore` is deferred, the rest are put back once the removal ends;
 * - a removal that fails partway leaves what it took out taken, and what it held locked until the
 *   lock expires (the release of a lock may fail with the connection).
 */
import type { DeadLetterQueue, PeekedDeadLetter, RemovalLimits, RemovalTarget } from '../../../src/support/deadLetterSweep';

export class MemoryDeadLetterQueue implements DeadLetterQueue {
  readonly messages: PeekedDeadLetter[] = [];
  peeks: { from: bigint; max: number; bodies: boolean }[] = [];
  /** Enqueued times (ms) of messages; one without is brand new (enqueued at the clock's now). */
  readonly enqueuedAt = new Map<bigint, number>();
  readonly deferredSequences = new Set<bigint>();
  /** Messages locked by a receiver that has not settled them, until when (ms): receives pass them by. */
  readonly lockedUntil = new Map<bigint, number>();
  /** Called with each message a removal takes out, as it goes. */
  onTake?: (message: PeekedDeadLetter) => void;
  /** Makes the next removal fail once it has locked this many messages from the head (0: before any). */
  failRemovalAfterLocks?: number;

  constructor(
    private readonly clock: () => number = Date.now,
    /** How long an unsettled lock lasts. */
    readonly lockMs = 60_000,
  ) {}

  add(message: Omit<PeekedDeadLetter, 'sequence'>, sequence: bigint, enqueuedAt?: number): void {
    if (this.messages.some((m) => m.sequence === sequence)) throw new Error(`sequence number ${sequence} is taken`);
    this.messages.push({ ...message, sequence });
    this.messages.sort((a, b) => (a.sequence < b.sequence ? -1 : 1));
    if (enqueuedAt !== undefined) this.enqueuedAt.set(sequence, enqueuedAt);
  }

  async peek(from: bigint, max: number, { bodies }: { bodies: boolean }): Promise<PeekedDeadLetter[]> {
    this.peeks.push({ from, max, bodies });
    return this.messages
      .filter((m) => m.sequence >= from)
      .slice(0, max)
      .map((m) => ({ ...m, ...(bodies ? {} : { body: undefined }), ...(this.deferredSequences.has(m.sequence) ? { deferred: true } : {}) }));
  }

  /** Where the scans of the queue (peeks without bodies) started. */
  scans(): bigint[] {
    return this.peeks.filter((p) => !p.bodies).map((p) => p.from);
  }

  isLocked(sequence: bigint): boolean {
    const until = this.lockedUntil.get(sequence);
    return until !== undefined && until > this.clock();
  }

  /** Someone else (a person's receive, say) holds this message's lock until it expires. */
  lock(sequence: bigint): void {
    if (this.messages.some((m) => m.sequence === sequence)) this.lockedUntil.set(sequence, this.clock() + this.lockMs);
  }

  async remove(targets: RemovalTarget[], { maxLocks, deferEnqueuedBefore }: RemovalLimits): Promise<bigint[]> {
    const failAfter = this.failRemovalAfterLocks;
    this.failRemovalAfterLocks = undefined;
    if (failAfter === 0) throw new Error('connection to the namespace lost');
    const removed: bigint[] = [];
    const take = (sequence: bigint) => {
      const at = this.messages.findIndex((m) => m.sequence === sequence);
      this.onTake?.(this.messages[at]!);
      this.messages.splice(at, 1);
      this.deferredSequences.delete(sequence);
      this.lockedUntil.delete(sequence);
      this.enqueuedAt.delete(sequence);
      removed.push(sequence);
    };
    for (const t of targets) {
      if (t.deferred && this.deferredSequences.has(t.sequence) && !this.isLocked(t.sequence)) take(t.sequence);
    }
    // Receives from the head: deferred and locked messages are not received.
    const wanted = new Set(targets.filter((t) => !t.deferred).map((t) => t.sequence));
    const held: bigint[] = [];
    let locked = 0;
    for (const m of [...this.messages]) {
      if (wanted.size === 0 || locked >= maxLocks) break;
      if (this.deferredSequences.has(m.sequence) || this.isLocked(m.sequence)) continue;
      locked++;
      if (failAfter !== undefined && locked >= failAfter) {
        // The removal fails holding this message and every one it put back so far.
        for (const s of [...held, m.sequence]) this.lockedUntil.set(s, this.clock() + this.lockMs);
        throw new Error('connection to the namespace lost');
      }
      if (wanted.delete(m.sequence)) take(m.sequence);
      else if ((this.enqueuedAt.get(m.sequence) ?? this.clock()) < deferEnqueuedBefore.getTime()) this.deferredSequences.add(m.sequence);
      else held.push(m.sequence);
    }
    return removed;
  }

  /** A person takes messages out (a purge): whatever state they are in. */
  purge(sequences: bigint[]): void {
    for (const sequence of sequences) {
      const at = this.messages.findIndex((m) => m.sequence === sequence);
      if (at < 0) continue;
      this.messages.splice(at, 1);
      this.deferredSequences.delete(sequence);
      this.lockedUntil.delete(sequence);
      this.enqueuedAt.delete(sequence);
    }
  }

  sequences(): bigint[] {
    return this.messages.map((m) => m.sequence);
  }
}
