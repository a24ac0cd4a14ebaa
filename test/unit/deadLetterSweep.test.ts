import { buildOrderCreatedEvent } from '../../src/domain/orderCreatedEvent';
import type { OrderState } from '../../src/domain/order';
import { newOrder } from '../../src/domain/orderState';
import { createLogger } from '../../src/log';
import { DEFAULT_DEAD_LETTER_SWEEP, DeadLetterSweep } from '../../src/support/deadLetterSweep';
import { MemoryDeadLetterQueue } from './support/memoryDeadLetterQueue';
import { memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

const log = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });

let deps: MemoryDependencies;
let monitor: RecordingMonitor;
let queue: MemoryDeadLetterQueue;
let n = 0;

beforeEach(() => {
  deps = memoryDependencies();
  monitor = new RecordingMonitor();
  queue = new MemoryDeadLetterQueue();
});

const env = () => ({ deps, monitor, log });

function storedOrder(state: OrderState) {
  const id = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
  const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `corr-${id}`, customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 1, unitPrice: 24.5 }], total: 24.5, now: deps.now() });
  deps.orders.docs.set(id, { ...order, state, status: { ...order.status, billing: 'processing' } });
  return order;
}

const billingDeadLetter = (order: ReturnType<typeof newOrder>) => ({
  body: JSON.stringify(buildOrderCreatedEvent(order)),
  messageId: order.eventId,
  deliveryCount: 3,
  deadLetterReason: 'MaxDeliveryCountExceeded',
});
const poison = (id: string) => ({ body: '{"cut":', messageId: id, deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' });
const setState = (id: string, state: OrderState) => (deps.orders.docs.get(id)!.state = state);

describe('DeadLetterSweep', () => {
  it('surfaces each message once, keeps poison, and takes out an order\'s message only once it is completed or cancelled', async () => {
    const sweep = new DeadLetterSweep();
    const open = storedOrder('processing');
    const other = storedOrder('processing');
    queue.add(poison('p-1'), 10n);
    queue.add(billingDeadLetter(open), 11n);
    queue.add(billingDeadLetter(other), 12n);

    expect(await sweep.sweep('billing', queue, env())).toEqual({ service: 'billing', peeked: 3, recorded: 3, removed: 0 });
    expect(deps.orders.docs.get(open.id)!.status.billing).toBe('deadlettered');
    expect(deps.deadLetters.parked.size).toBe(1);
    expect(monitor.changes).toHaveLength(2);

    // Nothing new: nothing recorded again, nothing taken out while the orders are open.
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ recorded: 0, removed: 0 });
    expect(monitor.changes).toHaveLength(2);

    // `attention` keeps its message (a person has to act); completed and cancelled let it go.
    setState(open.id, 'attention');
    setState(other.id, 'cancelled');
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ recorded: 0, removed: 1 });
    expect(queue.sequences()).toEqual([10n, 11n]);
    setState(open.id, 'completed');
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ removed: 1 });
    // Poison stays for as long as nobody purges it.
    expect(queue.sequences()).toEqual([10n]);
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ peeked: 1, recorded: 0, removed: 0 });
  });

  it('reads a long queue a page per run and starts over at the end, so a message dead-lettered behind it is found', async () => {
    const sweep = new DeadLetterSweep({ ...DEFAULT_DEAD_LETTER_SWEEP, pageSize: 2 });
    for (const s of [1n, 2n, 3n, 4n, 5n]) queue.add(poison(`p-${s}`), s);
    const recorded: number[] = [];
    for (let run = 0; run < 3; run++) recorded.push((await sweep.sweep('inventory', queue, env())).recorded);
    expect(recorded).toEqual([2, 2, 1]);
    expect(queue.scans()).toEqual([0n, 3n, 5n]);
    // A dead-lettered message may keep the sequence number it had in the subscription.
    queue.add(poison('late'), 0n);
    expect(await sweep.sweep('inventory', queue, env())).toMatchObject({ peeked: 2, recorded: 1 });
    expect(deps.deadLetters.parked.size).toBe(6);
  });

  it('a message that cannot be recorded holds up nothing else, is logged once, and is tried again each pass', async () => {
    const sweep = new DeadLetterSweep();
    const cancelled = storedOrder('cancelled');
    const open = storedOrder('processing');
    queue.add(billingDeadLetter(cancelled), 1n);
    queue.add(poison('too-big'), 2n);
    queue.add(billingDeadLetter(open), 3n);
    // A body Cosmos DB refuses every time, say.
    let refuse = true;
    const park = deps.deadLetters.park.bind(deps.deadLetters);
    deps.deadLetters.park = async (m) => {
      if (refuse && m.messageId === 'too-big') throw new Error('Request size is too large');
      return park(m);
    };
    const errors: string[] = [];
    const watched = { deps, monitor, log: createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(String(line)) }) };
    const runs = [];
    for (let run = 0; run < 3; run++) runs.push(await sweep.sweep('billing', queue, watched));
    expect(runs.map((r) => [r.recorded, r.removed, r.unrecorded])).toEqual([
      [2, 1, 1],
      [0, 0, 1],
      [0, 0, 1],
    ]);
    // Before, the whole page stopped at the message: the open order was never surfaced and the
    // cancelled order's message never taken out.
    expect(deps.orders.docs.get(open.id)!.status.billing).toBe('deadlettered');
    expect(queue.sequences()).toEqual([2n, 3n]);
    expect(errors).toHaveLength(1);
    expect(JSON.parse(errors[0]!)).toMatchObject({ event: 'billing-deadletter-sweep-failed', messageId: 'too-big', failures: 1, error: 'Request size is too large' });
    refuse = false;
    expect(await sweep.sweep('billing', queue, watched)).toMatchObject({ recorded: 1 });
    expect(deps.deadLetters.parked.size).toBe(1);
  });

  it('an order too busy to record a dead-letter onto is a warning, tried again each pass, and alerted on only if it stays so for ten passes', async () => {
    const sweep = new DeadLetterSweep();
    const busy = storedOrder('processing');
    queue.add(billingDeadLetter(busy), 1n);
    // Every write onto the order as read finds it changed: its deliveries keep writing it.
    const transition = deps.orders.transitionStatus.bind(deps.orders);
    let writesRacing = true;
    deps.orders.transitionStatus = async (id, change) => (writesRacing && change.whenTimelineLength !== undefined ? undefined : transition(id, change));
    const warnings: string[] = [];
    const errors: string[] = [];
    const watched = {
      deps,
      monitor,
      log: createLogger({ info: () => undefined, warn: (line: unknown) => warnings.push(String(line)), error: (line: unknown) => errors.push(String(line)) }),
    };
    for (let pass = 1; pass < 10; pass++) expect(await sweep.sweep('billing', queue, watched)).toMatchObject({ recorded: 0, unrecorded: 1 });
    expect(errors).toEqual([]);
    expect(warnings.map((w) => JSON.parse(w).event)).toEqual(['billing-deadletter-order-busy']);
    await sweep.sweep('billing', queue, watched);
    expect(errors.map((e) => JSON.parse(e))).toEqual([expect.objectContaining({ event: 'billing-deadletter-sweep-failed', failures: 10, errorName: 'OrderKeptChangingError' })]);
    writesRacing = false;
    expect(await sweep.sweep('billing', queue, watched)).toMatchObject({ recorded: 1 });
    expect(deps.orders.docs.get(busy.id)!.status.billing).toBe('deadlettered');
  });

  it("an order that cannot be read holds up nothing else, and is read again next run", async () => {
    let now = 0;
    const sweep = new DeadLetterSweep(DEFAULT_DEAD_LETTER_SWEEP, () => now);
    const flaky = storedOrder('processing');
    const done = storedOrder('processing');
    queue.add(billingDeadLetter(flaky), 1n);
    queue.add(billingDeadLetter(done), 2n);
    await sweep.sweep('billing', queue, env());
    // Both past their first two minutes: read every 30 s from now on.
    now = 180_000;
    setState(done.id, 'completed');
    setState(flaky.id, 'cancelled');
    let failing = true;
    const get = deps.orders.get.bind(deps.orders);
    deps.orders.get = async (id) => {
      if (failing && id === flaky.id) throw new Error('429 too many requests');
      return get(id);
    };
    // Before, the failed read dropped the whole run's removals, every run.
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ removed: 1, unrecorded: 1 });
    expect(queue.sequences()).toEqual([1n]);
    failing = false;
    now += 5_000;
    // Not marked as read when the read failed: read again at once.
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ removed: 1 });
    expect(queue.sequences()).toEqual([]);
  });

  it('reads bodies until past the last new message, when one landed between them meanwhile', async () => {
    const sweep = new DeadLetterSweep();
    const [a, b, c, late] = [storedOrder('processing'), storedOrder('processing'), storedOrder('processing'), storedOrder('processing')];
    queue.add(billingDeadLetter(a), 10n);
    queue.add(billingDeadLetter(b), 20n);
    queue.add(billingDeadLetter(c), 30n);
    const peek = queue.peek.bind(queue);
    queue.peek = async (from, max, options) => {
      if (options.bodies && !queue.messages.some((m) => m.sequence === 15n)) queue.add(billingDeadLetter(late), 15n);
      return peek(from, max, options);
    };
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ peeked: 3, recorded: 3 });
    expect([a, b, c].map((o) => deps.orders.docs.get(o.id)!.status.billing)).toEqual(['deadlettered', 'deadlettered', 'deadlettered']);
    // The one that landed meanwhile is recorded on the next pass.
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ recorded: 1 });
  });

  it('logs a message that never goes through on its 1st and 10th failure, then every 100th: within every alert window', async () => {
    const sweep = new DeadLetterSweep();
    queue.add(poison('p-1'), 1n);
    deps.deadLetters.park = async () => {
      throw new Error('Request size is too large');
    };
    const errors: string[] = [];
    const watched = { deps, monitor, log: createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(String(line)) }) };
    const loggedAt: number[] = [];
    for (let run = 1; run <= 400; run++) {
      const before = errors.length;
      await sweep.sweep('billing', queue, watched);
      if (errors.length > before) loggedAt.push(run);
    }
    // At 5 s a run, 100 runs are 8 minutes: the 15-minute alert window always holds a line.
    expect(loggedAt).toEqual([1, 10, 100, 200, 300, 400]);
  });

  it('a queue that cannot be read is reported and logged, and read again next run', async () => {
    const sweep = new DeadLetterSweep();
    queue.add(poison('p-1'), 1n);
    const peek = queue.peek.bind(queue);
    queue.peek = async () => {
      throw new Error('namespace unreachable');
    };
    const errors: string[] = [];
    const watched = { deps, monitor, log: createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(String(line)) }) };
    expect(await sweep.sweep('inventory', queue, watched)).toMatchObject({ recorded: 0, failed: 'namespace unreachable' });
    expect(errors.map((e) => JSON.parse(e).event)).toEqual(['inventory-deadletter-sweep-failed']);
    queue.peek = peek;
    expect(await sweep.sweep('inventory', queue, watched)).toMatchObject({ recorded: 1 });
  });

  it('reads bodies once, and a kept order every run while fresh, then every recheckMs', async () => {
    let now = 0;
    const sweep = new DeadLetterSweep({ ...DEFAULT_DEAD_LETTER_SWEEP, freshMs: 120_000, recheckMs: 30_000 }, () => now);
    const order = storedOrder('attention');
    queue.add(billingDeadLetter(order), 1n);
    queue.add(poison('p-2'), 2n);
    let reads = 0;
    const get = deps.orders.get.bind(deps.orders);
    deps.orders.get = async (id) => {
      reads++;
      return get(id);
    };
    const readsAt: Record<number, number> = {};
    for (const t of [0, 5_000, 125_000, 130_000, 155_000]) {
      now = t;
      reads = 0;
      await sweep.sweep('billing', queue, env());
      readsAt[t] = reads;
    }
    // The first run reads the order to record its message, and again to see whether it finished.
    expect(readsAt).toEqual({ 0: 2, 5_000: 1, 125_000: 1, 130_000: 0, 155_000: 1 });
    expect(queue.peeks.filter((p) => p.bodies)).toEqual([{ from: 1n, max: 2, bodies: true }]);
    expect(queue.scans()).toHaveLength(5);
  });

  it('a process that starts again records again without doubling anything', async () => {
    const order = storedOrder('processing');
    queue.add(billingDeadLetter(order), 1n);
    queue.add(poison('p-2'), 2n);
    await new DeadLetterSweep().sweep('billing', queue, env());
    const errors: string[] = [];
    const watched = createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(String(line)) });
    expect(await new DeadLetterSweep().sweep('billing', queue, { deps, monitor, log: watched })).toMatchObject({ recorded: 2 });
    expect(deps.orders.docs.get(order.id)!.timeline.filter((e) => e.kind === 'deadlettered')).toHaveLength(1);
    expect(deps.deadLetters.parked.size).toBe(1);
    expect(monitor.changes).toHaveLength(1);
    // The poison was logged when it was first kept, not again.
    expect(errors).toEqual([]);
  });

  it('alerts on a message that names no order also when the write that kept it landed and its answer was lost', async () => {
    const sweep = new DeadLetterSweep();
    queue.add(poison('p-1'), 1n);
    // Cosmos DB kept it, and the answer never came back (the SDK's request timeout).
    let lose = true;
    const park = deps.deadLetters.park.bind(deps.deadLetters);
    deps.deadLetters.park = async (m) => {
      const kept = await park(m);
      if (!lose) return kept;
      lose = false;
      throw Object.assign(new Error('request timed out'), { code: 'TimeoutError' });
    };
    const errors: { event: string; messageId?: string }[] = [];
    const watched = { deps, monitor, log: createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(JSON.parse(String(line))) }) };
    expect(await sweep.sweep('billing', queue, watched)).toMatchObject({ recorded: 0, unrecorded: 1 });
    // The next pass finds it kept already: before, nothing ever alerted on it.
    expect(await sweep.sweep('billing', queue, watched)).toMatchObject({ recorded: 1 });
    expect(await new DeadLetterSweep().sweep('billing', queue, watched)).toMatchObject({ recorded: 1 });
    expect(deps.deadLetters.parked.size).toBe(1);
    expect(errors.filter((e) => e.event === 'billing-deadletter-without-order').map((e) => e.messageId)).toEqual(['p-1']);
  });

  it('alerts once on a message that names no order when the write that would keep it was refused', async () => {
    const sweep = new DeadLetterSweep();
    queue.add(poison('p-1'), 1n);
    let refuse = true;
    const park = deps.deadLetters.park.bind(deps.deadLetters);
    deps.deadLetters.park = async (m) => {
      if (!refuse) return park(m);
      refuse = false;
      throw Object.assign(new Error('Request rate is large'), { code: 429 });
    };
    const errors: { event: string; messageId?: string }[] = [];
    const watched = { deps, monitor, log: createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(JSON.parse(String(line))) }) };
    await sweep.sweep('billing', queue, watched);
    await sweep.sweep('billing', queue, watched);
    expect(errors.filter((e) => e.event === 'billing-deadletter-without-order').map((e) => e.messageId)).toEqual(['p-1']);
  });

  it('gets past kept messages enqueued long ago by deferring them: they stay in the queue, out of the way', async () => {
    const hour = 3_600_000;
    let now = 10 * hour;
    const sweep = new DeadLetterSweep({ ...DEFAULT_DEAD_LETTER_SWEEP, maxLocks: 2, deferAfterMs: hour }, () => now);
    for (const s of [1n, 2n]) {
      queue.add(poison(`p-${s}`), s);
      queue.enqueuedAt.set(s, 0);
    }
    queue.add(poison('p-young'), 3n);
    queue.enqueuedAt.set(3n, now);
    const order = storedOrder('cancelled');
    queue.add(billingDeadLetter(order), 4n);
    queue.add(billingDeadLetter(storedOrder('cancelled')), 5n);
    // Within its two locks the first removal meets the two old ones and sets them aside.
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ recorded: 5, removed: 0 });
    expect([...queue.deferredSequences]).toEqual([1n, 2n]);
    // The next gets past them: the young one is put back, the order's message taken out; then the next.
    now += 5_000;
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ removed: 1 });
    now += 5_000;
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ removed: 1 });
    expect(queue.sequences()).toEqual([1n, 2n, 3n]);
    // Set aside, still there for anyone who peeks.
    expect((await queue.peek(0n, 10, { bodies: false })).map((m) => [m.sequence, m.deferred ?? false])).toEqual([
      [1n, true],
      [2n, true],
      [3n, false],
    ]);
  });

  it('takes out a deferred message of an order that finished later, by its sequence number', async () => {
    let now = 10 * 3_600_000;
    const sweep = new DeadLetterSweep({ ...DEFAULT_DEAD_LETTER_SWEEP, maxLocks: 1 }, () => now);
    const order = storedOrder('attention');
    queue.add(billingDeadLetter(order), 1n);
    queue.enqueuedAt.set(1n, 0);
    queue.add(billingDeadLetter(storedOrder('completed')), 2n);
    // The attention order's message is old and in the way of the completed one's: deferred.
    await sweep.sweep('billing', queue, env());
    expect([...queue.deferredSequences]).toEqual([1n]);
    await sweep.sweep('billing', queue, env());
    expect(queue.sequences()).toEqual([1n]);
    // A person compensates it; the deferred message goes once its order is cancelled.
    setState(order.id, 'cancelled');
    now += 60_000;
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ removed: 1 });
    expect(queue.sequences()).toEqual([]);
  });
});
