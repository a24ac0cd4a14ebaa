/**
 * The fault-injection run (`npm run chaos`): places N orders with simulated billing failures,
 * out-of-stock items, a hot SKU and unreadable copies of some orders' events, while the Functions
 * host is SIGKILLed at random moments and started again on the same durable task hub; the
 * emulators keep running. Then it checks through
 * the API that nothing was lost (see chaos-invariants.ts), prints a table, and exits non-zero
 * naming the orders when anything does not hold.
 *
 * With `--fault cosmos` or `--fault servicebus` the same run stalls that emulator instead (SIGSTOP
 * for `--stall-seconds`, then SIGCONT: connections stay open and nothing answers, as in a network
 * black hole), the host keeps running, and the same checks apply. With `--fault throttle` the
 * Cosmos DB stand-in answers `--throttle-percent` of the requests on documents with 429
 * TooManyRequests (`x-ms-retry-after-ms: --retry-after-ms`) for `--stall-seconds` at each fault
 * moment, as Cosmos DB does when a container's RU/s are used up.
 *
 * Flags: --orders N (500)  --kills N (5)  --seed N (random)  --timeout SECONDS (600)
 *        --concurrency N (16)  --fault host|cosmos|servicebus|throttle (host)  --stall-seconds N (30)
 *        --throttle-percent N (40)  --retry-after-ms N (100)  --echo (host output to stderr)
 *        --lock-seconds N (the topology's minute): the subscriptions' message lock, so a killed
 *        host's messages come back sooner
 */
import { ServiceBusClient } from '@azure/service-bus';
import Long from 'long';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { standInThrottle } from '../local/cosmos-emulator/throttle-client';
import { REPO_ROOT, startLocalStack, type LocalStack } from '../local/stack';
import { CLOUDEVENTS_CONTENT_TYPE, ORDER_CREATED } from '../src/domain/orderCreatedEvent';
import { DEFAULT_DEAD_LETTER_SWEEP } from '../src/support/deadLetterSweep';
import { RenewingServiceBus, SERVICE_BUS_RENEW_AFTER_MS } from '../src/azure/clients';
import { durationMs, ORDERS_TOPIC, serviceBusTopology, SERVICES, SUBSCRIPTIONS, TARGET_PROPERTY, type ServiceName } from '../src/topology';
import {
  checkChaosInvariants,
  corruptCopySurfaced,
  holdsOfFinishedOrders,
  messagesOfFinishedOrders,
  type CorruptCopy,
  type ChaosVerdict,
  type ObservedOrder,
  type ObservedStock,
  type QueuedDeadLetter,
} from './chaos-invariants';
import { call, closedLoop, keepAliveAgent, Progress, sleep, type Answer } from './load';
import { seededRandom } from './seededRandom';

/** The longest message lock of the app's subscriptions: how long a redelivery can take after a kill. */
const LONGEST_LOCK_MS = Math.max(...serviceBusTopology.topics.flatMap((t) => t.subscriptions.map((sub) => durationMs(sub.lockDuration))));

/**
 * Monitor policy for the run: requeue, poll and compensation retries in about a second instead of
 * the production minutes, so recovery is exercised many times within the run. The stuck threshold
 * stays above the time a killed host's message locks take to expire (one minute), so a message
 * that is only waiting for its lock is not mistaken for a stuck one too early.
 */
export const FAST_MONITOR_SETTINGS: Record<string, string> = {
  MONITOR_REQUEUE_BACKOFF_SECONDS: '0.5',
  MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: '2',
  MONITOR_POLL_MIN_SECONDS: '0.5',
  MONITOR_POLL_MAX_SECONDS: '3',
  MONITOR_STUCK_AFTER_SECONDS: '75',
  MONITOR_COMPENSATION_FIRST_RETRY_SECONDS: '0.5',
  MONITOR_COMPENSATION_MAX_RETRY_SECONDS: '2',
  MONITOR_SWEEP_SCHEDULE: '*/5 * * * * *',
  MONITOR_SWEEP_GRACE_SECONDS: '10',
};

/** What the run needs from the system under test: an API address and a host it may kill. */
export interface ChaosTarget {
  baseUrl: string;
  killHost(): Promise<void>;
  startHost(): Promise<void>;
  /** When given, the run also sends unreadable copies of some orders' events (see `planOrders`). */
  serviceBusConnectionString?: string;
}

/** The consumers that get an unreadable copy of an order's event, by the order's place in the plan. */
export function corruptCopyTarget(index: number): ServiceName | undefined {
  return index % 20 === 7 ? 'inventory' : index % 20 === 17 ? 'notification' : undefined;
}

