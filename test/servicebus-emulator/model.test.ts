/**
 * The emulator against a reference model of Azure Service Bus, through the real @azure/service-bus
 * SDK: random sequences of commands on the app's `orders` topic (its three service subscriptions
 * with their SQL rules, plus a subscription with a correlation filter and one with a SQL filter
 * over system and application properties) and on a queue, each command checked against what the
 * model says Service Bus does, then every message drained.
 *
 * Timings are short so a case runs in a few seconds: locks of LOCK_MS, a duplicate detection
 * window of DUP_WINDOW_MS, small maxDeliveryCounts, messages scheduled under a second ahead.
 *
 * Commands: send (batches of one to three; with a fresh message id, without one, or with the id of
 * an earlier message, inside or past the duplicate detection window), schedule and cancel,
 * receive in peek-lock (two receivers per queue, subscription and dead-letter queue, one at a time
 * or both at once), complete / abandon / dead-letter (with or without reason and description) /
 * defer, at once or after the lock ran out, settling a message twice, receive deferred messages by
 * sequence number (and a sequence number that is not deferred), peek (from the start, from a
 * message's sequence number, past it, past the end), and waiting (locks run out).
 *
 * What the model holds Service Bus to, and checks after each command:
 * - a topic delivers a copy to each subscription whose filter accepts the message and to no other
 *   (SQL three-valued logic: a missing property makes `region <> 'eu'` unknown, so no match);
 * - with duplicate detection, a message whose id the topic accepted less than the window ago is
 *   accepted for the sender and dropped; the same id past the window is a new message; without
 *   duplicate detection every send is a message;
 * - sequence numbers: gap-free and increasing per topic or queue in the order messages are accepted
 *   (a subscription's copies and a dead-lettered copy keep the number); scheduling takes a number,
 *   and a scheduled message that becomes active is appended with a new one, enqueued no earlier than
 *   its time ("message-sequencing": the number of a scheduled message is only valid while it is
 *   scheduled);
 * - a receive in peek-lock gives only available messages (not locked, not deferred, not settled),
 *   never one to two receivers at once; the lock runs LOCK_MS from delivery;
 * - `deliveryCount` (the JS SDK shows the AMQP header: 0 on the first delivery) counts deliveries
 *   that ended in an abandon, a lock expiry or a deferral (a deferred message deferred again too);
 *   at maxDeliveryCount the message moves to the dead-letter queue with reason
 *   `MaxDeliveryCountExceeded` and is not delivered again from the queue or subscription;
 * - a dead-lettered message keeps its delivery count, and a dead-letter queue counts no deliveries
 *   (abandons and lock expiries there leave it); dead-lettering a message that is in a dead-letter
 *   queue is refused (`GeneralError`) and the message stays (the SDK's live tests against the
 *   service);
 * - dead-letter reason and description are kept; complete removes the message for good;
 * - settling with a lock that ran out fails with `MessageLockLost`, and settling twice fails;
 * - a deferred message is only received by its sequence number, with state `deferred`; one locked
 *   already, or a number that is not deferred, is refused;
 * - peek locks nothing and changes no delivery count; it returns active, locked and deferred
 *   messages of a queue or subscription (a dead-letter queue's own), in sequence order from the
 *   number asked for, skipping none;
 * - a single receiver gets never-delivered messages in sequence order ("message-sequencing":
 *   sequence numbers guarantee the extraction order; processing order needs sessions);
 * - at the end, every message sent and not dropped as a duplicate has been completed exactly once,
 *   from its queue or subscription or from the dead-letter queue.
 *
 * Not held to what Service Bus leaves open or its documentation does not settle: which available
 * messages a receive of fewer than all gets (only that never-delivered ones come in order), whether
 * a deferral in a dead-letter queue counts, deferring a message at its last delivery (Service Bus
 * may dead-letter it; the emulator defers it; that command abandons instead), a dead-letter reason
 * or description not given, how many messages a peek returns beyond one, and scheduled messages in
 * a queue's peek (shown by Service Bus, not by the emulator; the app has no queues and schedules
 * nothing). One thing is held that Service Bus does not promise: a receive of n with at least n
 * available gets n (the emulator hands them over at once; on Azure a receive may return fewer).
 *
 * Where the clock makes an outcome undecidable (a lock or a scheduled time running out while a
 * call is under way, a duplicate sent right at the end of its window, a cancel racing its message's
 * time) the model accepts either outcome and learns which one happened from what it sees later.
 *
 * A fixed seed by default (`searchOptions`): FC_RUNS raises the number of cases, FC_RANDOM=1 draws
 * a seed, FC_SEED with FC_PATH replays a failure. A case takes seconds, so a failure is reported as
 * found; FC_SHRINK=1 shrinks it (minutes). FC_STATS=1 prints counts of what the cases did, FC_TRACE=1
 * each case's commands and outcomes.
 */
import fc from 'fast-check';
import Long from 'long';
import { isServiceBusError, type ServiceBusMessage, type ServiceBusReceivedMessage, type ServiceBusReceiver, type ServiceBusReceiverOptions, type ServiceBusSender } from '@azure/service-bus';
import { ORDERS_TOPIC, serviceBusTopology, type ServiceBusTopology, type SubscriptionTopology } from '../../src/topology';
import { searchOptions } from '../unit/support/searchOptions';
import { sleep, startHarness, type Harness } from './harness';

const LOCK_MS = 600;
const DUP_WINDOW_MS = 500;
/** How late the emulator may act on a lock or a scheduled time that ran out (its clock ticks every 50 ms). */
const SLACK_MS = 200;
/** A send is assumed to reach the emulator within this; one that takes longer is handled as undecidable. */
const GUARD_MS = 200;
const QUEUE = 'work';
const RUNS = 8;

const iso = (ms: number) => `PT${ms / 1000}S`;

/** Sleeps until the wall clock reads `time` (a timer may fire a millisecond before it). */
async function sleepUntil(time: number): Promise<void> {
  for (let left = time - Date.now(); left > 0; left = time - Date.now()) await sleep(left);
}

// ---------------------------------------------------------------------------------------------
// Topology and the model's own reading of its filters

type TargetName = typeof ORDERS_TOPIC | typeof QUEUE;

interface Props {
  target?: string;
  region?: string;
  subject?: string;
  corr?: string;
}

interface EntityDef {
  name: string;
  to: TargetName;
  /** Subscription name, or undefined for the queue. */
  subscription?: string;
  maxDelivery: number;
  accepts(p: Props): boolean;
}

const appTopic = serviceBusTopology.topics.find((t) => t.name === ORDERS_TOPIC)!;

const extraSubscription = (name: string, rule: SubscriptionTopology['rules'][number]): SubscriptionTopology => ({
  name,
  maxDeliveryCount: 2,
  lockDuration: iso(LOCK_MS),
  defaultMessageTimeToLive: 'P14D',
  deadLetteringOnMessageExpiration: true,
  rules: [rule],
});

const AUDIT = extraSubscription('audit', { name: 'eu-created', correlationFilter: { correlationId: 'corr-1', label: 'created', properties: { region: 'eu' } } });
const OUTSIDE_EU = extraSubscription('outside-eu', { name: 'created-outside-eu', sqlFilter: "sys.Label = 'created' AND region <> 'eu'" });

const modelTopology: ServiceBusTopology = {
  topics: [
    {
      ...appTopic,
      duplicateDetectionHistoryTimeWindow: iso(DUP_WINDOW_MS),
      subscriptions: [...appTopic.subscriptions.map((s) => ({ ...s, lockDuration: iso(LOCK_MS) })), AUDIT, OUTSIDE_EU],
    },
  ],
  queues: [
    {
      name: QUEUE,
      maxDeliveryCount: 2,
      lockDuration: iso(LOCK_MS),
      defaultMessageTimeToLive: 'P14D',
      deadLetteringOnMessageExpiration: false,
      requiresDuplicateDetection: false,
      duplicateDetectionHistoryTimeWindow: 'PT10M',
    },
  ],
};

