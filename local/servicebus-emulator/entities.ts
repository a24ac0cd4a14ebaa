/**
 * The namespace built from the topology: topics with their subscriptions, queues, and the
 * dead-letter sub-queues. Sending (sequence numbers, duplicate detection, scheduling, fan-out by
 * subscription rules) happens here; receiving state lives in MessageQueue.
 */
import { DEAD_LETTER_SUFFIX, durationMs, type ServiceBusTopology, type SubscriptionTopology, type QueueTopology } from '../../src/topology';
import { compileRules, filterInput } from './filters';
import { MinHeap } from './heap';
import { MessageQueue, type QueueSettings } from './message-queue';
import type { Predicate } from './sql-filter';
import type { MessageContent } from './wire';

/**
 * Bound on remembered message ids per entity. Service Bus keeps every id for the whole window; at
 * bench rates (thousands/s over 10 minutes) that is millions of ids, so the oldest go first.
 */
const MAX_REMEMBERED_IDS = 500_000;

interface Scheduled {
  seq: number;
  content: MessageContent;
  at: number;
}

/** Something messages are sent to: a topic (fans out) or a queue (one destination). */
export class SendTarget {
  private nextSeq = 1;
  private readonly seen = new Map<string, number>();
  private readonly scheduled = new Map<number, Scheduled>();
  private readonly due = new MinHeap<Scheduled>((s) => s.at);

  constructor(
    readonly path: string,
    private readonly duplicateWindowMs: number | undefined,
    private readonly destinations: () => { queue: MessageQueue; matches: Predicate }[],
    private readonly now: () => number,
  ) {}

  /** Accepts sent messages. Duplicates inside the window are dropped; the sender still sees success. */
  send(contents: MessageContent[]): void {
    const now = this.now();
    for (const content of contents) {
      if (this.isDuplicate(content, now)) continue;
      const at = scheduledTime(content);
      const seq = this.nextSeq++;
      if (at !== undefined && at > now) this.addScheduled({ seq, content, at });
      else this.distribute(content, seq, now);
    }
  }

  /** Schedules messages (management `schedule-message`); returns their sequence numbers. */
  schedule(contents: { content: MessageContent; at: number }[]): number[] {
    return contents.map(({ content, at }) => {
      const seq = this.nextSeq++;
      this.addScheduled({ seq, content, at });
      return seq;
    });
  }

  cancelScheduled(seqs: number[]): void {
    for (const seq of seqs) this.scheduled.delete(seq);
  }

  tick(now: number): void {
    for (let s = this.due.peek(); s && s.at <= now; s = this.due.peek()) {
      this.due.pop();
      if (this.scheduled.get(s.seq) !== s) continue; // cancelled
      this.scheduled.delete(s.seq);
      // The number given when it was scheduled only names it while scheduled (to cancel it): it is
      // appended as if sent now, with a new sequence number, as in Service Bus.
      this.distribute(s.content, this.nextSeq++, now);
    }
    if (this.duplicateWindowMs !== undefined) {
      for (const [id, firstSeen] of this.seen) {
        if (now - firstSeen < this.duplicateWindowMs) break; // insertion order = time order
        this.seen.delete(id);
      }
    }
  }

  private addScheduled(s: Scheduled): void {
    this.scheduled.set(s.seq, s);
    this.due.push(s);
  }

  private isDuplicate(content: MessageContent, now: number): boolean {
    if (this.duplicateWindowMs === undefined) return false;
    const id = content.properties.message_id;
    if (id === undefined || id === null) return false;
    const key = Buffer.isBuffer(id) ? `b:${id.toString('hex')}` : `${typeof id}:${String(id)}`;
    const firstSeen = this.seen.get(key);
    if (firstSeen !== undefined && now - firstSeen < this.duplicateWindowMs) return true;
    this.seen.delete(key);
    this.seen.set(key, now);
    if (this.seen.size > MAX_REMEMBERED_IDS) this.seen.delete(this.seen.keys().next().value!);
    return false;
  }