/** Cut short, so no consumer can read it; its application properties still name the order. */
const UNREADABLE_EVENT = Buffer.from('{"specversion":"1.0","type":"OrderCreated","data":{"orderId":');

/** What is done to the system at each of the run's fault moments. */
export type ChaosFault =
  | { kind: 'host' }
  | { kind: 'cosmos' | 'servicebus'; stallSeconds: number }
  /** Cosmos DB throttling: `percent` of the requests on documents answered 429 for `stallSeconds`. */
  | { kind: 'throttle'; stallSeconds: number; percent: number; retryAfterMs: number };

const STALLED = { cosmos: 'the Cosmos DB stand-in', servicebus: 'the Service Bus emulator' } as const;

/** "5 host kills (SIGKILL)", "2 stalls of the Service Bus emulator (SIGSTOP, 30 s each)". */
export function describeFaults(fault: ChaosFault | undefined, count: number): string {
  if (!fault || fault.kind === 'host') return `${count} host kill${count === 1 ? '' : 's'} (SIGKILL)`;
  if (fault.kind === 'throttle') {
    return `${count} stretch${count === 1 ? '' : 'es'} of Cosmos DB throttling (${fault.percent}% of document requests answered 429, retry after ${fault.retryAfterMs} ms, ${fault.stallSeconds} s each)`;
  }
  return `${count} stall${count === 1 ? '' : 's'} of ${STALLED[fault.kind]} (SIGSTOP, ${fault.stallSeconds} s each)`;
}

export interface ChaosOptions {
  orders: number;
  /** Fault moments: host kills, or stalls with `fault`. */
  kills: number;
  /** Absent: the host is killed. */
  fault?: ChaosFault;
  seed: number;
  /** Wall-clock limit for the whole run, from the first order to the last check. */
  timeoutMs: number;
  /** Clients placing orders at the same time. */
  concurrency: number;
  /**
   * The subscriptions' lock, when the emulator was started with one of its own
   * (`serviceBusLockDuration`) instead of the topology's: how long a killed host's messages wait.
   */
  lockSeconds?: number;
  progress?: Progress;
}

export interface PlannedOrder {
  idempotencyKey: string;
  body: { customerId: string; items: { sku: string; quantity: number }[]; simulate?: { billingFailures: number } };
}

export interface KillRecord {
  at: number;
  /** Orders accepted when the host was killed. */
  acceptedSoFar: number;
  /** Milliseconds until the new host printed its ready line. */
  restartMs: number;
  /** False when every order had been placed already: the kill hit processing only. */
  whilePlacing: boolean;
}

export interface ChaosResult {
  options: Omit<ChaosOptions, 'progress'>;
  plan: { hotSku: string; lowStockSku: string; withBillingFailures: number; withLowStockSku: number; withHotSku: number };
  kills: KillRecord[];
  /** POSTs answered with something else than 202 (including no answer while the host was down). */
  submitRetries: number;
  /** Seconds from the first order until every order was terminal (or the limit). */
  elapsedSeconds: number;
  verdict: ChaosVerdict;
  /** Unreadable copies of orders' events sent to inventory or notification (0 without a Service Bus connection). */
  corruptCopies: number;
  /** Dead-letters recorded on the orders' timelines, per service (each one a message Service Bus gave up on). */
  deadLetters: Record<string, number>;
  /** Whether the dead-letter queues were read at the end (needs a Service Bus connection). */
  deadLetterQueueChecked?: boolean;
  /** Orders that were not terminal at the end, as last read (for the report). */
  unfinished: ObservedOrder[];
  /** With `--fault throttle`: the requests the stand-in answered 429, and those it let through. */
  throttle?: { throttled: number; passed: number };
}

/**
 * How many orders are accepted before each of the kills that fall while placing: distinct, rising,
 * drawn between 10% and 90% of the orders. The last stays more than twice `concurrency` short of
 * all of them: at most `concurrency` orders are under way beside those accepted, and a few more may
 * start while the kill is being sent, so orders are still unsent when it lands and it surely meets
 * the placing.
 */
export function killPointsWhilePlacing(kills: number, orders: number, concurrency: number, random: () => number): number[] {
  const low = Math.max(1, Math.floor(orders * 0.1));
  const high = Math.max(low, Math.min(Math.floor(orders * 0.9), orders - 2 * concurrency - 1));
  const points = new Set<number>();
  for (let tries = 0; points.size < kills && tries < kills * 100; tries++) points.add(low + Math.floor(random() * (high - low + 1)));
  // Fewer distinct points than kills (a tiny run): the rest repeat the highest.
  const sorted = [...points].sort((a, b) => a - b);
  while (sorted.length < kills) sorted.push(sorted[sorted.length - 1] ?? low);
  return sorted;
}

export { seededRandom } from './seededRandom';