/** The app's rule for a service's subscription, read by the model: untargeted events and those targeted at it. */
function serviceEntity(s: SubscriptionTopology): EntityDef {
  const service = s.service!;
  const rule = `target IS NULL OR target = '${service}'`;
  if (s.rules.length !== 1 || s.rules[0].sqlFilter !== rule) throw new Error(`the model reads ${s.name}'s rule as ${rule}; the topology now says ${JSON.stringify(s.rules)}`);
  return { name: s.name, to: ORDERS_TOPIC, subscription: s.name, maxDelivery: s.maxDeliveryCount, accepts: (p) => p.target === undefined || p.target === service };
}

const ENTITIES: EntityDef[] = [
  ...appTopic.subscriptions.map(serviceEntity),
  { name: AUDIT.name, to: ORDERS_TOPIC, subscription: AUDIT.name, maxDelivery: AUDIT.maxDeliveryCount, accepts: (p) => p.corr === 'corr-1' && p.subject === 'created' && p.region === 'eu' },
  {
    name: OUTSIDE_EU.name,
    to: ORDERS_TOPIC,
    subscription: OUTSIDE_EU.name,
    maxDelivery: OUTSIDE_EU.maxDeliveryCount,
    accepts: (p) => p.subject === 'created' && p.region !== undefined && p.region !== 'eu',
  },
  { name: QUEUE, to: QUEUE, maxDelivery: modelTopology.queues[0].maxDeliveryCount, accepts: () => true },
];

// ---------------------------------------------------------------------------------------------
// Commands

type IdDraw = 'fresh' | 'none' | { reuse: number };
interface Draw extends Props {
  id: IdDraw;
}
/** A queue, subscription or dead-letter queue; `busy`: instead, one of those holding messages now (by `e`). */
interface Place {
  e: number;
  dlq: boolean;
  busy: boolean;
}
type Settlement = { how: 'complete' } | { how: 'abandon' } | { how: 'defer' } | { how: 'deadLetter'; reason?: string; description?: string };

type Cmd =
  | { t: 'send'; to: TargetName; draws: Draw[] }
  /** Sends a message with the id of an earlier one; `pastWindow`: once the duplicate detection window has passed for it. */
  | { t: 'resend'; to: TargetName; draw: Draw; pick: number; pastWindow: boolean }
  /** Schedules a message `delayMs` ahead; `cancel`: and cancels it right away. */
  | { t: 'schedule'; to: TargetName; draw: Draw; delayMs: number; cancel: boolean }
  | { t: 'cancel'; pick: number }
  /**
   * Receives in peek-lock; `then`: settles each message received that way, at once or (`late`) once
   * the locks ran out; `peek`: then peeks the place from the start.
   */
  | { t: 'receive'; place: Place; n: number; via: number; then?: Settlement; late: boolean; peek: boolean }
  /** Settles a message the model holds a lock on; `stale`: instead one whose lock ran out or that was settled already. */
  | { t: 'settle'; pick: number; s: Settlement; stale: boolean }
  /** Both receivers of a place receive at once. */
  | { t: 'receivePair'; place: Place; n: number }
  | { t: 'receiveDeferred'; pick: number; via: number }
  | { t: 'receiveNotDeferred'; place: Place; pick: number }
  | { t: 'peek'; place: Place; from: 'start' | 'at' | 'after' | 'past'; pick: number; n: number }
  | { t: 'wait'; ms: number };

const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const drawArb: fc.Arbitrary<Draw> = fc.record({
  id: fc.oneof({ weight: 5, arbitrary: fc.constant<IdDraw>('fresh') }, { weight: 2, arbitrary: fc.constant<IdDraw>('none') }, { weight: 3, arbitrary: fc.nat(20).map((reuse): IdDraw => ({ reuse })) }),
  target: opt(fc.constantFrom('inventory', 'billing', 'notification', 'other')),
  region: opt(fc.constantFrom('eu', 'us', 'ca')),
  subject: opt(fc.constantFrom('created', 'updated')),
  corr: opt(fc.constantFrom('corr-1', 'corr-2')),
});
const toArb = fc.constantFrom<TargetName>(ORDERS_TOPIC, ORDERS_TOPIC, ORDERS_TOPIC, QUEUE);
const placeArb: fc.Arbitrary<Place> = fc.record({ e: fc.nat(2 * ENTITIES.length - 1), dlq: fc.constantFrom(false, false, false, true), busy: fc.constantFrom(true, true, true, false) });
const settlementArb: fc.Arbitrary<Settlement> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Settlement>({ how: 'complete' }) },
  { weight: 4, arbitrary: fc.constant<Settlement>({ how: 'abandon' }) },
  { weight: 2, arbitrary: fc.constant<Settlement>({ how: 'defer' }) },
  {
    weight: 2,
    arbitrary: fc.record({ how: fc.constant('deadLetter' as const), reason: opt(fc.constantFrom<string>('Poison', 'Unreadable')), description: opt(fc.constantFrom<string>('bad body', 'no such order')) }),
  },
);

const sendArb: fc.Arbitrary<Cmd> = fc.record({ t: fc.constant('send' as const), to: toArb, draws: fc.array(drawArb, { minLength: 1, maxLength: 3 }) });
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: sendArb },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('resend' as const), to: toArb, draw: drawArb, pick: fc.nat(20), pastWindow: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('schedule' as const), to: toArb, draw: drawArb, delayMs: fc.integer({ min: 150, max: 900 }), cancel: fc.constantFrom(false, false, true) }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('cancel' as const), pick: fc.nat(10) }) },
  {
    weight: 7,
    arbitrary: fc.record({
      t: fc.constant('receive' as const),
      place: placeArb,
      n: fc.integer({ min: 1, max: 4 }),
      via: fc.nat(1),
      then: fc.option(settlementArb, { nil: undefined, freq: 2 }),
      late: fc.constantFrom(false, false, false, false, true),
      peek: fc.constantFrom(false, false, true),
    }),
  },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('settle' as const), pick: fc.nat(30), s: settlementArb, stale: fc.constantFrom(false, false, false, false, true) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('receivePair' as const), place: placeArb, n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('receiveDeferred' as const), pick: fc.nat(10), via: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('receiveNotDeferred' as const), place: placeArb, pick: fc.nat(10) }) },
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('peek' as const), place: placeArb, from: fc.constantFrom('start', 'at', 'after', 'past'), pick: fc.nat(20), n: fc.integer({ min: 1, max: 6 }) }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.constantFrom(50, 300, LOCK_MS + SLACK_MS) }) },
);

// ---------------------------------------------------------------------------------------------
// Model state

interface Lock {
  copy: Copy;
  msg: ServiceBusReceivedMessage;
  receiver: ServiceBusReceiver;
  until: number;
  /** Taken from a dead-letter queue. */
  fromDlq: boolean;
  /** live: the model holds it; lost: it ran out; settled: it was used. */
  state: 'live' | 'lost' | 'settled';
  /** False once a settlement through it was refused: the message stays locked, but the SDK takes the delivery as settled. */
  usable: boolean;
}

/** A message as one queue or subscription holds it. */
interface Copy {
  sent: Sent;
  entity: EntityDef;
  where: 'main' | 'dlq' | 'done';
  deferred: boolean;
  /** `deliveryCount` the SDK must show, as a range (exact in a queue or subscription, open in a dead-letter queue). */
  count: [number, number];
  /** Delivered at least once (a never-delivered message is what the order check is about). */
  delivered: boolean;
  lock?: Lock;
  deadLetter?: { max: boolean; reason?: string; description?: string };
  timesCompleted: number;
}

