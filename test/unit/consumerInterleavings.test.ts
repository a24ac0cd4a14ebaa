/**
 * Properties of orders whose deliveries, compensation and completion all run at once, with their
 * steps interleaved at every store call in an order fast-check chooses.
 *
 * Every call a delivery or an activity makes to a store (and the simulated work's sleep) waits for
 * the scheduler before it lands, so any two operations can interleave between any two of their
 * writes. The operations are the real ones: the Service Bus consumers (`consumeDelivery`), the
 * dead-letter handler (`recordDeadLetter`), and the activities of activities/compensationActivities.ts
 * and activities/monitorActivities.ts, carried out as orchestrators/compensateOrder.ts does. On one
 * or two orders that compete for scarce stock:
 * - deliveries of each service, duplicates of the same event among them, out-of-stock failures and
 *   `simulate.billingFailures`;
 * - a host that dies after any store call, a call Cosmos DB refuses (429) and one that lands with no
 *   answer: Service Bus delivers the message again, up to the last delivery it allows, and then the
 *   dead-letter sweep records it (at any moment); the durable engine runs an activity again;
 * - compensation runs, each begun by a monitor turn that decided from the order as it read it, up to
 *   two at once (a restarted monitor begins the next run while the earlier one still works), whose
 *   steps may each run twice at once;
 * - the monitor's completion, at any moment.
 *
 * Once all that has settled, the monitor is played as it is built to act on what it then reads (it
 * is not modelled turn by turn here; test/unit/monitorPolicyProperties.test.ts does that): an order
 * with all three services done is completed; a service still in flight whose message is gone is
 * sent its event again; a business failure or a dead-lettered billing (its requeues used up) is
 * compensated. Then every order must be completed or cancelled, with what each outcome promises:
 * stock conserved and never oversold, no hold left (completed: settled, cancelled: given back),
 * charges less refunds the total or 0, one confirmation or one cancellation notice, a completed
 * order with all three services done and never compensated.
 */
