/**
 * One receivable entity (a queue, a subscription, or a dead-letter sub-queue): its messages,
 * peek-lock locks, delivery counts, deferral, expiry, and dispatch to attached receivers.
 *
 * Cost per message is O(log n): available messages sit in a heap by sequence number, locks in a
 * map plus time buckets (one lock duration per entity, so buckets are created in time order and a
 * settled message leaves its bucket at once), and short TTL expiries in a heap by due time.
 */
import { MinHeap } from './heap';
import {
  encodeForReceiver,
  newLockToken,
  withApplicationProperties,
  type LockToken,
  type MessageContent,
} from './wire';

const EMPTY_BODY = Buffer.alloc(0);

export interface QueueSettings {
  lockDurationMs: number;
  maxDeliveryCount: number;
  defaultTtlMs: number;
  deadLetterOnExpiry: boolean;
}

export type MessageState = 'active' | 'deferred' | 'gone';

export interface StoredMessage {
  seq: number;
  content: MessageContent;
  enqueuedAt: number;
  expiresAt: number;
  /** Deliveries that did not end the message so far (abandons, deferrals, lock expiries): the header delivery_count on the wire. */
  deliveryCount: number;
  state: MessageState;
  lock?: LockToken;
  lockedUntil: number;
  /** The receiver link holding the lock, when it came over a link. */
  holder?: Consumer;
  /** The lock-expiry bucket the message sits in while locked. */
  lockBucket?: number;
  deadLetterSource?: string;
}

/** A receiver link attached to this entity. */
export interface Consumer {
  readonly receiveAndDelete: boolean;
  /** Messages this consumer can take now. */
  credit(): number;
  deliver(message: StoredMessage, bytes: Buffer, lock: LockToken | undefined): void;
  /** Called after each dispatch round: answer a drain request when nothing more is coming. */
  afterDispatch(): void;
}

export class SettlementError extends Error {
  constructor(readonly condition: string, message: string, readonly statusCode: number) {
    super(message);
    this.name = 'SettlementError';
  }
}

const lockLost = () =>
  new SettlementError(
    'com.microsoft:message-lock-lost',
    'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
    410,
  );

const TTL_HEAP_HORIZON_MS = 10 * 60_000;
const LOCK_BUCKET_MS = 25;
const TTL_SWEEP_INTERVAL_MS = 30_000;

export interface DeliveredMessage {
  message: StoredMessage;
  bytes: Buffer;
  lock?: LockToken;
}

export class MessageQueue {
  readonly messages = new Map<number, StoredMessage>();
  private readonly available = new MinHeap<StoredMessage>((m) => m.seq);
  private readonly locks = new Map<string, StoredMessage>();
  private readonly lockBuckets = new Map<number, Set<StoredMessage>>();
  private lockBucketOrder: number[] = [];
  private lockBucketHead = 0;
  private readonly ttlExpiries = new MinHeap<StoredMessage>((m) => m.expiresAt);
  private consumers: Consumer[] = [];
  private nextConsumer = 0;
  private dispatchScheduled = false;
  private lastSweep = 0;
  /** Whether `messages` iterates in sequence order (true until a lower sequence number is added). */
  private inSequenceOrder = true;
  private lastAddedSeq = -Infinity;

