import { buildOrderCreatedEvent } from '../../src/domain/orderCreatedEvent';
import type { OrderState } from '../../src/domain/order';
import { newOrder } from '../../src/domain/orderState';
import { createLogger } from '../../src/log';
import { DeadLetterSweep, type DeadLetterQueue, type PeekedDeadLetter } from '../../src/support/deadLetterSweep';
import { memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

const log = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });

/** A dead-letter queue in memory: messages in sequence order, and what was asked of it. */
class MemoryDeadLetterQueue implements DeadLetterQueue {
  readonly messages: PeekedDeadLetter[] = [];
  peeks: { from: bigint; max: number }[] = [];

  add(message: Omit<PeekedDeadLetter, 'sequence'>, sequence: bigint): void {
    this.messages.push({ ...message, sequence });
    this.messages.sort((a, b) => (a.sequence < b.sequence ? -1 : 1));
  }

  async peek(from: bigint, max: number): Promise<PeekedDeadLetter[]> {
    this.peeks.push({ from, max });
    return this.messages.filter((m) => m.sequence >= from).slice(0, max);
  }

  async remove(sequences: bigint[], maxLocks: number): Promise<bigint[]> {
    // Locks from the head, as a receive does.
    const reachable = this.messages.slice(0, maxLocks).filter((m) => sequences.includes(m.sequence));
    for (const m of reachable) this.messages.splice(this.messages.indexOf(m), 1);
    return reachable.map((m) => m.sequence);
  }

  sequences(): bigint[] {
    return this.messages.map((m) => m.sequence);
  }
}

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
    const sweep = new DeadLetterSweep({ pageSize: 2, maxLocks: 100 });
    for (const s of [1n, 2n, 3n, 4n, 5n]) queue.add(poison(`p-${s}`), s);
    const recorded: number[] = [];
    for (let run = 0; run < 3; run++) recorded.push((await sweep.sweep('inventory', queue, env())).recorded);
    expect(recorded).toEqual([2, 2, 1]);
    expect(queue.peeks.map((p) => p.from)).toEqual([0n, 3n, 5n]);
    // A dead-lettered message may keep the sequence number it had in the subscription.
    queue.add(poison('late'), 0n);
    expect(await sweep.sweep('inventory', queue, env())).toMatchObject({ peeked: 2, recorded: 1 });
    expect(deps.deadLetters.parked.size).toBe(6);
  });

  it('an outage stops the run without losing its place: the same page is recorded next run', async () => {
    const sweep = new DeadLetterSweep({ pageSize: 2, maxLocks: 100 });
    const order = storedOrder('processing');
    queue.add(billingDeadLetter(order), 1n);
    queue.add(poison('p-2'), 2n);
    queue.add(poison('p-3'), 3n);
    deps.orders.failWith = new Error('cosmos down');
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ peeked: 2, recorded: 0, failed: 'cosmos down' });
    deps.orders.failWith = undefined;
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ peeked: 2, recorded: 2 });
    expect(queue.peeks.map((p) => p.from)).toEqual([0n, 0n]);
    expect(deps.orders.docs.get(order.id)!.status.billing).toBe('deadlettered');
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

  it('locks no more than maxLocks messages a run: a message behind more poison than that stays', async () => {
    const sweep = new DeadLetterSweep({ pageSize: 10, maxLocks: 2 });
    for (const s of [1n, 2n]) queue.add(poison(`p-${s}`), s);
    const order = storedOrder('cancelled');
    queue.add(billingDeadLetter(order), 3n);
    expect(await sweep.sweep('billing', queue, env())).toMatchObject({ recorded: 3, removed: 0 });
    expect(queue.sequences()).toEqual([1n, 2n, 3n]);
  });
});