import fc from 'fast-check';
import { activityContext, mockActivities, mockOperation, silentSink } from './support/operationActivities';
import type { CatalogItem } from '../../src/domain/catalog';
import type { OrderDocument, OrderState } from '../../src/domain/order';
import { buildOrderCreatedEvent } from '../../src/domain/orderCreatedEvent';
import { TIMELINE, type MonitorSnapshot } from '../../src/domain/monitorPolicy';
import { ACTIVE_STATES, IN_FLIGHT, newOrder } from '../../src/domain/orderState';
import { compensationOutcome, type CompensationOutcome, type CompensationStep } from '../../src/domain/saga';
import { TransientError } from '../../src/errors';
import { createLogger } from '../../src/log';
import { consumeDelivery } from '../../src/services/consumers';
import type { OrderSagaDependencies } from '../../src/services/dependencies';
import { recordDeadLetter } from '../../src/support/deadLetters';
import { MAX_DELIVERY_COUNT, MAX_DELIVERY_COUNT_EXCEEDED, SERVICES, type ServiceName } from '../../src/topology';
import { ACTIVITY, COMPENSATION_ACTIVITY, isStoreOutageFailure, type CompensationStart } from '../../orchestrators/names';
import { isStoreUnavailable } from '../../src/azure/cosmosErrors';
import { storesThrough } from './support/callsThrough';
import { searchOptions } from './support/searchOptions';
import { memoryDependencies, MemoryInventoryStore, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

const log = createLogger(silentSink);

/** Scarce stock, so two orders (or one order's two lines) can run out. */
const CATALOG: readonly Omit<CatalogItem, 'reserved' | 'holds'>[] = [
  { id: 'DESK-MAT', name: 'Desk mat', price: 19.99, available: 3 },
  { id: 'LAMP', name: 'Desk lamp', price: 35, available: 2 },
];
const SKUS = CATALOG.map((c) => c.id);
const TERMINAL: readonly OrderState[] = ['completed', 'cancelled'];
const REASON = 'requested by ana@contoso.com';

/** What the host dying looks like to the code it was running: nothing it asks of a store lands any more. */
class HostDied extends Error {
  constructor() {
    super('host died');
  }
}

/**
 * What befalls one operation at its `at`-th store call: its host dies once the call has landed;
 * Cosmos DB refuses the call (429 past the SDK's retries: not applied); or the call lands and no
 * answer comes back (a timeout). In the last two the operation sees the error and goes on as its
 * code says.
 */
interface Fault {
  at: number;
  kind: 'dies' | 'refused' | 'unanswered';
}

const refused = () => Object.assign(new Error('Request rate is large'), { code: 429, retryAfterInMs: 50 });
const unanswered = () => Object.assign(new Error('request timed out'), { code: 'TimeoutError' });

/** One delivery of a message: what befalls it, and how many scheduled steps its simulated work lets go by. */
interface DeliveryPlan {
  fault?: Fault;
  work: number;
}

interface OrderPlan {
  items: { sku: string; quantity: number }[];
  billingFailures: number;
  /**
   * The messages of the order's event to each service at the start (none: it was lost; two: a
   * duplicate), each with its deliveries in turn; a delivery past those planned goes well.
   */
  messages: Record<ServiceName, DeliveryPlan[][]>;
  /** Compensation runs begun while the deliveries work. */
  runs: number;
  /** The monitor completes the order (a conditional patch) while the deliveries work. */
  complete: boolean;
}

interface Scenario {
  orders: OrderPlan[];
  /** What befalls each activity and dead-letter sweep pass, in the order they start (none: nothing). */
  faults: (Fault | undefined)[];
  /**
   * Where each operation, in the order operations start, is held up: before its `at`-th store call
   * it lets `turns` scheduled steps go by (a slow host, a throttled client), so the others get far
   * ahead of it. A uniform choice among the steps waiting seldom leaves one behind for long.
   */
  stalls: ({ at: number; turns: number } | undefined)[];
  /** Whether each compensation step, in the order they start, runs twice at once. */
  twice: boolean[];
}

interface Outcome {
  /** Its host died: whatever it returned or threw, nobody heard it. */
  died: boolean;
  value?: unknown;
  error?: unknown;
}

/** The stores, and the operations run on them, all waiting for `gate` at every store call. */
class World {
  readonly deps: MemoryDependencies;
  readonly monitor = new RecordingMonitor();
  readonly orders: OrderDocument[] = [];
  /** What happened, for the report of a failing case. */
  readonly trace: string[] = [];
  /** Errors no operation should end with. */
  readonly unexpected: string[] = [];
  private gate: (label: string) => Promise<void> = async () => undefined;
  /** Settling: nothing fails and nothing is held up any more. */
  private quiet = false;
  private started = 0;
  private faulted = 0;
  private steps = 0;
  private live = 0;
  private idle?: () => void;
  private messages = 0;

  constructor(private readonly scenario: Scenario) {
    this.deps = memoryDependencies();
    this.deps.inventory = new MemoryInventoryStore(CATALOG);
  }

  async place(plan: OrderPlan, n: number): Promise<OrderDocument> {
    const id = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
    const items = plan.items.map((i) => ({ ...i, unitPrice: CATALOG.find((c) => c.id === i.sku)!.price }));
    const total = items.reduce((t, i) => t + Math.round(i.quantity * i.unitPrice * 100), 0) / 100;
    const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `corr-${id}`, customerId: 'c-1', items, total, now: this.deps.now(), simulate: { billingFailures: plan.billingFailures } });
    await this.deps.orders.create({ ...order, published: true });
    this.orders.push(order);
    return order;
  }

  /** From here on every store call waits for `gate`. */
  interleave(gate: (label: string) => Promise<void>): void {
    this.gate = gate;
  }

  /** From here on every store call lands at once, and nothing fails. */
  inSequence(): void {
    this.gate = async () => undefined;
    this.scenario.faults.length = 0;
    this.scenario.stalls.length = 0;
    this.quiet = true;
  }

  /** Resolves once no operation is running any more (operations start others as they end). */
  settled(): Promise<void> {
    return this.live === 0 ? Promise.resolve() : new Promise((resolve) => (this.idle = resolve));
  }

  private spawn(work: () => Promise<void>): void {
    this.live++;
    void work()
      .catch((err: unknown) => void this.unexpected.push(`operation failed: ${String(err)}`))
      .finally(() => {
        if (--this.live === 0) this.idle?.();
      });
  }

  /**
   * Runs `work` with its own view of the stores: each call waits for the scheduler, then lands,
   * unless `plan.fault` says otherwise (by default the scenario's next fault).
   */
  private async operate(label: string, work: (deps: OrderSagaDependencies) => Promise<unknown>, plan?: DeliveryPlan): Promise<Outcome> {
    const fault = this.quiet ? undefined : plan ? plan.fault : this.scenario.faults[this.faulted++];
    const workTurns = this.quiet ? 0 : (plan?.work ?? 0);
    const stall = this.scenario.stalls[this.started++];
    const state = { calls: 0, dead: false };
    const call = async (name: string, land: () => Promise<unknown>) => {
      if (state.calls + 1 === stall?.at) for (let turn = 0; turn < stall.turns; turn++) await this.gate(`${label}: held up`);
      await this.gate(`${label}: ${name}`);
      if (state.dead) throw new HostDied();
      const faulty = ++state.calls === fault?.at;
      if (faulty) this.trace.push(`${label}: ${name} ${fault.kind}`);
      if (faulty && fault.kind === 'refused') throw refused();
      const result = await land();
      if (faulty && fault.kind === 'unanswered') throw unanswered();
      if (faulty && fault.kind === 'dies') {
        state.dead = true;
        throw new HostDied();
      }
      return result;
    };
    // The simulated work: another operation may go on meanwhile.
    const deps = storesThrough(this.deps, call, async () => {
      for (let turn = 0; turn <= workTurns; turn++) await this.gate(`${label}: sleep`);
      if (state.dead) throw new HostDied();
    });
    const outcome: Outcome = { died: false };
    try {
      outcome.value = await mockOperation.run(deps, () => work(deps));
    } catch (err) {
      outcome.error = err;
    }
    outcome.died = state.dead;
    return outcome;
  }

  /** A Service Bus message of the order's event to `service`, delivered until it is settled or dead-lettered. */
  deliver(order: OrderDocument, service: ServiceName, plan: DeliveryPlan[] = [], messageId = `m-${service}-${++this.messages}`, deliveryCount = 1): void {
    this.spawn(async () => {
      const label = `${service} ${messageId}#${deliveryCount} (${order.id.slice(-1)})`;
      const delivery = { body: buildOrderCreatedEvent(order), messageId, deliveryCount, orderId: order.id, correlationId: order.correlationId };
      const outcome = await this.operate(label, (deps) => consumeDelivery(service, delivery, { deps, monitor: this.monitor, log }), plan[deliveryCount - 1] ?? { work: 0 });
      this.trace.push(`${label}: ${outcome.died ? 'died' : outcome.error ? `threw ${String(outcome.error)}` : String(outcome.value)}`);
      if (!outcome.died && outcome.error !== undefined && !(outcome.error instanceof TransientError) && !isStoreUnavailable(outcome.error)) {
        this.unexpected.push(`${label} threw ${String(outcome.error)}`);
      }
      if (!outcome.died && outcome.error === undefined) return;
      // Abandoned (a failure) or its lock expired (the host died): delivered again, up to the last.
      if (deliveryCount < MAX_DELIVERY_COUNT) return this.deliver(order, service, plan, messageId, deliveryCount + 1);
      // Then dead-lettered, and the dead-letter sweep finds it (at any moment: it runs on a timer),
      // whether or not the last delivery recorded it itself.
      this.sweep(order, service, messageId);
    });
  }

  private sweep(order: OrderDocument, service: ServiceName, messageId: string): void {
    this.spawn(async () => {
      const label = `sweep ${service} ${messageId} (${order.id.slice(-1)})`;
      const message = {
        body: buildOrderCreatedEvent(order),
        messageId,
        deliveryCount: MAX_DELIVERY_COUNT,
        deadLetterReason: MAX_DELIVERY_COUNT_EXCEEDED,
        orderId: order.id,
        correlationId: order.correlationId,
      };
      // A pass that failed, or whose host died, leaves the message for the next pass.
      for (;;) {
        const outcome = await this.operate(label, (deps) => recordDeadLetter(service, message, { deps, monitor: this.monitor, log }));
        this.trace.push(`${label}: ${outcome.died ? 'died' : outcome.error ? `threw ${String(outcome.error)}` : JSON.stringify(outcome.value)}`);
        if (outcome.died || isStoreUnavailable(outcome.error)) continue;
        if (outcome.error !== undefined) this.unexpected.push(`${label} threw ${String(outcome.error)}`);
        return;
      }
    });
  }

  /**
   * Runs an activity as the durable engine does: again when its host died before the engine heard
   * it finish; again when Cosmos DB did not serve it (the orchestration waits that out); again on
   * any other failure, up to the retry policy's attempts, after which it fails.
   */
  private async activity<T>(order: OrderDocument, name: string, input: object, label: string): Promise<T> {
    const handler = mockActivities.get(name)!;
    for (let failures = 0; ; ) {
      const outcome = await this.operate(`${name} ${label}`, () => handler({ orderId: order.id, correlationId: order.correlationId, ...input }, activityContext(name)));
      if (outcome.died) continue;
      if (outcome.error === undefined) return outcome.value as T;
      this.trace.push(`${name} ${label} failed: ${String(outcome.error)}`);
      if (isStoreOutageFailure(outcome.error)) continue;
      if (++failures >= 3) throw outcome.error;
    }
  }

  /** A compensation step, run twice at once when the scenario says so (an activity the engine handed out again while it ran). */
  private async step(order: OrderDocument, name: string, input: object, label: string): Promise<void> {
    const twice = this.scenario.twice[this.steps++] ?? false;
    await Promise.all((twice ? [1, 2] : [1]).map((copy) => this.activity(order, name, input, `${label}.${copy}`)));
  }

  /** One compensation run, as orchestrators/compensateOrder.ts carries it out, begun as the monitor's step `step`. */
  compensate(order: OrderDocument, step: string): void {
    this.spawn(async () => {
      const ids = { reason: REASON };
      let started: CompensationStart | null | undefined;
      for (let turns = 1; started === undefined; turns++) {
        if (turns > 10) throw new Error(`${step} did not begin in ${turns} turns of the monitor`);
        // The monitor's turn: it decides from the order as it reads it, then begins the run. An
        // order it reads with all three services done it completes instead, and one that is
        // finished it leaves.
        const read = await this.activity<MonitorSnapshot | null>(order, ACTIVITY.readMonitorSnapshot, {}, step);
        const active = read !== null && ACTIVE_STATES.includes(read.state);
        if (!read || (!active && read.state !== 'compensating') || (active && SERVICES.every((service) => read.status[service] === 'done'))) {
          this.trace.push(`${step} not begun: the monitor read ${read?.state} ${JSON.stringify(read?.status)}`);
          return;
        }
        try {
          started = await this.activity<CompensationStart | null>(order, ACTIVITY.beginCompensation, { ...ids, step }, step);
        } catch {
          // Its retries used up, though its write may have landed: the monitor's next turn begins
          // the same step again, which finds that run rather than counting another.
          this.trace.push(`${step} unanswered`);
        }
      }
      this.trace.push(`${step} began: ${JSON.stringify(started)}`);
      if (!started) return;
      const plan = await this.activity<CompensationStep[]>(order, ACTIVITY.planOrderCompensation, {}, step);
      const failures: CompensationOutcome['failures'] = [];
      for (const s of plan) {
        try {
          await this.step(order, COMPENSATION_ACTIVITY[s.name], ids, step);
        } catch (err) {
          failures.push({ name: s.name, error: String(err) });
        }
      }
      const finished = await this.activity(order, ACTIVITY.finishCompensation, { ...ids, attempt: started.attempt, ...compensationOutcome(failures) }, step);
      this.trace.push(`${step} finished: ${JSON.stringify(finished)}`);
    });
  }

  /** The monitor's completion of the order (the same conditional patch the last consumer makes). */
  complete(order: OrderDocument): void {
    this.spawn(async () => {
      try {
        const result = await this.activity(order, ACTIVITY.markOrderCompleted, {}, 'monitor');
        this.trace.push(`markOrderCompleted (${order.id.slice(-1)}): ${JSON.stringify(result)}`);
      } catch {
        // Its retries used up: the monitor looks at the order again later.
        this.trace.push(`markOrderCompleted (${order.id.slice(-1)}) unanswered`);
      }
    });
  }

  async order(id: string): Promise<OrderDocument> {
    return (await this.deps.orders.get(id))!;
  }
}