/**
 * The order mix: a quarter of the orders carry billing failures (1 to 6, so some are dead-lettered
 * and requeued more than once); one in twelve wants more of the low-stock SKU than exists and
 * about a tenth race for its last few units; over a third share one hot SKU, so reservations race
 * on one document. Besides, one order in ten gets an unreadable copy of its event sent to inventory
 * or notification (`corruptCopyTarget`, by place, so the random draws and the plans of earlier
 * seeds stay as they were): the copy must dead-letter and show on the order, which must still end
 * well.
 */
export function planOrders(count: number, random: () => number, catalog: ObservedStock[], runId: string): { orders: PlannedOrder[]; hotSku: string; lowStockSku: string } {
  const bySupply = [...catalog].sort((a, b) => a.available - b.available || a.sku.localeCompare(b.sku));
  const lowStockSku = bySupply[0]!.sku;
  const lowStockUnits = bySupply[0]!.available + bySupply[0]!.reserved;
  const plentiful = bySupply.filter((s) => s.sku !== lowStockSku).map((s) => s.sku).sort();
  const hotSku = plentiful[0]!;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const int = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));
  const orders: PlannedOrder[] = [];
  for (let i = 0; i < count; i++) {
    const items = new Map<string, number>();
    const roll = random();
    // Every twelfth order wants more of the low-stock SKU than ever existed: always out of stock.
    if (i % 12 === 5) items.set(lowStockSku, lowStockUnits + 1);
    else if (roll < 0.1) items.set(lowStockSku, int(1, 2));
    else if (roll < 0.5) items.set(hotSku, int(1, 2));
    for (let extra = int(roll < 0.5 ? 0 : 1, 2); extra > 0; extra--) items.set(pick(plentiful), int(1, 3));
    const billingFailures = random() < 0.25 ? int(1, 6) : 0;
    orders.push({
      idempotencyKey: `chaos-${runId}-${i}`,
      body: {
        customerId: `chaos-customer-${i % 37}`,
        items: [...items].map(([sku, quantity]) => ({ sku, quantity })),
        ...(billingFailures > 0 ? { simulate: { billingFailures } } : {}),
      },
    });
  }
  return { orders, hotSku, lowStockSku };
}

const isTerminal = (o: ObservedOrder): boolean => ['completed', 'cancelled', 'attention'].includes(o.state);

/** Retries a read while the host is down or restarting; undefined when the deadline passes. */
async function readThroughRestarts<T>(read: () => Promise<Answer<T>>, deadline: number): Promise<Answer<T> | undefined> {
  for (let delay = 100; Date.now() < deadline; delay = Math.min(delay * 2, 1000)) {
    const answer = await read();
    if (answer.status > 0 && answer.status < 500) return answer;
    await sleep(delay);
  }
  return undefined;
}