/** A message accepted by a topic or queue (or scheduled to be). */
interface Sent {
  n: number;
  to: TargetName;
  props: Props;
  messageId?: string;
  /** The id the message arrived with (one Service Bus gave it when sent without). */
  seenId?: string;
  /** Its place in its topic's or queue's sequence, when the model knows it. */
  ordinal?: number;
  /** Its sequence number as seen. */
  seq?: number;
  /** When it was enqueued (active), bounds in ms. */
  enqueued: [number, number];
  /** It may not exist: a send or cancel whose outcome the clock cannot decide, until it is seen. */
  uncertain: boolean;
  scheduled?: { at: number; seq?: number; ordinal?: number; state: 'pending' | 'active' | 'cancelled' };
  copies: Copy[];
}

interface TargetState {
  name: TargetName;
  dupWindowMs?: number;
  /** Next ordinal to take. */
  next: number;
  /** Sequence number = base + ordinal. */
  base?: number;
  /** Ordinals are known exactly (false once the clock made an ordering undecidable). */
  exact: boolean;
  /** Message id -> when the accepted message with it was sent. */
  seen: Map<string, [number, number]>;
  /** Ids that can be sent again. */
  reusable: string[];
}

class ModelFailure extends Error {}

class Case {
  private readonly targets = new Map<TargetName, TargetState>();
  private readonly sents: Sent[] = [];
  private readonly locks: Lock[] = [];
  private readonly receivers = new Map<string, ServiceBusReceiver>();
  private readonly senders = new Map<TargetName, ServiceBusSender>();
  private nextN = 1;
  private readonly lockTokens = new Set<string>();
  readonly trace: string[] = [];
  readonly stats = { sends: 0, duplicatesDropped: 0, resentPastWindow: 0, undecidable: 0, received: 0, peeked: 0, settled: 0, lockLost: 0, refused: 0, deadLettered: 0, maxDelivery: 0, scheduled: 0, cancelled: 0 };

  constructor(private readonly h: Harness) {
    this.targets.set(ORDERS_TOPIC, { name: ORDERS_TOPIC, dupWindowMs: DUP_WINDOW_MS, next: 0, exact: true, seen: new Map(), reusable: [] });
    this.targets.set(QUEUE, { name: QUEUE, next: 0, exact: true, seen: new Map(), reusable: [] });
  }

  private fail(message: string): never {
    throw new ModelFailure(`${message}\n--- trace (last 40) ---\n${this.trace.slice(-40).join('\n')}`);
  }

  private note(line: string): void {
    this.trace.push(`${(Date.now() % 100_000).toString().padStart(5)} ${line}`);
  }

  // ---- clients -------------------------------------------------------------------------------

  private sender(to: TargetName): ServiceBusSender {
    let s = this.senders.get(to);
    if (!s) this.senders.set(to, (s = this.h.client.createSender(to)));
    return s;
  }

  /** Every delivery in peek-lock comes with a lock token of its own. */
  private newLockToken(m: ServiceBusReceivedMessage, what: string): void {
    if (typeof m.lockToken !== 'string' || m.lockToken.length === 0) this.fail(`${what}: #${(m.body as { n: number }).n} has no lock token`);
    if (this.lockTokens.has(m.lockToken)) this.fail(`${what}: #${(m.body as { n: number }).n} came with lock token ${m.lockToken}, given before`);
    this.lockTokens.add(m.lockToken);
  }

  private receiver(e: EntityDef, dlq: boolean, via: number): ServiceBusReceiver {
    const key = `${e.name}|${dlq}|${via}`;
    let r = this.receivers.get(key);
    if (!r) {
      // The SDK renews locks on its own by default; the model needs them to run out.
      const options: ServiceBusReceiverOptions = { receiveMode: 'peekLock', maxAutoLockRenewalDurationInMs: 0, ...(dlq ? { subQueueType: 'deadLetter' as const } : {}) };
      r = e.subscription ? this.h.client.createReceiver(e.to, e.subscription, options) : this.h.client.createReceiver(e.to, options);
      this.receivers.set(key, r);
    }
    return r;
  }

  // ---- time ----------------------------------------------------------------------------------

  /** Applies what the emulator's clock has certainly done by `now`: scheduled messages activated, locks run out. */
  private advance(now = Date.now()): void {
    for (const t of this.targets.values()) {
      for (const s of this.pendingScheduled(t.name)) if (s.scheduled!.at < now - SLACK_MS) this.activateThrough(t.name, s.scheduled!.at, now);
    }
    for (const l of this.locks) if (l.state === 'live' && l.until < now - SLACK_MS) this.expire(l.copy);
  }

  private pendingScheduled(to: TargetName): Sent[] {
    return this.sents.filter((s) => s.to === to && s.scheduled?.state === 'pending').sort((a, b) => a.scheduled!.at - b.scheduled!.at);
  }

  /** Scheduled messages of `to` due at or before `at` become active, in the order of their times, each appended with a new number. */
  private activateThrough(to: TargetName, at: number, now: number): void {
    const t = this.targets.get(to)!;
    for (const s of this.pendingScheduled(to)) {
      if (s.scheduled!.at > at) break;
      s.scheduled!.state = 'active';
      s.ordinal = t.exact ? t.next++ : undefined;
      s.enqueued = [s.scheduled!.at, Math.max(now, s.scheduled!.at) + SLACK_MS];
      this.addCopies(s);
      this.note(`  activated #${s.n} (ordinal ${s.ordinal})`);
    }
  }

  private addCopies(s: Sent): void {
    for (const e of ENTITIES) {
      if (e.to !== s.to || !e.accepts(s.props)) continue;
      s.copies.push({ sent: s, entity: e, where: 'main', deferred: false, count: [0, 0], delivered: false, timesCompleted: 0 });
    }
  }

  /** A delivery ended without settlement (lock ran out or abandoned): counted, and dead-lettered at the limit. */
  private countFailed(c: Copy): void {
    if (c.where === 'dlq') return; // a dead-letter queue counts no deliveries
    c.count = [c.count[0] + 1, c.count[1] + 1];
    if (c.where === 'main' && c.count[0] >= c.entity.maxDelivery) {
      this.moveToDlq(c, { max: true });
      this.stats.maxDelivery++;
    }
  }

  private moveToDlq(c: Copy, dl: Copy['deadLetter']): void {
    c.where = 'dlq';
    c.deferred = false;
    c.deadLetter = dl;
    this.note(`  #${c.sent.n}@${c.entity.name} -> DLQ (${dl!.max ? 'MaxDeliveryCountExceeded' : dl!.reason})`);
  }

  private expire(c: Copy): void {
    const l = c.lock;
    if (!l) return;
    l.state = 'lost';
    c.lock = undefined;
    this.note(`  lock of #${c.sent.n}@${c.entity.name}${c.where === 'dlq' ? '/dlq' : ''} ran out`);
    this.countFailed(c);
  }

  // ---- sequence numbers ----------------------------------------------------------------------

  private seqOf(s: Sent): number | undefined {
    if (s.seq !== undefined) return s.seq;
    const t = this.targets.get(s.to)!;
    return t.exact && t.base !== undefined && s.ordinal !== undefined ? t.base + s.ordinal : undefined;
  }

  private checkSeq(s: Sent, seq: number, what: string): void {
    if (s.seq !== undefined && s.seq !== seq) this.fail(`${what}: #${s.n} has sequence number ${seq}, seen before as ${s.seq}`);
    s.seq = seq;
    const t = this.targets.get(s.to)!;
    if (!t.exact || s.ordinal === undefined) return;
    if (t.base === undefined) t.base = seq - s.ordinal;
    else if (seq !== t.base + s.ordinal) {
      this.fail(`${what}: #${s.n} has sequence number ${seq}, expected ${t.base + s.ordinal} (ordinal ${s.ordinal} in ${s.to}, gap-free in the order accepted)`);
    }
    for (const other of this.sents) {
      if (other !== s && other.to === s.to && other.seq === seq) this.fail(`${what}: #${s.n} and #${other.n} share sequence number ${seq}`);
    }
  }