/**
 * What the monitor does with what it reads once everything has settled. True when it did something;
 * at most one thing per order per look, as a monitor turn does.
 */
async function monitorLooks(world: World, looks: number): Promise<boolean> {
  let acted = false;
  for (const placed of world.orders) {
    const order = await world.order(placed.id);
    if (TERMINAL.includes(order.state)) continue;
    acted = true;
    const active = ACTIVE_STATES.includes(order.state);
    if (active && SERVICES.every((s) => order.status[s] === 'done')) {
      world.complete(order);
    } else if (!active) {
      // Every run begun has finished, and the last one records its outcome (an earlier one is set
      // aside as superseded): left `compensating`, the monitor would spend one more of its bounded
      // runs on the order, and end it in `attention` once they are used up.
      throw new Error(`order ${order.id} left ${order.state} once its compensation runs finished:\n${world.trace.join('\n')}`);
    } else if (order.status.inventory === 'failed' || order.status.billing === 'deadlettered') {
      // A business failure, or a billing whose requeues are used up.
      world.compensate(order, `settle-${looks}`);
    } else {
      // A service whose message is gone (lost, or dead-lettered): the monitor sends it again.
      for (const service of SERVICES) if (IN_FLIGHT.includes(order.status[service])) world.deliver(order, service);
    }
  }
  return acted;
}