export async function runChaos(target: ChaosTarget, options: ChaosOptions): Promise<ChaosResult> {
  const progress = options.progress ?? new Progress();
  const random = seededRandom(options.seed);
  const agent = keepAliveAgent(Math.max(32, options.concurrency * 2));
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const get = <T>(path: string) => readThroughRestarts(() => call<T>(target.baseUrl, agent, { method: 'GET', path, timeoutMs: 10_000 }), deadline);
  // The run's own client meets the same outages as the app's, and the SDK can stay stuck after one
  // (see RenewingServiceBus): built afresh like the app's, or the placing waits on it for minutes.
  const connection = target.serviceBusConnectionString;
  const serviceBus = connection ? new RenewingServiceBus(() => new ServiceBusClient(connection), SERVICE_BUS_RENEW_AFTER_MS) : undefined;

  try {
    const stock = async (): Promise<ObservedStock[]> => {
      const answer = await get<ObservedStock[] | { items?: ObservedStock[] }>('/api/inventory');
      if (!answer || answer.status !== 200) throw new Error(`GET /api/inventory answered ${answer?.status}: ${JSON.stringify(answer?.body)}`);
      const list = Array.isArray(answer.body) ? answer.body : (answer.body.items ?? []);
      return list.map((s) => ({ sku: s.sku, available: s.available, reserved: s.reserved }));
    };
    const initialStock = await stock();
    const runId = `${options.seed}-${started.toString(36)}`;
    const plan = planOrders(options.orders, random, initialStock, runId);

    // Kill moments are drawn up front, so the seed alone decides them. The first half of the kills
    // falls at drawn points of the placing (after so many orders were accepted), not after drawn
    // times: on a fast machine every order may be placed before a timed kill comes.
    const whilePlacingKills = Math.ceil(options.kills / 2);
    const acceptedBeforeKill = killPointsWhilePlacing(whilePlacingKills, options.orders, options.concurrency, random);
    const gapsMs = Array.from({ length: options.kills }, () => 1_500 + Math.floor(random() * 4_500));
    const downMs = Array.from({ length: options.kills }, () => Math.floor(random() * 800));

    const accepted = new Map<number, string>();
    const rejected: string[] = [];
    const corruptCopies: CorruptCopy[] = [];
    const sendCorruptCopy = async (orderId: string, service: ServiceName): Promise<void> => {
      const messageId = `${orderId}:unreadable:${service}`;
      // Duplicate detection drops a second send of the same id, so a retry after an error is safe.
      for (let delay = 100; ; delay = Math.min(delay * 2, 1_000)) {
        try {
          await serviceBus!.ordersSender().sendMessages({
            messageId,
            body: UNREADABLE_EVENT,
            contentType: CLOUDEVENTS_CONTENT_TYPE,
            applicationProperties: { event_type: ORDER_CREATED, order_id: orderId, correlation_id: `chaos-unreadable-${orderId}`, [TARGET_PROPERTY]: service },
          });
          serviceBus!.worked();
          corruptCopies.push({ orderId, service, messageId });
          return;
        } catch (err) {
          serviceBus!.failed();
          if (Date.now() > deadline) throw err;
          await sleep(delay);
        }
      }
    };
    let submitRetries = 0;
    const kills: KillRecord[] = [];
    let phase = 'placing orders';
    const show = () =>
      progress.update(`chaos: ${phase}; accepted ${accepted.size}/${options.orders}, faults ${kills.length}/${options.kills}, retries ${submitRetries}, ${Math.round((Date.now() - started) / 1000)} s`);

    let placingOver = false;
    let submissionDone = (): void => undefined;
    const submitted = new Promise<void>((resolve) => (submissionDone = resolve));
    // Resolved by the submitter once that many orders are accepted (or all are placed).
    let acceptedWaiter: { count: number; resolve: () => void } | undefined;
    const acceptedReach = (count: number): Promise<void> =>
      accepted.size >= count || placingOver ? Promise.resolve() : new Promise((resolve) => (acceptedWaiter = { count, resolve }));
    const noteAccepted = (): void => {
      if (acceptedWaiter && accepted.size >= acceptedWaiter.count) {
        acceptedWaiter.resolve();
        acceptedWaiter = undefined;
      }
    };
    const killer = (async () => {
      for (let k = 0; k < options.kills; k++) {
        if (k < whilePlacingKills) {
          await Promise.race([acceptedReach(acceptedBeforeKill[k]!), submitted]);
        } else {
          // The later half waits until every order is placed, so they hit the processing alone:
          // requeues, compensations and the backlog, with no intake to mask it.
          await submitted;
          await sleep(gapsMs[k]!);
        }
        await target.killHost();
        const at = Date.now();
        await sleep(downMs[k]!);
        const restarting = Date.now();
        await target.startHost();
        kills.push({ at: at - started, acceptedSoFar: accepted.size, restartMs: Date.now() - restarting, whilePlacing: !placingOver });
        show();
      }
    })();

    let next = 0;
    const submitter = Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (next < plan.orders.length) {
          const index = next++;
          const order = plan.orders[index]!;
          for (let delay = 100; ; delay = Math.min(delay * 2, 1_000)) {
            if (Date.now() > deadline) {
              rejected.push(order.idempotencyKey);
              break;
            }
            const answer = await call<{ orderId?: string }>(target.baseUrl, agent, {
              method: 'POST',
              path: '/api/orders',
              body: order.body,
              headers: { 'Idempotency-Key': order.idempotencyKey },
              timeoutMs: 15_000,
            });
            if (answer.status === 202 && answer.body?.orderId) {
              accepted.set(index, answer.body.orderId);
              noteAccepted();
              const copyTo = corruptCopyTarget(index);
              if (serviceBus && copyTo) await sendCorruptCopy(answer.body.orderId, copyTo);
              break;
            }
            if (answer.status >= 400 && answer.status < 500) {
              // A client error for a valid order is not something a retry fixes.
              rejected.push(`${order.idempotencyKey} (${answer.status} ${JSON.stringify(answer.body)})`);
              break;
            }
            submitRetries++;
            await sleep(delay);
          }
          show();
        }
      }),
    );
    const ticker = setInterval(show, 1_000);
    try {
      await submitter;
      placingOver = true;
      submissionDone();
      phase = options.fault === undefined || options.fault.kind === 'host' ? 'killing the host' : 'injecting the remaining faults';
      await killer;
    } finally {
      clearInterval(ticker);
    }
    progress.done(`chaos: ${accepted.size} orders accepted, ${describeFaults(options.fault, kills.length)}, ${submitRetries} POSTs retried`);

    // Wait until every accepted order is terminal (or the limit), reading only the ones still open.
    const ids = [...accepted.values()];
    const latest = new Map<string, ObservedOrder>();
    const readOrders = async (which: string[]): Promise<void> => {
      await closedLoop(8, { limit: which.length }, async (n) => {
        const answer = await get<ObservedOrder>(`/api/orders/${which[n]}`);
        if (answer?.status === 200) latest.set(which[n]!, answer.body);
      });
    };
    let open = ids;
    while (open.length > 0 && Date.now() < deadline) {
      await readOrders(open);
      open = ids.filter((id) => !latest.has(id) || !isTerminal(latest.get(id)!));
      const states = countStates([...latest.values()]);
      progress.update(`chaos: waiting for ${open.length} open orders (${states}), ${Math.round((Date.now() - started) / 1000)} s`);
      if (open.length > 0) await sleep(1_000);
    }
    const elapsedSeconds = (Date.now() - started) / 1000;
    progress.done(`chaos: ${ids.length - open.length}/${ids.length} orders terminal after ${elapsedSeconds.toFixed(0)} s`);

    // Work can still land after an order turns terminal (a superseded delivery giving its stock
    // back); read everything until two readings a second apart agree, within the limit.
    let previous = '';
    let finalStock = await stock();
    for (let reading = 0; reading < 10; reading++) {
      await readOrders(ids);
      finalStock = await stock();
      const fingerprint = JSON.stringify([finalStock, ids.map((id) => latest.get(id))]);
      if (fingerprint === previous || Date.now() > deadline) break;
      previous = fingerprint;
      await sleep(1_000);
    }

    // Which orders still hold stock, per SKU (only the one-SKU answer lists them). A finished
    // order's hold is settled or given back by its own delivery, or, if the host died first, by
    // that message's redelivery, which comes once its lock runs out: wait for that (bounded).
    const withHolds = async (): Promise<ObservedStock[]> => {
      const lines = await stock();
      for (const line of lines) {
        const answer = await get<{ holds?: ObservedStock['holds'] }>(`/api/inventory/${encodeURIComponent(line.sku)}`);
        if (answer?.status !== 200) throw new Error(`GET /api/inventory/${line.sku} answered ${answer?.status}: ${JSON.stringify(answer?.body)}`);
        line.holds = answer.body.holds ?? [];
      }
      return lines;
    };
    const heldByFinished = (lines: ObservedStock[]): number => lines.reduce((n, line) => n + holdsOfFinishedOrders(line, latest).length, 0);
    const lastKill = started + (kills.at(-1)?.at ?? 0);
    const redeliveredBy = Math.min(deadline, lastKill + (options.lockSeconds === undefined ? LONGEST_LOCK_MS : options.lockSeconds * 1000) + 15_000);
    // Looks again every 2 s while `left` counts something still to come, until redeliveries are due.
    const waitFor = async (left: () => number, what: string, reread: () => Promise<void>): Promise<void> => {
      for (let n = left(); n > 0 && Date.now() < redeliveredBy; n = left()) {
        progress.update(`chaos: ${n} ${what} (up to ${Math.ceil((redeliveredBy - Date.now()) / 1000)} s)`);
        await sleep(2_000);
        await reread();
      }
    };
    finalStock = await withHolds();
    await waitFor(() => heldByFinished(finalStock), 'holds of finished orders, waiting for redeliveries', async () => {
      finalStock = await withHolds();
    });
    // An unreadable copy reaches its order's timeline once it has failed its deliveries and the
    // dead-letter trigger has taken it; a kill on the way costs a lock's expiry: wait (bounded).
    const unsurfaced = () => corruptCopies.filter((c) => !corruptCopySurfaced(c, latest.get(c.orderId)));
    await waitFor(() => unsurfaced().length, 'unreadable copies not on their orders yet, waiting for their dead-letters', () =>
      readOrders([...new Set(unsurfaced().map((c) => c.orderId))]),
    );
    const orders = ids.map((id) => latest.get(id)).filter((o): o is ObservedOrder => o !== undefined);
    // The dead-letter sweep takes a finished order's messages out on the run after it reads the
    // order finished: every run (5 s) for a message recorded in the last two minutes, every 30 s
    // (`recheckMs`) for an older one. So a message may stay that long, and a few runs more.
    let deadLetterQueues: QueuedDeadLetter[] | undefined;
    if (serviceBus) {
      const sweptBy = Date.now() + DEFAULT_DEAD_LETTER_SWEEP.recheckMs + 15_000;
      for (;;) {
        deadLetterQueues = await peekDeadLetterQueues(serviceBus.client());
        const left = messagesOfFinishedOrders(deadLetterQueues, (id) => latest.get(id)?.state, corruptCopies).length;
        if (left === 0 || Date.now() > sweptBy) break;
        progress.update(`chaos: ${left} messages of finished orders still in dead-letter queues`);
        await sleep(2_000);
      }
    }
    const unread = ids.filter((id) => !latest.has(id));
    const verdict = checkChaosInvariants({ initialStock, finalStock, orders, neverAccepted: rejected, corruptCopies, ...(deadLetterQueues ? { deadLetterQueues } : {}) });
    for (const id of unread) verdict.violations.push({ kind: 'not-terminal', subject: id, detail: 'accepted, but GET never answered 200' });
    return {
      options: {
        orders: options.orders,
        kills: options.kills,
        ...(options.fault ? { fault: options.fault } : {}),
        seed: options.seed,
        timeoutMs: options.timeoutMs,
        concurrency: options.concurrency,
        ...(options.lockSeconds === undefined ? {} : { lockSeconds: options.lockSeconds }),
      },
      plan: {
        hotSku: plan.hotSku,
        lowStockSku: plan.lowStockSku,
        withBillingFailures: plan.orders.filter((o) => o.body.simulate).length,
        withLowStockSku: plan.orders.filter((o) => o.body.items.some((i) => i.sku === plan.lowStockSku)).length,
        withHotSku: plan.orders.filter((o) => o.body.items.some((i) => i.sku === plan.hotSku)).length,
      },
      kills,
      submitRetries,
      elapsedSeconds,
      verdict,
      corruptCopies: corruptCopies.length,
      deadLetters: deadLettersByService(orders),
      deadLetterQueueChecked: deadLetterQueues !== undefined,
      unfinished: orders.filter((o) => !isTerminal(o)),
    };
  } finally {
    agent.destroy();
    await serviceBus?.close();
  }
}