  private checkScheduledSeq(s: Sent, seq: number, what: string): void {
    const sch = s.scheduled!;
    if (sch.seq !== undefined && sch.seq !== seq) this.fail(`${what}: scheduled #${s.n} has sequence number ${seq}, returned ${sch.seq}`);
    const t = this.targets.get(s.to)!;
    if (!t.exact || sch.ordinal === undefined) return;
    if (t.base === undefined) t.base = seq - sch.ordinal;
    else if (seq !== t.base + sch.ordinal) this.fail(`${what}: scheduled #${s.n} has sequence number ${seq}, expected ${t.base + sch.ordinal}`);
  }

  // ---- what a message must look like ---------------------------------------------------------

  private checkMessage(m: ServiceBusReceivedMessage, c: Copy, what: string, counts: number[] | 'range'): void {
    const s = c.sent;
    const label = `${what} #${s.n}@${c.entity.name}${c.where === 'dlq' ? '/dlq' : ''}`;
    if (s.messageId !== undefined) {
      if (m.messageId !== s.messageId) this.fail(`${label}: messageId ${String(m.messageId)}, sent ${s.messageId}`);
    } else {
      if (typeof m.messageId !== 'string' || m.messageId.length === 0) this.fail(`${label}: sent without a message id, arrived with ${String(m.messageId)}`);
    }
    if (s.seenId !== undefined && m.messageId !== s.seenId) this.fail(`${label}: messageId ${String(m.messageId)}, another copy had ${s.seenId}`);
    s.seenId = String(m.messageId);
    const p = s.props;
    const app = m.applicationProperties ?? {};
    if (app.target !== p.target || app.region !== p.region || m.subject !== p.subject || m.correlationId !== p.corr) {
      this.fail(`${label}: properties ${JSON.stringify({ target: app.target, region: app.region, subject: m.subject, corr: m.correlationId })}, sent ${JSON.stringify(p)}`);
    }
    const seq = m.sequenceNumber?.toNumber();
    if (seq === undefined) this.fail(`${label}: no sequence number`);
    this.checkSeq(s, seq, label);
    if (c.where === 'main' && m.enqueuedTimeUtc) {
      const at = m.enqueuedTimeUtc.getTime();
      if (at < s.enqueued[0] - 2 || at > s.enqueued[1] + 2) this.fail(`${label}: enqueued at ${at}, accepted between ${s.enqueued[0]} and ${s.enqueued[1]}`);
    }
    if (counts === 'range') {
      if (m.deliveryCount === undefined || m.deliveryCount < c.count[0] || m.deliveryCount > c.count[1]) {
        this.fail(`${label}: deliveryCount ${m.deliveryCount}, expected ${c.count[0] === c.count[1] ? c.count[0] : `${c.count[0]}..${c.count[1]}`}`);
      }
      c.count = [m.deliveryCount, m.deliveryCount];
    } else if (!counts.includes(m.deliveryCount ?? -1)) {
      this.fail(`${label}: deliveryCount ${m.deliveryCount}, expected ${counts.join(' or ')}`);
    }
    if (c.where === 'dlq') {
      const dl = c.deadLetter!;
      if (dl.max) {
        if (m.deadLetterReason !== 'MaxDeliveryCountExceeded') this.fail(`${label}: deadLetterReason ${m.deadLetterReason}, expected MaxDeliveryCountExceeded`);
      } else {
        if (dl.reason !== undefined && m.deadLetterReason !== dl.reason) this.fail(`${label}: deadLetterReason ${m.deadLetterReason}, given ${dl.reason}`);
        if (dl.description !== undefined && m.deadLetterErrorDescription !== dl.description) {
          this.fail(`${label}: deadLetterErrorDescription ${m.deadLetterErrorDescription}, given ${dl.description}`);
        }
      }
    } else if (m.deadLetterReason !== undefined) {
      this.fail(`${label}: a deadLetterReason (${m.deadLetterReason}) on a message that was not dead-lettered`);
    }
  }

  private copyOf(m: ServiceBusReceivedMessage, e: EntityDef, what: string): { sent: Sent; copy?: Copy } {
    const n = (m.body as { n?: unknown } | undefined)?.n;
    const s = this.sents.find((x) => x.n === n && x.to === e.to);
    if (!s) this.fail(`${what} on ${e.name}: a message nobody sent (${JSON.stringify(m.body)}, seq ${m.sequenceNumber?.toString()})`);
    return { sent: s, copy: s.copies.find((c) => c.entity === e) };
  }

  private where(c: Copy): string {
    return `${c.where}${c.deferred ? ' deferred' : ''}${c.lock ? ` locked until +${c.lock.until - Date.now()}ms` : ''}`;
  }

  // ---- commands ------------------------------------------------------------------------------

  async run(cmd: Cmd): Promise<void> {
    this.advance();
    switch (cmd.t) {
      case 'send':
        return this.send(cmd.to, cmd.draws);
      case 'resend': {
        const t = this.targets.get(cmd.to)!;
        if (t.reusable.length === 0) return;
        const id = t.reusable[cmd.pick % t.reusable.length];
        const first = t.seen.get(id)!;
        if (cmd.pastWindow && t.dupWindowMs !== undefined) await sleepUntil(first[1] + t.dupWindowMs + 1);
        // Untargeted or targeted at a service, so that a copy shows whether it was dropped.
        const target = cmd.draw.target === 'other' ? undefined : cmd.draw.target;
        return this.send(cmd.to, [{ ...cmd.draw, target, id: { reuse: cmd.pick % t.reusable.length } }]);
      }
      case 'schedule':
        return this.schedule(cmd.to, cmd.draw, cmd.delayMs, cmd.cancel);
      case 'cancel':
        return this.cancel(cmd.pick);
      case 'receive': {
        const { e, dlq } = this.resolve(cmd.place, true);
        const got = await this.receive(e, dlq, cmd.n, cmd.via);
        if (cmd.then && got.length > 0) {
          const held = this.locks.filter((x) => got.includes(x.msg));
          if (cmd.late) {
            const until = Math.max(...held.map((l) => l.until));
            this.note(`wait for the locks to run out`);
            await sleepUntil(until + SLACK_MS + 1);
            this.advance();
          }
          for (const l of held) await this.settleLock(l, cmd.then);
        }
        if (cmd.peek) await this.peek(e, dlq, 'start', 0, 10);
        return;
      }
      case 'settle':
        return this.settle(cmd.pick, cmd.s, cmd.stale);
      case 'receivePair': {
        const { e, dlq } = this.resolve(cmd.place, true);
        return this.receivePair(e, dlq, cmd.n);
      }
      case 'receiveDeferred':
        return this.receiveDeferred(cmd.pick, cmd.via);
      case 'receiveNotDeferred': {
        const { e, dlq } = this.resolve(cmd.place, false);
        return this.receiveNotDeferred(e, dlq, cmd.pick);
      }
      case 'peek': {
        const { e, dlq } = this.resolve(cmd.place, false);
        return this.peek(e, dlq, cmd.from, cmd.pick, cmd.n);
      }
      case 'wait':
        this.note(`wait ${cmd.ms}`);
        await sleep(cmd.ms);
        return;
    }
  }

  /** The place a command names; a busy one: among those with messages to receive (or, for `receivable` false, any messages), if any. */
  private resolve(place: Place, receivable: boolean): { e: EntityDef; dlq: boolean } {
    const drawn = { e: ENTITIES[place.e % ENTITIES.length], dlq: place.dlq };
    if (!place.busy) return drawn;
    const busy: { e: EntityDef; dlq: boolean }[] = [];
    for (const e of ENTITIES) {
      for (const dlq of [false, true]) {
        const has = receivable
          ? this.receivable(e, dlq, Date.now()).required.length > 0
          : this.sents.some((s) => s.copies.some((c) => c.entity === e && c.where === (dlq ? 'dlq' : 'main')));
        if (has) busy.push({ e, dlq });
      }
    }
    return busy.length > 0 ? busy[place.e % busy.length] : drawn;
  }