async function holdsOf(world: World): Promise<Record<string, CatalogItem>> {
  return Object.fromEntries(await Promise.all(SKUS.map(async (sku) => [sku, (await world.deps.inventory.get(sku))!] as const)));
}

/** The promises of the saga, checked once every order is finished. */
async function expectOutcomesKept(world: World): Promise<void> {
  const orders = await Promise.all(world.orders.map((o) => world.order(o.id)));
  for (const order of orders) expect(TERMINAL).toContain(order.state);
  const stock = await holdsOf(world);

  for (const { id, available } of CATALOG) {
    const item = stock[id]!;
    // Conserved, and never oversold.
    expect(item.available + item.reserved).toBe(available);
    expect(item.available).toBeGreaterThanOrEqual(0);
    // A finished order holds nothing: a completed one's stock is sold (settled), a cancelled one's is back.
    expect(item.holds).toEqual({});
    // What stays reserved is exactly what completed orders bought.
    const sold = orders.filter((o) => o.state === 'completed').reduce((n, o) => n + (o.items.find((i) => i.sku === id)?.quantity ?? 0), 0);
    expect(item.reserved).toBe(sold);
  }

  for (const order of orders) {
    // An order about to complete is not cancelled: compensation does not begin once its three
    // services are done. (Once it has begun, a late `done` changes nothing: later runs go on.)
    const firstRun = order.timeline.findIndex((e) => e.kind === TIMELINE.compensationStarted);
    if (firstRun >= 0) {
      const doneBefore = new Set(order.timeline.slice(0, firstRun).filter((e) => e.kind === 'done').map((e) => e.service));
      expect(doneBefore.size).toBeLessThan(SERVICES.length);
    }
    const ledger = await world.deps.payments.entries(order.id);
    const charged = ledger.filter((e) => e.kind === 'charge' && !e.voided).reduce((n, e) => n + e.amount, 0);
    const refunded = ledger.filter((e) => e.kind === 'refund').reduce((n, e) => n + e.amount, 0);
    const sent = await world.deps.notifications.list(order.id);
    const recorded = (kind: string) => order.notifications.filter((n) => n.kind === kind).length;
    // A confirmation slot compensation voided sent nothing.
    const notices = (kind: string) => sent.filter((n) => n.kind === kind && !n.voided).length;
    const entries = (kind: string) => order.timeline.filter((e) => e.kind === kind).length;
    if (order.state === 'completed') {
      expect(order.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
      // Completed once, and never compensated: a run that began would have kept it from completing.
      expect({ completed: entries('completed'), runs: entries(TIMELINE.compensationStarted) }).toEqual({ completed: 1, runs: 0 });
      expect({ net: charged - refunded, shown: order.payment.charged - order.payment.refunded }).toEqual({ net: order.total, shown: order.total });
      expect({ sent: notices('confirmation'), recorded: recorded('confirmation') }).toEqual({ sent: 1, recorded: 1 });
      expect({ sent: notices('cancellation'), recorded: recorded('cancellation') }).toEqual({ sent: 0, recorded: 0 });
      // Its confirmation's slot was never voided: compensation takes it only once the order can no longer complete.
      expect(sent.filter((n) => n.voided)).toEqual([]);
    } else {
      expect(entries('completed')).toBe(0);
      expect({ net: charged - refunded, shown: order.payment.charged - order.payment.refunded }).toEqual({ net: 0, shown: 0 });
      expect({ sent: notices('cancellation'), recorded: recorded('cancellation') }).toEqual({ sent: 1, recorded: 1 });
      // A confirmation that went out before compensation overtook its delivery is on the order too.
      expect(recorded('confirmation')).toBe(notices('confirmation'));
    }
  }
}

/** What befalls an operation; `freq`: one in `freq` has nothing. */
const faultArb = ({ maxAt, freq, kinds }: { maxAt: number; freq: number; kinds: Fault['kind'][] }) =>
  fc.option(fc.record({ at: fc.integer({ min: 1, max: maxAt }), kind: fc.constantFrom(...kinds) }), { nil: undefined, freq });

const ANY_FAULT: Fault['kind'][] = ['dies', 'dies', 'refused', 'unanswered'];

/** A message's deliveries, up to the last Service Bus allows. */
const messageArb = (fault: fc.Arbitrary<Fault | undefined>) =>
  fc.array(
    fc.record({ fault, work: fc.integer({ min: 0, max: 30 }) }).map(({ fault: f, work }) => (f ? { fault: f, work } : { work })),
    { minLength: 1, maxLength: MAX_DELIVERY_COUNT },
  );

const planArb = ({ fault, minMessages, minRuns }: { fault: fc.Arbitrary<Fault | undefined>; minMessages: number; minRuns: number }): fc.Arbitrary<OrderPlan> => {
  const messages = fc.array(messageArb(fault), { minLength: minMessages, maxLength: 2 });
  return fc.record({
    items: fc.uniqueArray(fc.record({ sku: fc.constantFrom(...SKUS), quantity: fc.integer({ min: 1, max: 3 }) }), { selector: (i) => i.sku, minLength: 1, maxLength: 2 }),
    billingFailures: fc.integer({ min: 0, max: 3 }),
    messages: fc.record({ inventory: messages, billing: messages, notification: messages }),
    runs: fc.integer({ min: minRuns, max: 2 }),
    complete: fc.boolean(),
  });
};

const stallsArb = fc.array(fc.option(fc.record({ at: fc.integer({ min: 1, max: 8 }), turns: fc.integer({ min: 1, max: 24 }) }), { nil: undefined, freq: 2 }), { maxLength: 12 });
const twiceArb = fc.array(fc.boolean(), { maxLength: 8 });

/** One or two orders, their messages, runs and completions, with faults now and then. */
const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  orders: fc.array(planArb({ fault: faultArb({ maxAt: 10, freq: 3, kinds: ANY_FAULT }), minMessages: 0, minRuns: 0 }), { minLength: 1, maxLength: 2 }),
  faults: fc.array(faultArb({ maxAt: 10, freq: 3, kinds: ANY_FAULT }), { maxLength: 10 }),
  stalls: stallsArb,
  twice: twiceArb,
});