  private distribute(content: MessageContent, seq: number, now: number): void {
    const destinations = this.destinations();
    if (destinations.length === 1 && destinations[0].matches === ALL) {
      destinations[0].queue.enqueue(content, seq, now);
      return;
    }
    const input = filterInput(content, { sequenceNumber: seq, enqueuedTime: now });
    for (const d of destinations) if (d.matches(input)) d.queue.enqueue(content, seq, now);
  }
}

const ALL: Predicate = () => true;

function scheduledTime(content: MessageContent): number | undefined {
  const v = content.annotations['x-opt-scheduled-enqueue-time'];
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v;
  return undefined;
}

export interface Subscription {
  name: string;
  queue: MessageQueue;
  matches: Predicate;
}

export type ResolvedEntity =
  | { kind: 'topic'; path: string; target: SendTarget }
  | { kind: 'queue'; path: string; target: SendTarget; queue: MessageQueue }
  | { kind: 'subscription'; path: string; queue: MessageQueue }
  | { kind: 'deadletter'; path: string; queue: MessageQueue };

function queueSettings(t: SubscriptionTopology | QueueTopology): QueueSettings {
  return {
    lockDurationMs: durationMs(t.lockDuration),
    maxDeliveryCount: t.maxDeliveryCount,
    defaultTtlMs: durationMs(t.defaultMessageTimeToLive),
    deadLetterOnExpiry: t.deadLetteringOnMessageExpiration,
  };
}

function withDeadLetterQueue(path: string, settings: QueueSettings, now: () => number): MessageQueue {
  const dlq = new MessageQueue(`${path}/${DEAD_LETTER_SUFFIX}`, { ...settings, defaultTtlMs: Infinity, deadLetterOnExpiry: false }, undefined, now);
  return new MessageQueue(path, settings, dlq, now);
}

export class Namespace {
  private readonly byPath = new Map<string, ResolvedEntity>();
  private readonly targets: SendTarget[] = [];
  private readonly queues: MessageQueue[] = [];

  constructor(topology: ServiceBusTopology, readonly now: () => number = Date.now) {
    for (const topic of topology.topics) {
      const subscriptions: Subscription[] = topic.subscriptions.map((s) => {
        const path = `${topic.name}/Subscriptions/${s.name}`;
        return { name: s.name, queue: withDeadLetterQueue(path, queueSettings(s), now), matches: compileRules(s.rules) };
      });
      const window = topic.requiresDuplicateDetection ? durationMs(topic.duplicateDetectionHistoryTimeWindow) : undefined;
      const target = new SendTarget(topic.name, window, () => subscriptions, now);
      this.targets.push(target);
      this.register({ kind: 'topic', path: topic.name, target });
      for (const s of subscriptions) {
        this.addQueue(s.queue);
        this.register({ kind: 'subscription', path: s.queue.path, queue: s.queue });
      }
    }
    for (const q of topology.queues) {
      const queue = withDeadLetterQueue(q.name, queueSettings(q), now);
      const window = q.requiresDuplicateDetection ? durationMs(q.duplicateDetectionHistoryTimeWindow) : undefined;
      const destinations = [{ queue, matches: ALL }];
      const target = new SendTarget(q.name, window, () => destinations, now);
      this.targets.push(target);
      this.addQueue(queue);
      this.register({ kind: 'queue', path: q.name, target, queue });
    }
  }

  private addQueue(queue: MessageQueue): void {
    this.queues.push(queue);
    this.register({ kind: 'deadletter', path: queue.deadLetterQueue!.path, queue: queue.deadLetterQueue! });
    this.queues.push(queue.deadLetterQueue!);
  }

  private register(e: ResolvedEntity): void {
    this.byPath.set(e.path.toLowerCase(), e);
  }

  /** Entity paths match case-insensitively, as in Service Bus. */
  resolve(path: string): ResolvedEntity | undefined {
    return this.byPath.get(path.replace(/^\/+|\/+$/g, '').toLowerCase());
  }

  tick(): void {
    const now = this.now();
    for (const t of this.targets) t.tick(now);
    for (const q of this.queues) q.tick(now);
  }
}