  /** Waits until no scheduled message of `to` is due around now, so the order of a send and an activation is known. */
  private async clearOfActivations(to: TargetName): Promise<void> {
    for (;;) {
      const now = Date.now();
      const due = this.pendingScheduled(to).find((s) => s.scheduled!.at >= now - SLACK_MS && s.scheduled!.at <= now + GUARD_MS);
      if (!due) return;
      await sleepUntil(due.scheduled!.at + SLACK_MS + 1);
      this.advance();
    }
  }

  private draft(d: Draw, t: TargetState, n: number, usedInBatch: Set<string>): { message: ServiceBusMessage; id?: string } {
    let id: string | undefined;
    if (d.id === 'fresh') id = `m-${n}`;
    else if (typeof d.id === 'object' && t.reusable.length > 0) id = t.reusable[d.id.reuse % t.reusable.length];
    if (id !== undefined && usedInBatch.has(id)) id = `m-${n}`;
    if (id !== undefined) usedInBatch.add(id);
    const applicationProperties: Record<string, string> = {};
    if (d.target !== undefined) applicationProperties.target = d.target;
    if (d.region !== undefined) applicationProperties.region = d.region;
    const message: ServiceBusMessage = { body: { n }, applicationProperties };
    if (id !== undefined) message.messageId = id;
    if (d.subject !== undefined) message.subject = d.subject;
    if (d.corr !== undefined) message.correlationId = d.corr;
    return { message, id };
  }

  private async send(to: TargetName, draws: Draw[]): Promise<void> {
    await this.clearOfActivations(to);
    const t = this.targets.get(to)!;
    const used = new Set<string>();
    const batch = draws.map((d) => {
      const n = this.nextN++;
      return { d, n, ...this.draft(d, t, n, used) };
    });
    const t0 = Date.now();
    await this.sender(to).sendMessages(batch.map((b) => b.message));
    const t1 = Date.now();
    this.stats.sends++;
    const outcomes: string[] = [];
    for (const b of batch) {
      const props: Props = { target: b.d.target, region: b.d.region, subject: b.d.subject, corr: b.d.corr };
      const first = b.id !== undefined && t.dupWindowMs !== undefined ? t.seen.get(b.id) : undefined;
      let outcome: 'new' | 'duplicate' | 'undecidable' = 'new';
      if (first) {
        if (t1 - first[0] < t.dupWindowMs!) outcome = 'duplicate';
        else if (t0 - first[1] < t.dupWindowMs!) outcome = 'undecidable';
      }
      outcomes.push(`#${b.n}${b.id ? ` id ${b.id}` : ''}: ${outcome}`);
      if (first && outcome === 'new' && t.dupWindowMs !== undefined) this.stats.resentPastWindow++;
      if (outcome === 'undecidable') this.stats.undecidable++;
      if (outcome === 'duplicate') {
        this.stats.duplicatesDropped++;
        continue;
      }
      const s: Sent = { n: b.n, to, props, messageId: b.id, enqueued: [t0, t1], uncertain: outcome === 'undecidable', copies: [] };
      if (outcome === 'undecidable') {
        t.exact = false;
        t.reusable = t.reusable.filter((x) => x !== b.id);
      } else {
        s.ordinal = t.exact ? t.next++ : undefined;
        if (b.id !== undefined) {
          t.seen.set(b.id, [t0, t1]);
          if (!t.reusable.includes(b.id)) t.reusable.push(b.id);
        }
      }
      this.addCopies(s);
      this.sents.push(s);
    }
    // A scheduled message that came due while the send was under way may have been appended first.
    if (this.pendingScheduled(to).some((s) => s.scheduled!.at <= t1)) t.exact = false;
    this.note(`send to ${to} (${t1 - t0}ms): ${outcomes.join('; ')}`);
  }

  private async schedule(to: TargetName, d: Draw, delayMs: number, cancel: boolean): Promise<void> {
    await this.clearOfActivations(to);
    const t = this.targets.get(to)!;
    const n = this.nextN++;
    const { message, id } = this.draft(d.id === 'none' ? d : { ...d, id: 'fresh' }, t, n, new Set());
    let at = Date.now() + delayMs;
    // Distinct times, so the order in which they become active is known.
    while (this.sents.some((s) => s.to === to && s.scheduled?.at === at)) at++;
    const t0 = Date.now();
    const [seqLong] = await this.sender(to).scheduleMessages(message, new Date(at));
    const t1 = Date.now();
    this.stats.scheduled++;
    const s: Sent = { n, to, props: { target: d.target, region: d.region, subject: d.subject, corr: d.corr }, messageId: id, enqueued: [at, at], uncertain: false, copies: [] };
    s.scheduled = { at, seq: seqLong.toNumber(), ordinal: t.exact ? t.next++ : undefined, state: 'pending' };
    this.checkScheduledSeq(s, seqLong.toNumber(), 'scheduleMessages');
    this.sents.push(s);
    if (this.pendingScheduled(to).some((x) => x !== s && x.scheduled!.at <= t1)) t.exact = false;
    this.note(`schedule #${n} to ${to} at +${at - t0}ms (${t1 - t0}ms): seq ${seqLong.toString()}`);
    if (cancel) await this.cancelScheduled(s);
  }

  private async cancel(pick: number): Promise<void> {
    const now = Date.now();
    const candidates = this.sents.filter((s) => s.scheduled?.state === 'pending' && s.scheduled.at - now > GUARD_MS + 100);
    if (candidates.length === 0) return;
    await this.cancelScheduled(candidates[pick % candidates.length]);
  }

  private async cancelScheduled(s: Sent): Promise<void> {
    if (s.scheduled!.at - Date.now() <= GUARD_MS + 100) return;
    await this.sender(s.to).cancelScheduledMessages(Long.fromNumber(s.scheduled!.seq!));
    const t1 = Date.now();
    this.stats.cancelled++;
    if (t1 < s.scheduled!.at) {
      s.scheduled!.state = 'cancelled';
      this.note(`cancel #${s.n}`);
    } else {
      // The message may have become active before the cancel arrived.
      s.uncertain = true;
      this.targets.get(s.to)!.exact = false;
      this.activateThrough(s.to, s.scheduled!.at, t1);
      this.note(`cancel #${s.n}: undecidable (answered after its time)`);
    }
  }

  /** Copies a receive from `place` must, may, or must not get. */
  private receivable(e: EntityDef, dlq: boolean, until: number): { required: Copy[]; optional: Copy[] } {
    const where = dlq ? 'dlq' : 'main';
    const required: Copy[] = [];
    const optional: Copy[] = [];
    for (const s of this.sents) {
      for (const c of s.copies) {
        if (c.entity !== e || c.deferred) continue;
        if (c.lock) {
          // Its lock may run out while the call is under way.
          if (c.lock.until <= until) {
            const next = c.where === 'main' && c.count[0] + 1 >= e.maxDelivery ? 'dlq' : c.where;
            if (next === where) optional.push(c);
          }
          continue;
        }
        if (c.where !== where) continue;
        (s.uncertain ? optional : required).push(c);
      }
    }
    return { required, optional };
  }

  /** Scheduled messages that may become active for `e` by `until`. */
  private dueBy(e: EntityDef, until: number): Sent[] {
    return this.pendingScheduled(e.to).filter((s) => s.scheduled!.at <= until && e.accepts(s.props));
  }