/** Everything in the consumers' dead-letter queues, peeked from the head (nothing is locked). */
async function peekDeadLetterQueues(serviceBus: ServiceBusClient): Promise<QueuedDeadLetter[]> {
  const out: QueuedDeadLetter[] = [];
  for (const service of SERVICES) {
    const receiver = serviceBus.createReceiver(ORDERS_TOPIC, SUBSCRIPTIONS[service], { subQueueType: 'deadLetter' });
    try {
      for (let from = Long.ZERO; ; ) {
        const page = await receiver.peekMessages(100, { fromSequenceNumber: from });
        if (page.length === 0) break;
        for (const m of page) {
          const orderId = m.applicationProperties?.['order_id'];
          out.push({ service, messageId: String(m.messageId), ...(typeof orderId === 'string' ? { orderId } : {}) });
        }
        from = page.at(-1)!.sequenceNumber!.add(1);
      }
    } finally {
      await receiver.close();
    }
  }
  return out;
}

export function deadLettersByService(orders: ObservedOrder[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(SERVICES.map((s) => [s, 0]));
  for (const o of orders) {
    for (const e of o.timeline ?? []) if (e.kind === 'deadlettered' && e.service) counts[e.service] = (counts[e.service] ?? 0) + 1;
  }
  return counts;
}

function countStates(orders: ObservedOrder[]): string {
  const counts = new Map<string, number>();
  for (const o of orders) counts.set(o.state, (counts.get(o.state) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${s} ${n}`).join(', ') || 'none read yet';
}

/** The result as the table the run prints. */
export function formatChaosReport(result: ChaosResult): string {
  const { verdict } = result;
  const lines: string[] = [];
  const row = (label: string, value: string | number, status = '') => lines.push(`  ${label.padEnd(34)} ${String(value).padStart(10)}  ${status}`);
  const ok = (pass: boolean) => (pass ? 'PASS' : 'FAIL');
  const byKind = (kind: string) => verdict.violations.filter((v) => v.kind === kind).length;
  const stalls = result.options.fault !== undefined && result.options.fault.kind !== 'host';
  const throttling = result.options.fault?.kind === 'throttle';
  const lock = result.options.lockSeconds === undefined ? '' : `, message locks of ${result.options.lockSeconds} s`;
  lines.push(`fault-injection run: seed ${result.options.seed}, ${result.options.orders} orders, ${describeFaults(result.options.fault, result.kills.length)}${lock}, ${result.elapsedSeconds.toFixed(0)} s`);
  lines.push(
    `  mix: ${result.plan.withBillingFailures} with billing failures, ${result.plan.withLowStockSku} want low-stock ${result.plan.lowStockSku}, ${result.plan.withHotSku} on hot ${result.plan.hotSku}`,
  );
  lines.push(
    `  ${throttling ? 'throttling' : stalls ? 'stalls' : 'kills'} at ${result.kills.map((k) => `${(k.at / 1000).toFixed(1)} s (${k.whilePlacing ? `${k.acceptedSoFar} accepted` : 'all placed'}, ${throttling ? 'off after' : stalls ? 'answering again after' : 'back in'} ${(k.restartMs / 1000).toFixed(1)} s)`).join(', ') || 'none'}`,
  );
  lines.push('');
  lines.push(`  ${'check'.padEnd(34)} ${'value'.padStart(10)}  result`);
  row('orders accepted (202)', verdict.counts['accepted'] ?? 0, ok(byKind('not-accepted') === 0));
  row('  completed', verdict.counts['completed'] ?? 0);
  row('  cancelled', verdict.counts['cancelled'] ?? 0);
  row('    with no business failure', byKind('cancelled-without-cause'), ok(byKind('cancelled-without-cause') === 0));
  row('  attention', verdict.counts['attention'] ?? 0, ok(byKind('attention') === 0));
  row('POST retries with the same key', result.submitRetries);
  // Older results have no count.
  if (result.deadLetters) row('dead-letters inv / bill / notif', SERVICES.map((s) => result.deadLetters[s] ?? 0).join(' / '));
  if (result.corruptCopies !== undefined) row('unreadable copies on their orders', `${result.corruptCopies - byKind('dead-letter')}/${result.corruptCopies}`, ok(byKind('dead-letter') === 0));
  // Older results have no such check.
  if (result.deadLetterQueueChecked) row('dead-letter queues kept, cleared', byKind('dead-letter-queue'), ok(byKind('dead-letter-queue') === 0));
  row(throttling ? 'throttled stretches' : stalls ? 'stalls' : 'host kills', result.kills.length, ok(result.kills.length >= result.options.kills));
  if (result.throttle) row('Cosmos requests answered 429', `${result.throttle.throttled}/${result.throttle.throttled + result.throttle.passed}`);
  row('every order terminal (not stuck)', byKind('not-terminal'), ok(byKind('not-terminal') === 0));
  row('charges - refunds = total / 0', byKind('money'), ok(byKind('money') === 0));
  row('confirmations (1 / at most 1)', byKind('confirmation'), ok(byKind('confirmation') === 0));
  row('cancellation notices (0 / 1)', byKind('cancellation-notice'), ok(byKind('cancellation-notice') === 0));
  row('completed with a service not done', byKind('services'), ok(byKind('services') === 0));
  row('stock conserved per SKU', byKind('stock'), ok(byKind('stock') === 0));
  row('stock held by a finished order', byKind('hold'), ok(byKind('hold') === 0));
  lines.push('');
  lines.push(`  ${'SKU'.padEnd(18)} ${'initial'.padStart(8)} ${'available'.padStart(9)} ${'reserved'.padStart(8)} ${'in completed'.padStart(12)}  result`);
  for (const s of verdict.stock) {
    lines.push(`  ${s.sku.padEnd(18)} ${String(s.initial).padStart(8)} ${String(s.available).padStart(9)} ${String(s.reserved).padStart(8)} ${String(s.completedQuantity).padStart(12)}  ${ok(s.ok)}`);
  }
  lines.push('');
  if (verdict.violations.length === 0) {
    lines.push('  0 violations');
  } else {
    lines.push(`  ${verdict.violations.length} violation(s):`);
    for (const v of verdict.violations.slice(0, 200)) lines.push(`    ${v.kind.padEnd(20)} ${v.subject}  ${v.detail}`);
    if (verdict.violations.length > 200) lines.push(`    ... ${verdict.violations.length - 200} more in the JSON result`);
  }
  return lines.join('\n');
}

function parseFlags(argv: string[]): ChaosOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (name === 'echo') flags.set(name, 'true');
    else flags.set(name, inline ?? argv[++i] ?? '');
  }
  const known = ['orders', 'kills', 'seed', 'timeout', 'concurrency', 'fault', 'stall-seconds', 'throttle-percent', 'retry-after-ms', 'lock-seconds', 'echo'];
  for (const name of flags.keys()) if (!known.includes(name)) throw new Error(`unknown flag --${name} (known: ${known.map((k) => `--${k}`).join(' ')})`);
  const number = (name: string, fallback: number, min: number): number => {
    const raw = flags.get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number >= ${min}, got "${raw}"`);
    return n;
  };
  const faultKind = flags.get('fault') ?? 'host';
  if (faultKind !== 'host' && faultKind !== 'cosmos' && faultKind !== 'servicebus' && faultKind !== 'throttle') {
    throw new Error(`--fault must be host, cosmos, servicebus or throttle, got "${faultKind}"`);
  }
  if (faultKind === 'host' && flags.has('stall-seconds')) throw new Error('--stall-seconds goes with --fault cosmos, servicebus or throttle');
  for (const name of ['throttle-percent', 'retry-after-ms']) if (faultKind !== 'throttle' && flags.has(name)) throw new Error(`--${name} goes with --fault throttle`);
  const percent = number('throttle-percent', 40, 1);
  if (percent > 100) throw new Error(`--throttle-percent must be at most 100, got ${percent}`);
  const fault: ChaosFault =
    faultKind === 'host'
      ? { kind: 'host' }
      : faultKind === 'throttle'
        ? { kind: 'throttle', stallSeconds: number('stall-seconds', 30, 1), percent, retryAfterMs: number('retry-after-ms', 100, 0) }
        : { kind: faultKind, stallSeconds: number('stall-seconds', 30, 1) };
  return {
    orders: number('orders', 500, 1),
    kills: number('kills', 5, 0),
    fault,
    seed: number('seed', Math.floor(Math.random() * 2 ** 31), 0),
    timeoutMs: number('timeout', 600, 1) * 1000,
    concurrency: number('concurrency', 16, 1),
    ...(flags.has('lock-seconds') ? { lockSeconds: lockSeconds(number('lock-seconds', 60, 1)) } : {}),
  };
}

/** A lock Service Bus allows: 1 s to 5 min. */
function lockSeconds(n: number): number {
  if (n > 300) throw new Error(`--lock-seconds must be at most 300 (Service Bus allows up to 5 minutes), got ${n}`);
  return n;
}

/** The stack as a chaos target whose faults stall one emulator (SIGSTOP, then SIGCONT) while the host runs on. */
function stallingTarget(stack: LocalStack, fault: { kind: 'cosmos' | 'servicebus'; stallSeconds: number }): ChaosTarget & { release(): void } {
  const pid = fault.kind === 'cosmos' ? stack.cosmosEmulator.pid : stack.serviceBusEmulator.pid;
  let stopped = false;
  const release = (): void => {
    if (stopped) process.kill(pid, 'SIGCONT');
    stopped = false;
  };
  return {
    baseUrl: stack.baseUrl,
    serviceBusConnectionString: stack.serviceBusConnectionString,
    killHost: async () => {
      process.kill(pid, 'SIGSTOP');
      stopped = true;
    },
    startHost: async () => {
      await sleep(fault.stallSeconds * 1000);
      release();
    },
    release,
  };
}

/** The stack as a chaos target whose faults throttle the Cosmos DB stand-in for a while; nothing is stopped. */
function throttlingTarget(stack: LocalStack, fault: Extract<ChaosFault, { kind: 'throttle' }>): ChaosTarget & { release(): void } {
  const set = (share: number) => standInThrottle(stack.cosmos, { share, retryAfterMs: fault.retryAfterMs });
  return {
    baseUrl: stack.baseUrl,
    serviceBusConnectionString: stack.serviceBusConnectionString,
    killHost: async () => {
      await set(fault.percent / 100);
    },
    startHost: async () => {
      await sleep(fault.stallSeconds * 1000);
      await set(0);
    },
    release: () => void set(0).catch(() => undefined),
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseFlags(argv);
  const echoHost = argv.includes('--echo');
  const progress = new Progress();
  progress.done(`chaos: starting the emulators and the Functions host (seed ${options.seed}; ${describeFaults(options.fault, options.kills)})`);
  const stack = await startLocalStack({
    hostEnv: FAST_MONITOR_SETTINGS,
    echoHost,
    ...(options.lockSeconds === undefined ? {} : { serviceBusLockDuration: `PT${options.lockSeconds}S` }),
  });
  const target =
    options.fault?.kind === 'cosmos' || options.fault?.kind === 'servicebus'
      ? stallingTarget(stack, options.fault)
      : options.fault?.kind === 'throttle'
        ? throttlingTarget(stack, options.fault)
        : { ...stack, release: () => undefined };
  let result: ChaosResult;
  try {
    result = await runChaos(target, { ...options, progress });
    if (options.fault?.kind === 'throttle') {
      const { throttled, passed } = await standInThrottle(stack.cosmos);
      result.throttle = { throttled, passed };
    }
  } catch (err) {
    target.release();
    await stack.stop();
    throw err;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `chaos-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  if (result.verdict.violations.length > 0) {
    // Every host's output, killed ones too: the violating order ids can be followed through it.
    writeFileSync(join(resultsDir, `chaos-${stamp}-host.log`), stack.hostOutputs().map((o, i) => `===== host run ${i + 1}\n${o}`).join('\n'));
  }
  await stack.stop();
  process.stdout.write(`${formatChaosReport(result)}\n`);
  process.stdout.write(`result: bench/results/chaos-${stamp}.json\n`);
  if (result.verdict.violations.length > 0 || result.kills.length < options.kills) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`\nchaos run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