/**
 * One order, compensated while hosts die at nearly every turn: often enough for a message to use
 * up its deliveries and be dead-lettered while a run works, which faults now and then seldom do.
 */
const dyingHostsArb: fc.Arbitrary<Scenario> = fc.record({
  orders: fc.tuple(planArb({ fault: faultArb({ maxAt: 5, freq: 8, kinds: ['dies'] }), minMessages: 1, minRuns: 1 })),
  faults: fc.array(faultArb({ maxAt: 5, freq: 2, kinds: ['dies'] }), { maxLength: 10 }),
  stalls: stallsArb,
  twice: twiceArb,
});

async function play(scenario: Scenario, s: fc.Scheduler): Promise<World> {
  const world = new World(structuredClone(scenario));
  const placed = await Promise.all(scenario.orders.map((plan, n) => world.place(plan, n + 1)));
  world.interleave((label) => s.schedule(Promise.resolve(), label));
  scenario.orders.forEach((plan, n) => {
    const order = placed[n]!;
    for (const service of SERVICES) plan.messages[service].forEach((deliveries, copy) => world.deliver(order, service, deliveries, `m-${service}-${order.id.slice(-1)}-${copy}`));
    for (let run = 1; run <= plan.runs; run++) world.compensate(order, `run-${run}`);
    if (plan.complete) world.complete(order);
  });
  await s.waitFor(world.settled());

  world.inSequence();
  for (let looks = 1; await monitorLooks(world, looks); looks++) {
    if (looks > 6) throw new Error(`orders not finished after ${looks} looks of the monitor:\n${world.trace.join('\n')}`);
    await world.settled();
  }
  return world;
}

/** Plays scenarios and checks every outcome; a failure reports what happened and how it ended. */
async function expectEveryOutcomeKept(scenarios: fc.Arbitrary<Scenario>, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(scenarios, fc.scheduler(), async (scenario, s) => {
      const world = await play(scenario, s);
      try {
        expect(world.unexpected).toEqual([]);
        await expectOutcomesKept(world);
      } catch (err) {
        const orders = await Promise.all(world.orders.map((o) => world.order(o.id)));
        (err as Error).message += `\n\nwhat happened:\n${world.trace.join('\n')}\n\norders:\n${JSON.stringify(orders, null, 1)}\nstock: ${JSON.stringify(await holdsOf(world))}`;
        throw err;
      }
    }),
    searchOptions(numRuns),
  );
}

describe('deliveries, compensation and completion interleaved at every store call', () => {
  it('every order ends completed or cancelled with its stock, money and notices as the outcome promises', async () => {
    await expectEveryOutcomeKept(scenarioArb, 250);
  });

  it('every order ends as its outcome promises also when hosts die so often that messages are dead-lettered while compensation runs', async () => {
    await expectEveryOutcomeKept(dyingHostsArb, 150);
  });
});