  constructor(
    /** Entity path as Service Bus names it, e.g. `orders/Subscriptions/billing-sub`. */
    readonly path: string,
    readonly settings: QueueSettings,
    /** Where expired and rejected messages go; undefined for a dead-letter queue itself. */
    readonly deadLetterQueue: MessageQueue | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  get activeCount(): number {
    return this.messages.size;
  }

  // ---- intake ------------------------------------------------------------------------------

  enqueue(content: MessageContent, seq: number, enqueuedAt: number, init: Partial<Pick<StoredMessage, 'deliveryCount' | 'deadLetterSource' | 'expiresAt'>> = {}): StoredMessage {
    const ttl = Math.min(content.header.ttl ?? Infinity, this.settings.defaultTtlMs);
    const message: StoredMessage = {
      seq,
      content,
      enqueuedAt,
      expiresAt: init.expiresAt ?? (Number.isFinite(ttl) ? enqueuedAt + ttl : Infinity),
      deliveryCount: init.deliveryCount ?? 0,
      state: 'active',
      lockedUntil: 0,
      deadLetterSource: init.deadLetterSource,
    };
    this.messages.set(seq, message);
    if (seq < this.lastAddedSeq) this.inSequenceOrder = false;
    this.lastAddedSeq = seq;
    this.available.push(message);
    // Long TTLs (days, the usual) are caught by the periodic sweep instead, so completed messages
    // are not pinned in the heap until they would have expired.
    if (message.expiresAt - enqueuedAt <= TTL_HEAP_HORIZON_MS) this.ttlExpiries.push(message);
    this.scheduleDispatch();
    return message;
  }

  // ---- dispatch ----------------------------------------------------------------------------

  addConsumer(c: Consumer): void {
    this.consumers.push(c);
  }

  removeConsumer(c: Consumer): void {
    this.consumers = this.consumers.filter((x) => x !== c);
  }

  /** Coalesces dispatch after a burst of enqueues (one batch transfer = one round). */
  scheduleDispatch(): void {
    if (this.dispatchScheduled || this.consumers.length === 0) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  /** Hands available messages to consumers with credit, round-robin. */
  dispatch(): void {
    const consumers = this.consumers;
    const n = consumers.length;
    if (n === 0) return;
    const now = this.now();
    let misses = 0;
    while (this.available.size > 0 && misses < n) {
      const c = consumers[this.nextConsumer++ % n];
      if (c.credit() <= 0) {
        misses++;
        continue;
      }
      misses = 0;
      const message = this.takeAvailable(now);
      if (!message) break;
      const d = this.acquire(message, !c.receiveAndDelete, now, c);
      c.deliver(d.message, d.bytes, d.lock);
    }
    for (const c of consumers) c.afterDispatch();
  }

  private takeAvailable(now: number): StoredMessage | undefined {
    for (;;) {
      const m = this.available.pop();
      if (!m) return undefined;
      if (m.state !== 'active' || m.lock) continue; // stale heap entry
      if (m.expiresAt <= now) {
        this.expire(m);
        continue;
      }
      return m;
    }
  }

  /** Locks (peek-lock) or removes (receive-and-delete) a message and encodes it for the wire. */
  private acquire(message: StoredMessage, peekLock: boolean, now: number, holder?: Consumer): DeliveredMessage {
    if (!peekLock) {
      this.remove(message);
      return { message, bytes: this.encode(message) };
    }
    const lock = newLockToken();
    message.lock = lock;
    message.lockedUntil = now + this.settings.lockDurationMs;
    message.holder = holder;
    this.locks.set(lock.key, message);
    this.addLockExpiry(message);
    return { message, bytes: this.encode(message), lock };
  }

  encode(message: StoredMessage, forPeek = false, omitBody = false): Buffer {
    const content = omitBody ? { ...message.content, bodyBytes: EMPTY_BODY } : message.content;
    return encodeForReceiver(content, message.deliveryCount, {
      sequenceNumber: message.seq,
      enqueuedTime: message.enqueuedAt,
      lockedUntil: message.lock && !forPeek ? message.lockedUntil : undefined,
      deadLetterSource: message.deadLetterSource,
      state: message.state === 'deferred' ? 1 : forPeek ? 0 : undefined,
    });
  }

  // ---- settlement (by lock token key) --------------------------------------------------------

  private locked(key: string): StoredMessage {
    const m = this.locks.get(key);
    if (!m || !m.lock) throw lockLost();
    if (m.lockedUntil <= this.now()) {
      this.lockExpired(m);
      throw lockLost();
    }
    return m;
  }

  private addLockExpiry(m: StoredMessage): void {
    const bucket = Math.ceil(m.lockedUntil / LOCK_BUCKET_MS) * LOCK_BUCKET_MS;
    let set = this.lockBuckets.get(bucket);
    if (!set) {
      set = new Set();
      this.lockBuckets.set(bucket, set);
      this.lockBucketOrder.push(bucket);
    }
    set.add(m);
    m.lockBucket = bucket;
  }

  private removeLockExpiry(m: StoredMessage): void {
    if (m.lockBucket === undefined) return;
    this.lockBuckets.get(m.lockBucket)?.delete(m);
    m.lockBucket = undefined;
  }

  private releaseLock(m: StoredMessage): void {
    this.removeLockExpiry(m);
    if (m.lock) this.locks.delete(m.lock.key);
    m.lock = undefined;
    m.holder = undefined;
    m.lockedUntil = 0;
  }

  hasLock(key: string): boolean {
    return this.locks.has(key);
  }

  complete(key: string): void {
    const m = this.locked(key);
    this.releaseLock(m);
    this.remove(m);
  }

  /** Returns the message for another delivery, counting this one. */
  abandon(key: string, propertiesToModify?: Record<string, unknown>): void {
    const m = this.locked(key);
    this.releaseLock(m);
    if (propertiesToModify && Object.keys(propertiesToModify).length) m.content = withApplicationProperties(m.content, propertiesToModify);
    this.countFailedDelivery(m);
  }

  /** Returns the message without counting a delivery (AMQP `released`). */
  release(key: string): void {
    const m = this.locked(key);
    this.releaseLock(m);
    this.makeAvailable(m);
  }

  /**
   * Sets the message aside until it is received by sequence number. Service Bus counts the
   * delivery that ended in a deferral as it counts an abandoned one: a deferred message comes back
   * with the count raised. The emulator does not dead-letter on a deferral.
   */
  defer(key: string, propertiesToModify?: Record<string, unknown>): void {
    const m = this.locked(key);
    this.releaseLock(m);
    if (propertiesToModify && Object.keys(propertiesToModify).length) m.content = withApplicationProperties(m.content, propertiesToModify);
    m.deliveryCount++;
    m.state = 'deferred';
  }

  deadLetter(key: string, reason: string | undefined, description: string | undefined, propertiesToModify?: Record<string, unknown>): void {
    const m = this.locked(key);
    if (!this.deadLetterQueue) {
      // As in Service Bus: refused, and the message stays, still locked.
      throw new SettlementError('amqp:not-allowed', `A message in the dead-letter queue '${this.path}' cannot be dead-lettered.`, 400);
    }
    this.releaseLock(m);
    this.moveToDeadLetter(m, reason, description, propertiesToModify);
  }

  renewLock(key: string): number {
    const m = this.locked(key);
    this.removeLockExpiry(m);
    m.lockedUntil = this.now() + this.settings.lockDurationMs;
    this.addLockExpiry(m);
    return m.lockedUntil;
  }

  private countFailedDelivery(m: StoredMessage): void {
    if (!this.deadLetterQueue) {
      // A dead-letter queue counts no deliveries: the message keeps the count it was dead-lettered with.
      this.makeAvailable(m);
      return;
    }
    m.deliveryCount++;
    if (m.deliveryCount >= this.settings.maxDeliveryCount) {
      this.moveToDeadLetter(m, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${this.settings.maxDeliveryCount} delivery attempts.`);
    } else if (m.state === 'active') {
      this.makeAvailable(m);
    }
  }

  private makeAvailable(m: StoredMessage): void {
    if (m.state !== 'active') return;
    if (m.expiresAt <= this.now()) {
      this.expire(m);
      return;
    }
    this.available.push(m);
    this.scheduleDispatch();
  }

  private lockExpired(m: StoredMessage): void {
    this.releaseLock(m);
    this.countFailedDelivery(m);
  }

  private remove(m: StoredMessage): void {
    m.state = 'gone';
    this.messages.delete(m.seq);
  }

  private moveToDeadLetter(m: StoredMessage, reason: string | undefined, description: string | undefined, propertiesToModify?: Record<string, unknown>): void {
    this.remove(m);
    const dlq = this.deadLetterQueue;
    if (!dlq) return; // not reached: a dead-letter queue neither dead-letters nor expires
    const content = withApplicationProperties(m.content, { ...(propertiesToModify ?? {}), DeadLetterReason: reason, DeadLetterErrorDescription: description });
    dlq.enqueue(content, m.seq, m.enqueuedAt, { deliveryCount: m.deliveryCount, deadLetterSource: this.path, expiresAt: Infinity });
  }

  private expire(m: StoredMessage): void {
    if (this.settings.deadLetterOnExpiry && this.deadLetterQueue) {
      this.moveToDeadLetter(m, 'TTLExpiredException', 'The message expired and was dead lettered.');
    } else {
      this.remove(m);
    }
  }

  // ---- by sequence number (management) -------------------------------------------------------

  /** Active and deferred messages from a sequence number on, in order (locked ones included). */
  peek(fromSeq: number, count: number, omitBody = false): Buffer[] {
    const found: StoredMessage[] = [];
    for (const m of this.messages.values()) {
      if (m.seq < fromSeq) continue;
      found.push(m);
      if (this.inSequenceOrder && found.length >= count) break; // the usual case: no full scan
    }
    if (!this.inSequenceOrder) found.sort((a, b) => a.seq - b.seq);
    return found.slice(0, count).map((m) => this.encode(m, true, omitBody));
  }

  /** Locks (or removes) deferred messages by sequence number; unknown or not deferred throws. */
  receiveDeferred(seqs: number[], peekLock: boolean): DeliveredMessage[] {
    const now = this.now();
    const out: DeliveredMessage[] = [];
    for (const seq of seqs) {
      const m = this.messages.get(seq);
      if (!m || m.state !== 'deferred' || m.lock) {
        throw new SettlementError('com.microsoft:message-not-found', `Failed to lock one or more specified messages. The message with sequence number ${seq} was not found or is not deferred.`, 404);
      }
      out.push(this.acquire(m, peekLock, now));
    }
    return out;
  }

  // ---- time ------------------------------------------------------------------------------------

  /** Expires locks and messages that are due. Called by the broker clock. */
  tick(now: number): void {
    const order = this.lockBucketOrder;
    while (this.lockBucketHead < order.length && order[this.lockBucketHead] <= now) {
      const bucket = order[this.lockBucketHead++];
      const due = this.lockBuckets.get(bucket);
      this.lockBuckets.delete(bucket);
      if (!due) continue;
      for (const m of due) {
        m.lockBucket = undefined;
        if (m.lock) this.lockExpired(m);
      }
    }
    if (this.lockBucketHead > 1024) {
      this.lockBucketOrder = order.slice(this.lockBucketHead);
      this.lockBucketHead = 0;
    }
    for (let m = this.ttlExpiries.peek(); m && m.expiresAt <= now; m = this.ttlExpiries.peek()) {
      this.ttlExpiries.pop();
      if (m.state !== 'gone' && !m.lock) this.expire(m);
    }
    if (now - this.lastSweep >= TTL_SWEEP_INTERVAL_MS) {
      this.lastSweep = now;
      for (const m of [...this.messages.values()]) if (m.expiresAt <= now && !m.lock) this.expire(m);
    }
  }
}