  private async receive(e: EntityDef, dlq: boolean, n: number, via: number, what = 'receive'): Promise<ServiceBusReceivedMessage[]> {
    const receiver = this.receiver(e, dlq, via);
    const before = this.receivable(e, dlq, Date.now());
    const want = before.required.length > 0 ? Math.min(n, before.required.length) : n;
    const t0 = Date.now();
    const got = await receiver.receiveMessages(want, { maxWaitTimeInMs: before.required.length > 0 ? 5000 : 150 });
    const t1 = Date.now();
    const place = `${e.name}${dlq ? '/dlq' : ''}`;
    this.note(`${what} ${want} from ${place} via ${via} (${t1 - t0}ms): ${got.map((m) => `#${(m.body as { n: number }).n} dc${m.deliveryCount}`).join(', ') || 'nothing'}`);
    if (got.length > want) this.fail(`${what} of ${want} from ${place} got ${got.length}`);
    if (before.required.length > 0 && got.length < want) {
      this.fail(`${what} of ${want} from ${place} got ${got.length}; available: ${before.required.map((c) => `#${c.sent.n}`).join(', ')}`);
    }
    const { required } = this.receivable(e, dlq, t1);
    const fresh = this.take(got, e, dlq, receiver, t0, t1, what, new Set());
    this.checkExtractionOrder(fresh, required, place, what);
    return got;
  }

  /** Checks messages a receive got against what was available, and locks them in the model. Returns the never-delivered ones, in order. */
  private take(got: ServiceBusReceivedMessage[], e: EntityDef, dlq: boolean, receiver: ServiceBusReceiver, t0: number, t1: number, what: string, seen: Set<Copy>): Copy[] {
    const { required, optional } = this.receivable(e, dlq, t1);
    const due = dlq ? [] : this.dueBy(e, t1);
    const place = `${e.name}${dlq ? '/dlq' : ''}`;
    const fresh: Copy[] = [];
    for (const m of got) {
      let { sent, copy } = this.copyOf(m, e, what);
      let activatedNow = false;
      if (!copy && sent.scheduled?.state === 'pending' && due.includes(sent)) {
        // Came due while the call was under way.
        this.activateThrough(sent.to, sent.scheduled.at, t1);
        copy = sent.copies.find((c) => c.entity === e);
        activatedNow = true;
      }
      if (!copy) this.fail(`${what} from ${place}: #${sent.n} ${JSON.stringify(sent.props)} does not pass ${e.name}'s filter, or was dropped as a duplicate`);
      if (seen.has(copy)) this.fail(`${what} from ${place}: #${sent.n} delivered twice at once`);
      seen.add(copy);
      if (optional.includes(copy) && copy.lock) this.expire(copy); // its lock ran out during the call: counted first
      else if (!activatedNow && !required.includes(copy) && !optional.includes(copy)) {
        this.fail(`${what} from ${place}: #${sent.n} is not available (${this.where(copy)}, completed ${copy.timesCompleted}x)`);
      }
      if (copy.where !== (dlq ? 'dlq' : 'main')) this.fail(`${what} from ${place}: #${sent.n} delivered from ${place} but it is ${this.where(copy)}`);
      sent.uncertain = false;
      if (!copy.delivered && !dlq) fresh.push(copy);
      this.checkMessage(m, copy, what, 'range');
      if (m.state !== 'active') this.fail(`${what} from ${place}: #${sent.n} has state ${m.state}`);
      const lockedUntil = m.lockedUntilUtc?.getTime();
      if (lockedUntil === undefined || lockedUntil < t0 + LOCK_MS - 5 || lockedUntil > t1 + LOCK_MS + 5) {
        this.fail(`${what} from ${place}: #${sent.n} locked until ${lockedUntil}, expected ${LOCK_MS}ms after delivery (${t0}..${t1})`);
      }
      this.newLockToken(m, `${what} from ${place}`);
      copy.delivered = true;
      const lock: Lock = { copy, msg: m, receiver, until: lockedUntil, fromDlq: dlq, state: 'live', usable: true };
      copy.lock = lock;
      this.locks.push(lock);
      this.stats.received++;
    }
    return fresh;
  }

  /** Two receivers of one place receiving at once: each gets what it asked for, none the same message. */
  private async receivePair(e: EntityDef, dlq: boolean, n: number): Promise<void> {
    const available = this.receivable(e, dlq, Date.now()).required.length;
    if (available < 2) return;
    const each = Math.max(1, Math.min(n, Math.floor(available / 2)));
    const [r0, r1] = [this.receiver(e, dlq, 0), this.receiver(e, dlq, 1)];
    const t0 = Date.now();
    const [g0, g1] = await Promise.all([r0.receiveMessages(each, { maxWaitTimeInMs: 5000 }), r1.receiveMessages(each, { maxWaitTimeInMs: 5000 })]);
    const t1 = Date.now();
    const place = `${e.name}${dlq ? '/dlq' : ''}`;
    const list = (got: ServiceBusReceivedMessage[]) => got.map((m) => `#${(m.body as { n: number }).n}`).join(', ') || 'nothing';
    this.note(`receive ${each} + ${each} at once from ${place} (${t1 - t0}ms): ${list(g0)} | ${list(g1)}`);
    if (g0.length !== each || g1.length !== each) this.fail(`receive ${each} + ${each} at once from ${place} (${available} available): got ${g0.length} and ${g1.length}`);
    const seen = new Set<Copy>();
    this.take(g0, e, dlq, r0, t0, t1, 'receive at once', seen);
    this.take(g1, e, dlq, r1, t0, t1, 'receive at once', seen);
  }

  /**
   * Never-delivered messages come out in sequence order, none skipped: those a receive got are the
   * first never-delivered ones available, in order.
   */
  private checkExtractionOrder(got: Copy[], required: Copy[], place: string, what: string): void {
    const t = this.targets.get(got[0]?.sent.to ?? ORDERS_TOPIC)!;
    if (got.length === 0 || !t.exact) return;
    const ord = (c: Copy) => c.sent.ordinal ?? Infinity;
    for (let i = 1; i < got.length; i++) {
      if (ord(got[i]) < ord(got[i - 1])) this.fail(`${what} from ${place}: #${got[i - 1].sent.n} came before #${got[i].sent.n}, sent later`);
    }
    const last = ord(got[got.length - 1]);
    // Copies received now are marked delivered already; the rest of `required` are the ones left.
    const missed = required.filter((c) => !c.delivered && ord(c) < last);
    if (missed.length > 0) this.fail(`${what} from ${place}: got #${got.map((c) => c.sent.n).join(', #')} but not the earlier never-delivered #${missed.map((c) => c.sent.n).join(', #')}`);
  }

  private async settle(pick: number, requested: Settlement, stale: boolean): Promise<void> {
    const lost = this.locks.filter((x) => x.state === 'lost');
    const pool = stale ? (lost.length > 0 ? lost : this.locks.filter((x) => x.state === 'settled')) : this.locks.filter((x) => x.state === 'live' && x.usable);
    if (pool.length > 0) await this.settleLock(pool[pick % pool.length], requested);
  }

  private async settleLock(l: Lock, requested: Settlement): Promise<void> {
    const c = l.copy;
    const inDlq = l.fromDlq;
    let s = requested;
    if (s.how === 'defer' && c.where === 'main' && c.count[0] + 1 >= c.entity.maxDelivery) s = { how: 'abandon' };
    const stateBefore = l.state;
    const t0 = Date.now();
    let error: unknown;
    try {
      if (s.how === 'complete') await l.receiver.completeMessage(l.msg);
      else if (s.how === 'abandon') await l.receiver.abandonMessage(l.msg);
      else if (s.how === 'defer') await l.receiver.deferMessage(l.msg);
      else {
        const options: { deadLetterReason?: string; deadLetterErrorDescription?: string } = {};
        if (s.reason !== undefined) options.deadLetterReason = s.reason;
        if (s.description !== undefined) options.deadLetterErrorDescription = s.description;
        await l.receiver.deadLetterMessage(l.msg, options as Parameters<ServiceBusReceiver['deadLetterMessage']>[1]);
      }
    } catch (err) {
      error = err;
    }
    const t1 = Date.now();
    const label = `${s.how} #${c.sent.n}@${c.entity.name}${inDlq ? '/dlq' : ''}`;
    this.note(`${label} (lock ${stateBefore}, ${l.until - t0}ms left, ${t1 - t0}ms): ${error ? `error ${(error as { code?: string }).code ?? (error as Error).message}` : 'ok'}`);
    if (stateBefore === 'settled') {
      if (!error) this.fail(`${label}: settling a message a second time succeeded`);
      this.locks.splice(this.locks.indexOf(l), 1);
      return;
    }
    const surelyLost = stateBefore === 'lost' || l.until <= t0;
    const surelyHeld = stateBefore === 'live' && t1 < l.until;
    // Service Bus does not dead-letter a message that is in a dead-letter queue.
    const refusable = s.how === 'deadLetter' && inDlq;
    if (!error) {
      if (surelyLost) this.fail(`${label}: settled with a lock that ran out ${t0 - l.until}ms before`);
      if (refusable) this.fail(`${label}: dead-lettering a message in a dead-letter queue succeeded`);
      l.state = 'settled';
      c.lock = undefined;
      this.stats.settled++;
      this.apply(c, s);
      return;
    }
    if (refusable && !surelyLost && isServiceBusError(error) && error.code === 'GeneralError') {
      // Refused; the message stays where it was, locked until the lock runs out.
      l.usable = false;
      this.stats.refused++;
      return;
    }
    if (surelyHeld) this.fail(`${label}: failed while the lock was held (${l.until - t1}ms left): ${String(error)}`);
    if (!isServiceBusError(error) || error.code !== 'MessageLockLost') this.fail(`${label}: with a lock that ran out, failed with ${String(error)} instead of MessageLockLost`);
    this.stats.lockLost++;
    if (l.state === 'live') this.expire(c);
    this.locks.splice(this.locks.indexOf(l), 1);
  }

  private apply(c: Copy, s: Settlement): void {
    switch (s.how) {
      case 'complete':
        c.where = 'done';
        c.timesCompleted++;
        return;
      case 'abandon':
        this.countFailed(c);
        return;
      case 'defer':
        c.deferred = true;
        // Whether a deferral in a dead-letter queue counts is not known: either.
        c.count = c.where === 'dlq' ? [c.count[0], c.count[1] + 1] : [c.count[0] + 1, c.count[1] + 1];
        return;
      case 'deadLetter':
        this.moveToDlq(c, { max: false, reason: s.reason, description: s.description });
        this.stats.deadLettered++;
        return;
    }
  }

  private async receiveDeferred(pick: number, via: number): Promise<void> {
    const now = Date.now();
    const deferred = this.sents.flatMap((s) => s.copies).filter((c) => c.deferred && c.where !== 'done' && c.sent.seq !== undefined);
    if (deferred.length === 0) return;
    const c = deferred[pick % deferred.length];
    if (c.lock && c.lock.until - now < GUARD_MS + SLACK_MS) return; // its lock is about to run out: undecidable
    await this.receiveDeferredCopy(c, via, 'receiveDeferredMessages');
  }

  private async receiveDeferredCopy(c: Copy, via: number, what: string): Promise<void> {
    const dlq = c.where === 'dlq';
    const receiver = this.receiver(c.entity, dlq, via);
    const lockedBefore = c.lock !== undefined;
    const t0 = Date.now();
    let got: ServiceBusReceivedMessage[] | undefined;
    let error: unknown;
    try {
      got = await receiver.receiveDeferredMessages(Long.fromNumber(c.sent.seq!));
    } catch (err) {
      error = err;
    }
    const t1 = Date.now();
    const label = `${what} #${c.sent.n}@${c.entity.name}${dlq ? '/dlq' : ''}`;
    this.note(`${label}${lockedBefore ? ' (locked)' : ''} (${t1 - t0}ms): ${error ? `error ${(error as { code?: string }).code ?? (error as Error).message}` : `${got!.length} message(s)`}`);
    if (lockedBefore) {
      if (!error && got!.length > 0) this.fail(`${label}: a deferred message locked by another receive was received again`);
      return;
    }
    if (error || got!.length !== 1) this.fail(`${label}: ${error ? String(error) : `${got!.length} messages`} instead of the deferred message`);
    const m = got![0];
    if ((m.body as { n?: unknown }).n !== c.sent.n) this.fail(`${label}: got ${JSON.stringify(m.body)}`);
    this.checkMessage(m, c, label, 'range');
    if (m.state !== 'deferred') this.fail(`${label}: state ${m.state}, expected deferred`);
    const until = m.lockedUntilUtc?.getTime();
    if (until === undefined || until < t0 + LOCK_MS - 5 || until > t1 + LOCK_MS + 5) this.fail(`${label}: locked until ${until}, expected ${LOCK_MS}ms after delivery`);
    this.newLockToken(m, label);
    const lock: Lock = { copy: c, msg: m, receiver, until, fromDlq: dlq, state: 'live', usable: true };
    c.lock = lock;
    c.delivered = true;
    this.locks.push(lock);
  }

  private async receiveNotDeferred(e: EntityDef, dlq: boolean, pick: number): Promise<void> {
    const candidates = this.sents.flatMap((s) => s.copies).filter((c) => c.entity === e && c.where === (dlq ? 'dlq' : 'main') && !c.deferred && c.sent.seq !== undefined);
    const seq = candidates.length > 0 ? candidates[pick % candidates.length].sent.seq! : 1_000_000 + pick;
    const place = `${e.name}${dlq ? '/dlq' : ''}`;
    let result: string;
    try {
      const got = await this.receiver(e, dlq, 0).receiveDeferredMessages(Long.fromNumber(seq));
      result = `${got.length} message(s)`;
      if (got.length > 0) this.fail(`receiveDeferredMessages(${seq}) on ${place}: got a message that is not deferred (#${(got[0].body as { n: number }).n})`);
    } catch (err) {
      result = `error ${(err as { code?: string }).code ?? (err as Error).message}`;
    }
    this.note(`receiveDeferredMessages(${seq}) on ${place}, not deferred: ${result}`);
  }

  private async peek(e: EntityDef, dlq: boolean, fromKind: 'start' | 'at' | 'after' | 'past', pick: number, n: number): Promise<void> {
    const where = dlq ? 'dlq' : 'main';
    const place = `${e.name}${dlq ? '/dlq' : ''}`;
    const known = this.sents.flatMap((s) => s.copies).filter((c) => c.entity === e && c.where === where && c.sent.seq !== undefined);
    let from = 0;
    if (fromKind === 'past') from = 1_000_000;
    else if (fromKind !== 'start' && known.length > 0) from = known[pick % known.length].sent.seq! + (fromKind === 'after' ? 1 : 0);
    const t0 = Date.now();
    const got = await this.receiver(e, dlq, 0).peekMessages(n, { fromSequenceNumber: Long.fromNumber(from) });
    const t1 = Date.now();
    this.note(`peek ${n} from ${place} at ${from} (${t1 - t0}ms): ${got.map((m) => `#${(m.body as { n: number }).n}/s${m.sequenceNumber?.toString()} dc${m.deliveryCount}${m.state === 'active' ? '' : ` ${m.state}`}`).join(', ') || 'nothing'}`);
    if (got.length > n) this.fail(`peek ${n} from ${place}: got ${got.length}`);
    const t = this.targets.get(e.to)!;
    const returned = new Set<Copy>();
    let lastSeq = -Infinity;
    for (const m of got) {
      const seq = m.sequenceNumber!.toNumber();
      if (seq < from) this.fail(`peek from ${place} at ${from}: got sequence number ${seq}`);
      if (seq <= lastSeq) this.fail(`peek from ${place}: sequence numbers out of order (${lastSeq} then ${seq})`);
      lastSeq = seq;
      if (m.lockToken !== undefined) this.fail(`peek from ${place}: a peeked message carries a lock token`);
      let { sent, copy } = this.copyOf(m, e, 'peek');
      if (m.state === 'scheduled') {
        // Service Bus shows a queue's scheduled messages; the model accepts them with their scheduled number.
        if (dlq || e.subscription !== undefined || sent.scheduled?.state !== 'pending') this.fail(`peek from ${place}: #${sent.n} shown as scheduled`);
        this.checkScheduledSeq(sent, seq, `peek ${place}`);
        continue;
      }
      if (!copy && sent.scheduled?.state === 'pending' && !dlq && this.dueBy(e, t1).includes(sent)) {
        this.activateThrough(sent.to, sent.scheduled.at, t1);
        copy = sent.copies.find((c) => c.entity === e);
      }
      if (!copy) this.fail(`peek from ${place}: #${sent.n} ${JSON.stringify(sent.props)} does not pass ${e.name}'s filter, or was dropped as a duplicate`);
      if (returned.has(copy)) this.fail(`peek from ${place}: #${sent.n} twice`);
      returned.add(copy);
      const flux = copy.lock !== undefined && copy.lock.until <= t1;
      const fluxTo = flux && copy.where === 'main' && copy.count[0] + 1 >= e.maxDelivery ? 'dlq' : copy.where;
      if (copy.where !== where && !(flux && fluxTo === where)) this.fail(`peek from ${place}: #${sent.n} shown but it is ${this.where(copy)}`);
      if (flux && copy.where !== where) this.expire(copy); // it ran out and moved: the peek saw the move
      sent.uncertain = false;
      const counts = copy.where === 'dlq' ? 'range' : flux ? [copy.count[0], copy.count[0] + 1] : [copy.count[0]];
      this.checkMessage(m, copy, `peek ${place}`, counts);
      if (m.state !== (copy.deferred ? 'deferred' : 'active')) this.fail(`peek from ${place}: #${sent.n} has state ${m.state}, expected ${copy.deferred ? 'deferred' : 'active'}`);
      this.stats.peeked++;
    }
    if (!t.exact) return;
    // Skipping none: every message the entity certainly holds from `from` up to the last one shown was shown.
    const expected = this.sents
      .flatMap((s) => s.copies)
      .filter((c) => c.entity === e && c.where === where && !c.sent.uncertain && !(c.lock && c.lock.until <= t1 && c.where === 'main' && c.count[0] + 1 >= e.maxDelivery))
      .map((c) => ({ c, seq: this.seqOf(c.sent) }))
      .filter((x): x is { c: Copy; seq: number } => x.seq !== undefined && x.seq >= from)
      .sort((a, b) => a.seq - b.seq);
    if (got.length === 0 && expected.length > 0) this.fail(`peek ${n} from ${place} at ${from}: nothing, but it holds #${expected.map((x) => x.c.sent.n).join(', #')}`);
    const missed = expected.filter((x) => x.seq <= lastSeq && !returned.has(x.c));
    if (missed.length > 0) this.fail(`peek from ${place} at ${from}: skipped #${missed.map((x) => `${x.c.sent.n} (seq ${x.seq})`).join(', #')}`);
  }

  // ---- the end -------------------------------------------------------------------------------

  /** Lets every lock run out and every scheduled message come due, then takes every message out, completing each. */
  async drain(): Promise<void> {
    const now = Date.now();
    const latest = Math.max(now, ...this.locks.filter((l) => l.state === 'live').map((l) => l.until), ...this.sents.filter((s) => s.scheduled?.state === 'pending').map((s) => s.scheduled!.at));
    await sleepUntil(latest + SLACK_MS + 1);
    this.advance();
    this.note('drain');
    for (const e of ENTITIES) {
      for (const dlq of [false, true]) {
        const where = dlq ? 'dlq' : 'main';
        for (const c of this.sents.flatMap((s) => s.copies).filter((x) => x.entity === e && x.where === where && x.deferred)) {
          await this.receiveDeferredCopy(c, 0, 'drain: receiveDeferredMessages');
          await this.completeHeld(c);
        }
        for (;;) {
          const { required, optional } = this.receivable(e, dlq, Date.now());
          if (required.length + optional.length === 0) break;
          const got = await this.receive(e, dlq, required.length + optional.length, 0, 'drain: receive');
          if (got.length === 0) break;
          for (const m of got) await this.completeHeld(this.copyOf(m, e, 'drain').copy!);
        }
      }
    }
    // Nothing left anywhere: not even a copy in a subscription whose filter rejects the message.
    const left = await Promise.all(ENTITIES.flatMap((e) => [false, true].map(async (dlq) => ({ e, dlq, got: await this.receiver(e, dlq, 0).peekMessages(10, { fromSequenceNumber: Long.ZERO }) }))));
    for (const { e, dlq, got } of left) {
      const stray = got.filter((m) => !this.copyOf(m, e, 'drain: peek').sent.uncertain);
      if (stray.length > 0) this.fail(`drain: ${e.name}${dlq ? '/dlq' : ''} still holds #${stray.map((m) => (m.body as { n: number }).n).join(', #')}`);
    }
    // At least once, exactly once here: every accepted message's every copy completed once.
    for (const s of this.sents) {
      if (s.uncertain || s.scheduled?.state === 'cancelled') continue;
      for (const c of s.copies) {
        if (c.where !== 'done' || c.timesCompleted !== 1) this.fail(`drain: #${s.n}@${c.entity.name} ended ${this.where(c)}, completed ${c.timesCompleted}x`);
      }
    }
  }

  private async completeHeld(c: Copy): Promise<void> {
    const l = c.lock;
    if (!l) this.fail(`drain: #${c.sent.n}@${c.entity.name} is not locked`);
    try {
      await l.receiver.completeMessage(l.msg);
    } catch (err) {
      this.fail(`drain: completing #${c.sent.n}@${c.entity.name} failed: ${String(err)}`);
    }
    l.state = 'settled';
    c.lock = undefined;
    c.where = 'done';
    c.timesCompleted++;
  }
}

// ---------------------------------------------------------------------------------------------

const totals: Record<string, number> = { cases: 0, commands: 0, ms: 0 };

async function runCase(cmds: Cmd[]): Promise<void> {
  const h = await startHarness(modelTopology);
  const started = Date.now();
  const model = new Case(h);
  try {
    for (const cmd of cmds) await model.run(cmd);
    await model.drain();
  } finally {
    await h.close();
    totals.cases++;
    totals.commands += cmds.length;
    totals.ms += Date.now() - started;
    for (const [k, v] of Object.entries(model.stats)) totals[k] = (totals[k] ?? 0) + v;
    if (process.env.FC_TRACE) process.stderr.write(`${model.trace.join('\n')}\n\n`);
  }
}

it('behaves as the model of Service Bus says, through the SDK', async () => {
  // A case takes seconds, so shrinking a failure takes minutes: only when asked (FC_SHRINK=1).
  const options = { ...searchOptions(RUNS), endOnFailure: !process.env.FC_SHRINK };
  const cmds = fc.tuple(fc.array(sendArb, { minLength: 1, maxLength: 3 }), fc.array(cmdArb, { minLength: 8, maxLength: 30 })).map(([first, rest]) => [...first, ...rest]);
  await fc.assert(fc.asyncProperty(cmds, runCase), options);
  // eslint-disable-next-line no-console
  if (process.env.FC_STATS) console.log(`model: ${JSON.stringify(totals)}`);
}, 60_000 + Number(process.env.FC_RUNS ?? RUNS) * 20_000);
