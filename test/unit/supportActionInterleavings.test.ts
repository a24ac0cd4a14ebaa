/**
 * Properties of a person's support requests (requeue a billing, compensate the order) made while
 * everything else on the order runs, with every store call resolved in an order fast-check chooses.
 *
 * The operations are the real ones: the support actions of src/support/actions.ts, the Service Bus
 * consumers and the dead-letter handler, and the monitor, which takes its turns as
 * orchestrators/orderMonitor.ts does (read, `decideNextStep`, carry the step out with the real
 * activities; a compensation run as orchestrators/compensateOrder.ts carries it out). One order:
 * - its event delivered to the three consumers, billing failing `billingFailures` times (so it may
 *   dead-letter, and the sweep records it), every targeted send the monitor makes delivered too;
 * - the monitor's turns, its activities run twice at once now and then (the engine runs an activity
 *   at least once), its compensation runs ending in `attention` while refunds keep failing;
 * - people asking to requeue or to compensate, one or two of them, repeating themselves, at any
 *   moment; a request whose store call is refused or left unanswered is asked again.
 * Time is not modelled (test/unit/monitorPolicyProperties.test.ts does that): every backoff is over
 * and no consumer counts as stuck, so the monitor acts on what it reads and waits for the rest.
 */
import fc from 'fast-check';
import { activityContext, mockActivities, mockOperation, mockRefunds, silentSink } from './support/operationActivities';
import { SEED_CATALOG } from '../../src/domain/catalog';
import type { OrderDocument } from '../../src/domain/order';
import { buildOrderCreatedEvent } from '../../src/domain/orderCreatedEvent';
import {
  compensationAskedSinceLastRun,
  decideNextStep,
  DEFAULT_MONITOR_POLICY,
  MONITOR_ACTOR,
  republishedMessageId,
  TIMELINE,
  UNTRIED_REQUEUES_FREE,
  type MonitorPolicy,
  type MonitorSnapshot,
} from '../../src/domain/monitorPolicy';
import { newOrder, pendingRequeueRequest, supportRequestOutcomes, type SupportRequestOutcome } from '../../src/domain/orderState';
import { compensationOutcome, type CompensationOutcome, type CompensationStep } from '../../src/domain/saga';
import { createLogger } from '../../src/log';
import { consumeDelivery } from '../../src/services/consumers';
import type { OrderSagaDependencies } from '../../src/services/dependencies';
import type { MonitorClient, MonitorStatus, OutgoingMessage } from '../../src/services/ports';
import { requestCompensation, requestRequeue, type SupportActionResult } from '../../src/support/actions';
import { recordDeadLetter } from '../../src/support/deadLetters';
import type { SupportPrincipal } from '../../src/support/principal';
import { MAX_DELIVERY_COUNT, MAX_DELIVERY_COUNT_EXCEEDED, SERVICES, TARGET_PROPERTY, type ServiceName } from '../../src/topology';
import { ACTIVITY, COMPENSATION_ACTIVITY, type CompensationStart } from '../../orchestrators/names';
import { storesThrough } from './support/callsThrough';
import { searchOptions } from './support/searchOptions';
import { memoryDependencies, type MemoryDependencies } from './support/memoryStores';

const log = createLogger(silentSink);

const ORDER_ID = '00000000-0000-4000-8000-000000000001';
const SKU = SEED_CATALOG[0]!;
const PEOPLE: SupportPrincipal[] = ['ana@contoso.com', 'bo@contoso.com'].map((name) => ({ name, roles: ['support'], source: 'app-service-auth' }));
/** Far past every stamp the stores write: every backoff is over. */
const LATER = new Date('2030-01-01T00:00:00.000Z');
/** Turns of one monitor past which it is taken to loop. */
const MAX_TURNS = 80;

type Action = 'requeue' | 'compensate';

interface Request {
  person: 0 | 1;
  action: Action;
  /** Scheduled steps let go by before asking: when, among everything else, the person asks. */
  after: number;
  /** The store call of the first attempt that is refused (not applied) or lands with no answer; the person asks again. */
  fault?: { at: number; kind: 'refused' | 'unanswered' };
}

interface Scenario {
  billingFailures: number;
  /** Refunds that fail before one works: each run that meets one ends in `attention`. */
  refundFailures: number;
  maxCompensationRuns: number;
  maxBillingRequeues: number;
  requests: Request[];
  /** Per monitor activity, in the order they start: the engine runs it twice at once. */
  twice: boolean[];
}

interface Answer {
  request: Request;
  result: SupportActionResult;
  /** The order's timeline length before the answered attempt began: the request's entry, if any, is past it. */
  askedFrom: number;
}

class World implements MonitorClient {
  readonly deps: MemoryDependencies = memoryDependencies();
  readonly answers: Answer[] = [];
  readonly trace: string[] = [];
  /** What the support view told of the order's requests at each store call, in turn. */
  readonly told: SupportRequestOutcome[][] = [];
  readonly unexpected: string[] = [];
  readonly policy: MonitorPolicy;
  private gate: (label: string) => Promise<void> = async () => undefined;
  private live = 0;
  private others = 0;
  private idle?: () => void;
  private monitorRunning = false;
  private monitors = 0;
  private activities = 0;
  private readonly total: number;

  constructor(readonly scenario: Scenario) {
    this.policy = {
      ...DEFAULT_MONITOR_POLICY,
      maxBillingRequeues: scenario.maxBillingRequeues,
      requeueBackoffBaseMs: 0,
      requeueBackoffMaxMs: 0,
      // No consumer counts as stuck: no message is lost here, and time is not modelled.
      stuckAfterMs: { inventory: 1e13, billing: 1e13, notification: 1e13 },
      maxBacklogWaitMs: 0,
      maxCompensationRuns: scenario.maxCompensationRuns,
      compensationRetry: { ...DEFAULT_MONITOR_POLICY.compensationRetry, maxAttempts: 1 },
    };
    this.total = SKU.price;
    const publish = this.deps.publisher.publish.bind(this.deps.publisher);
    // Every message the topic takes is delivered to the service it targets (or all three).
    this.deps.publisher.publish = async (message: OutgoingMessage) => {
      const before = this.deps.publisher.sent.length;
      await publish(message);
      if (this.deps.publisher.sent.length === before) return;
      const target = message.applicationProperties[TARGET_PROPERTY] as ServiceName | undefined;
      for (const service of target ? [target] : SERVICES) this.deliver(service, message.messageId, message.body);
    };
  }

  async place(): Promise<void> {
    const order = newOrder({
      id: ORDER_ID,
      eventId: 'ev-1',
      correlationId: 'corr-1',
      customerId: 'c-1',
      items: [{ sku: SKU.id, quantity: 1, unitPrice: SKU.price }],
      total: this.total,
      now: this.deps.now(),
      simulate: { billingFailures: this.scenario.billingFailures },
    });
    await this.deps.orders.create({ ...order, published: true });
    mockRefunds.failuresLeft = this.scenario.refundFailures;
  }

  interleave(gate: (label: string) => Promise<void>): void {
    this.gate = (label) => {
      this.told.push(supportRequestOutcomes(this.deps.orders.docs.get(ORDER_ID)!));
      return gate(label);
    };
  }

  inSequence(): void {
    this.gate = async () => undefined;
  }

  settled(): Promise<void> {
    return this.live === 0 ? Promise.resolve() : new Promise((resolve) => (this.idle = resolve));
  }

  order(): Promise<OrderDocument> {
    return this.deps.orders.get(ORDER_ID) as Promise<OrderDocument>;
  }

  /** `monitor`: whether it is a monitor, which waits only while something else may still change the order. */
  private spawn(work: () => Promise<void>, monitor = false): void {
    this.live++;
    if (!monitor) this.others++;
    void work()
      .catch((err: unknown) => void this.unexpected.push(`operation failed: ${String(err)}`))
      .finally(() => {
        if (!monitor) this.others--;
        if (--this.live === 0) this.idle?.();
      });
  }

  /** Runs `work` with stores whose every call waits for the scheduler; `fault` befalls its `at`-th call. */
  private async operate<T>(label: string, work: (deps: OrderSagaDependencies) => Promise<T>, fault?: Request['fault']): Promise<T> {
    let calls = 0;
    const call = async (name: string, land: () => Promise<unknown>) => {
      await this.gate(`${label}: ${name}`);
      const faulty = ++calls === fault?.at;
      if (faulty && fault.kind === 'refused') throw Object.assign(new Error('Request rate is large'), { code: 429 });
      const result = await land();
      if (faulty) throw Object.assign(new Error('request timed out'), { code: 'TimeoutError' });
      return result;
    };
    const deps = storesThrough(this.deps, call, async () => this.gate(`${label}: sleep`));
    return mockOperation.run(deps, () => work(deps));
  }

  // -------------------------------------------------------------------------------------------
  // The monitor client support actions wake or start

  async status(): Promise<MonitorStatus | null> {
    await this.gate('monitor status');
    return { runtimeStatus: this.monitorRunning ? 'Running' : 'Completed', customStatus: null };
  }

  async notifyOrderChanged(): Promise<void> {
    // The monitor here takes its turns without sleeping: it reads the order again anyway.
    await this.gate('monitor woken');
  }

  async start(): Promise<'started' | 'exists'> {
    await this.gate('monitor start');
    if (this.monitorRunning) return 'exists';
    this.startMonitor();
    return 'started';
  }

  startMonitor(): void {
    this.monitorRunning = true;
    const n = ++this.monitors;
    this.spawn(() => this.monitor(n), true);
  }

  // -------------------------------------------------------------------------------------------
  // Consumers and the dead-letter sweep

  deliverEvent(): void {
    void this.order().then((order) => {
      for (const service of SERVICES) this.deliver(service, order.eventId, buildOrderCreatedEvent(order));
    });
  }

  private deliver(service: ServiceName, messageId: string, body: unknown, deliveryCount = 1): void {
    this.spawn(async () => {
      const label = `${service} ${messageId}#${deliveryCount}`;
      const delivery = { body, messageId, deliveryCount, orderId: ORDER_ID, correlationId: 'corr-1' };
      try {
        const result = await this.operate(label, (deps) => consumeDelivery(service, delivery, { deps, monitor: this, log }));
        this.trace.push(`${label}: ${String(result)}`);
      } catch (err) {
        this.trace.push(`${label}: threw ${String(err)}`);
        if (deliveryCount < MAX_DELIVERY_COUNT) return this.deliver(service, messageId, body, deliveryCount + 1);
        this.spawn(async () => {
          const message = { body, messageId, deliveryCount, deadLetterReason: MAX_DELIVERY_COUNT_EXCEEDED, orderId: ORDER_ID, correlationId: 'corr-1' };
          const swept = await this.operate(`sweep ${label}`, (deps) => recordDeadLetter(service, message, { deps, monitor: this, log }));
          this.trace.push(`sweep ${label}: ${JSON.stringify(swept)}`);
        });
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // People

  ask(request: Request): void {
    this.spawn(async () => {
      for (let turn = 0; turn < request.after; turn++) await this.gate('person waits');
      const act = request.action === 'requeue' ? requestRequeue : requestCompensation;
      const who = PEOPLE[request.person]!;
      // A request that failed is asked again, as the portal's retry or the person would: after a
      // store fault, or after a 503 because the order kept changing under it (others asking at once).
      for (let attempt = 1; ; attempt++) {
        const askedFrom = (await this.order()).timeline.length;
        try {
          const result = await this.operate(`${who.name} ${request.action}`, (deps) => act(ORDER_ID, who, { deps, monitor: this, log }), attempt === 1 ? request.fault : undefined);
          this.trace.push(`${who.name} ${request.action}: ${JSON.stringify(result)}`);
          this.answers.push({ request, result, askedFrom });
          return;
        } catch (err) {
          this.trace.push(`${who.name} ${request.action} failed: ${String(err)}`);
          if (attempt >= 10) throw err;
        }
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // The monitor, turn by turn

  /** An activity as the engine runs it: twice at once now and then; again when it failed, up to three times. */
  private async activity<T>(name: string, input: object = {}): Promise<T> {
    const copies = this.scenario.twice[this.activities++] ? 2 : 1;
    const run = async (copy: number): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return (await this.operate(`${name}.${copy}`, () => mockActivities.get(name)!({ orderId: ORDER_ID, correlationId: 'corr-1', ...input }, activityContext(name)))) as T;
        } catch (err) {
          if (attempt >= 3) throw err;
        }
      }
    };
    const results = await Promise.all(Array.from({ length: copies }, (_, i) => run(i + 1)));
    return results[0]!;
  }

  private async monitor(n: number): Promise<void> {
    let begins = 0;
    for (let turn = 1; ; turn++) {
      if (turn > MAX_TURNS) {
        this.unexpected.push(`monitor ${n} still going after ${MAX_TURNS} turns`);
        this.monitorRunning = false;
        return;
      }
      const before = JSON.stringify(await this.order());
      const snapshot = await this.activity<MonitorSnapshot>(ACTIVITY.readMonitorSnapshot);
      const step = decideNextStep(snapshot, this.policy, LATER);
      this.trace.push(`monitor ${n} turn ${turn}: ${JSON.stringify(step)}`);
      try {
        switch (step.kind) {
          case 'done':
            if (step.outcome === 'completed') await this.activity(ACTIVITY.markOrderCompleted);
            this.monitorRunning = false;
            return;
          case 'wait':
            // Nothing left that could change the order: the monitor would wait for ever. Unless the
            // last of the others changed it after this turn's read: the real monitor is woken, or
            // polls, and reads it again.
            if (this.others === 0 && JSON.stringify(await this.order()) !== before) continue;
            if (this.others === 0) {
              this.unexpected.push(`monitor ${n} waits on an order nothing will change: ${JSON.stringify(snapshot)}`);
              this.monitorRunning = false;
              return;
            }
            await this.gate(`monitor ${n} waits`);
            break;
          case 'requeueBilling':
            await this.activity(ACTIVITY.requeueBilling, { attempt: step.attempt, requestedBy: step.requestedBy });
            break;
          case 'republish':
          case 'checkBacklog':
            throw new Error(`no service is stuck here, yet the monitor chose ${step.kind}`);
          case 'markCompleted':
            await this.activity(ACTIVITY.markOrderCompleted);
            break;
          case 'markAttention':
            await this.activity(ACTIVITY.markOrderAttention, { reason: step.reason });
            break;
          case 'compensate':
            await this.compensate(step.reason, step.requestedBy, `m${n}-step-${++begins}`);
            break;
        }
      } catch (err) {
        // Failed after its retries: the monitor looks again on its next turn.
        this.trace.push(`monitor ${n} turn ${turn} failed: ${String(err)}`);
      }
    }
  }

  private async compensate(reason: string, requestedBy: string | undefined, step: string): Promise<void> {
    const started = await this.activity<CompensationStart | null>(ACTIVITY.beginCompensation, { reason, requestedBy, step });
    this.trace.push(`${step} began: ${JSON.stringify(started)}`);
    if (!started) return;
    const ids = { reason };
    const plan = await this.activity<CompensationStep[]>(ACTIVITY.planOrderCompensation, {});
    const failures: CompensationOutcome['failures'] = [];
    for (const s of plan) {
      try {
        await this.activity(COMPENSATION_ACTIVITY[s.name], ids);
      } catch (err) {
        failures.push({ name: s.name, error: String(err) });
      }
    }
    const finished = await this.activity(ACTIVITY.finishCompensation, { ...ids, attempt: started.attempt, ...compensationOutcome(failures) });
    this.trace.push(`${step} finished: ${JSON.stringify(finished)}`);
  }
}

async function play(scenario: Scenario, s: fc.Scheduler): Promise<World> {
  const world = new World(structuredClone(scenario));
  await world.place();
  world.interleave((label) => s.schedule(Promise.resolve(), label));
  world.deliverEvent();
  world.startMonitor();
  for (const request of scenario.requests) world.ask(request);
  await s.waitFor(world.settled());
  world.inSequence();
  // A person's wake-up that reached a monitor as it ended (it had read the order before the
  // request) is lost; the monitor sweeper starts one for an order left active or compensating.
  const left = await world.order();
  if (['accepted', 'processing', 'compensating'].includes(left.state)) {
    world.trace.push(`sweeper starts a monitor for an order left ${left.state}`);
    world.startMonitor();
    await world.settled();
  }
  return world;
}

const entriesOf = (order: OrderDocument, kind: string) => order.timeline.filter((e) => e.kind === kind);

/** What a person relies on once everything has settled. */
async function expectPromisesKept(world: World): Promise<void> {
  const { scenario, policy } = world;
  const order = await world.order();
  expect(world.unexpected).toEqual([]);
  expect(['completed', 'cancelled', 'attention']).toContain(order.state);

  const kinds = order.timeline.map((e) => e.kind);
  const runsBegun = entriesOf(order, TIMELINE.compensationStarted).length;
  const compensateRequests = order.timeline.filter((e) => e.kind === TIMELINE.supportAction && e.detail === 'compensate');
  const requeueRequests = order.timeline.filter((e) => e.kind === TIMELINE.supportAction && e.detail === 'requeue');

  // Every accepted request that recorded something is carried out, or made moot by what the
  // timeline shows after it.
  for (const { request, result, askedFrom } of world.answers) {
    if (result.kind !== 'accepted') continue;
    const at = order.timeline.findIndex((e, i) => i >= askedFrom && e.kind === TIMELINE.supportAction && e.detail === request.action && e.actor === PEOPLE[request.person]!.name);
    if (request.action === 'compensate') {
      if (result.body.alreadyRequested) {
        // Nothing new was recorded: a run is asked for, running or done, or the order is cancelled.
        expect(runsBegun > 0 || compensateRequests.length > 0 || order.state === 'cancelled').toBe(true);
        continue;
      }
      expect(at).toBeGreaterThanOrEqual(0);
      const after = kinds.slice(at + 1);
      if (after.includes(TIMELINE.compensationStarted)) continue;
      // Not carried out: only because the order's three services were all done before any run
      // began, and it completed. Deliberate (an order about to complete is never cancelled, even
      // when a person asked; see beginCompensationRun); its timeline says `completed` after the request.
      expect(order.state).toBe('completed');
      expect(kinds).not.toContain(TIMELINE.compensationStarted);
      expect(after).toContain('completed');
    } else {
      if (result.body.alreadyRequested) continue;
      expect(at).toBeGreaterThanOrEqual(0);
      const after = order.timeline.slice(at + 1);
      // Carried out (a requeue written after it, the monitor's own or the person's), or moot:
      // billing finished or failed on its own, or compensation began.
      const carried = after.some((e) => e.kind === TIMELINE.requeued);
      const moot = after.some((e) => e.kind === TIMELINE.compensationStarted || (e.service === 'billing' && (e.kind === 'done' || e.kind === 'failed')));
      expect({ carried, moot }).not.toEqual({ carried: false, moot: false });
    }
  }
  // What the support view tells of each request agrees with what the timeline shows after it: on a
  // finished order none is pending; a request is told carried out only when what carries it out
  // followed it, and overtaken only when the order moved on so that nothing would.
  const requests = order.timeline.flatMap((e, i) => (e.kind === TIMELINE.supportAction ? [{ entry: e, after: order.timeline.slice(i + 1) }] : []));
  const told = supportRequestOutcomes(order);
  expect(told.map((r) => [r.action, r.by, r.at])).toEqual(requests.map(({ entry }) => [entry.detail, entry.actor, entry.at]));
  told.forEach((r, i) => {
    const after = requests[i]!.after;
    const afterKinds = after.map((e) => e.kind);
    expect(r.outcome).not.toBe('pending');
    if (r.action === 'compensate') {
      expect(r.outcome).toBe(afterKinds.includes(TIMELINE.compensationStarted) ? 'carried-out' : 'overtaken');
      if (r.outcome === 'overtaken') expect(order.state).toBe('completed');
    } else if (r.outcome === 'carried-out') {
      expect(afterKinds).toContain(TIMELINE.requeued);
    } else {
      const compensated = after.some((e) => e.kind === TIMELINE.compensationStarted || (e.kind === TIMELINE.supportAction && e.detail === 'compensate'));
      const billingEnded = after.some((e) => e.service === 'billing' && (e.kind === 'done' || e.kind === 'failed'));
      expect(compensated || billingEnded).toBe(true);
      // Nothing requeued billing between the request and what overtook it.
      const overtakenAt = after.findIndex((e) => e.kind === TIMELINE.compensationStarted || (e.kind === TIMELINE.supportAction && e.detail === 'compensate'));
      expect(after.slice(0, overtakenAt === -1 ? undefined : overtakenAt).map((e) => e.kind)).not.toContain(TIMELINE.requeued);
    }
  });

  // Told as it goes: a request told overtaken is never carried out after all, and one told carried
  // out stays so, by the same requeue or run.
  for (const [i, last] of told.entries()) {
    const before = world.told.map((outcomes) => outcomes[i]).filter((r) => r !== undefined);
    if (before.some((r) => r.outcome === 'overtaken')) expect(last.outcome).toBe('overtaken');
    const carried = before.find((r) => r.outcome === 'carried-out');
    if (carried) expect(last).toEqual(carried);
  }

  // No request left pending on a finished order that the monitor would still owe.
  if (order.state === 'attention') expect(compensationAskedSinceLastRun(order)).toBeUndefined();
  if (order.state === 'completed' || order.state === 'cancelled') {
    const pending = pendingRequeueRequest(order.timeline);
    if (pending) expect(kinds).toEqual(expect.arrayContaining([order.state === 'completed' ? 'completed' : TIMELINE.compensationStarted]));
  }

  // Never carried out twice: one requeue entry per person's request at most, one billing message
  // per requeue entry, and the topic never offered a second send of one.
  const personRequeues = order.timeline.filter((e) => e.kind === TIMELINE.requeued && e.actor !== MONITOR_ACTOR).length;
  expect(personRequeues).toBeLessThanOrEqual(requeueRequests.length);
  const billingSends = world.deps.publisher.sent.filter((m) => m.applicationProperties[TARGET_PROPERTY] === 'billing').length;
  // Two copies of one requeue step may both send when the second reads the order between the
  // first's send and its record of it: they send the same messageId, which the topic's duplicate
  // detection drops (the design relies on it), so the order may record that one message twice.
  const recordedIds = new Set(order.timeline.filter((e) => e.kind === TIMELINE.republished && e.service === 'billing').map((e) => republishedMessageId(e.detail)));
  expect(billingSends).toBe(recordedIds.size);
  expect(billingSends).toBeLessThanOrEqual(entriesOf(order, TIMELINE.requeued).length);

  // The policy's bounds, with the fresh allowance after each person's compensate request.
  const monitorRequeues = order.timeline.filter((e) => e.kind === TIMELINE.requeued && e.actor === MONITOR_ACTOR).length;
  expect(monitorRequeues).toBeLessThanOrEqual(policy.maxBillingRequeues + UNTRIED_REQUEUES_FREE);
  expect(runsBegun).toBeLessThanOrEqual(policy.maxCompensationRuns * (1 + compensateRequests.length));
  expect(entriesOf(order, 'completed').length).toBeLessThanOrEqual(1);

  // Money and stock.
  const ledger = await world.deps.payments.entries(ORDER_ID);
  const net = ledger.filter((e) => e.kind === 'charge' && !e.voided).reduce((n, e) => n + e.amount, 0) - ledger.filter((e) => e.kind === 'refund').reduce((n, e) => n + e.amount, 0);
  const item = (await world.deps.inventory.get(SKU.id))!;
  expect(item.available + item.reserved).toBe(SKU.available);
  // Notices: what the sender holds (a voided confirmation slot sent nothing) and what the order shows.
  const sender = await world.deps.notifications.list(ORDER_ID);
  const notices = (kind: string) => ({
    sent: sender.filter((n) => n.kind === kind && !n.voided).length,
    voided: sender.filter((n) => n.kind === kind && n.voided).length,
    shown: order.notifications.filter((n) => n.kind === kind).length,
  });
  if (order.state === 'completed') {
    // Never voided: an order that completes is owed its confirmation.
    expect({ confirmation: notices('confirmation'), cancellation: notices('cancellation') }).toEqual({
      confirmation: { sent: 1, voided: 0, shown: 1 },
      cancellation: { sent: 0, voided: 0, shown: 0 },
    });
  } else {
    expect(notices('confirmation').shown).toBe(notices('confirmation').sent);
    if (order.state === 'cancelled') expect(notices('cancellation')).toEqual({ sent: 1, voided: 0, shown: 1 });
  }
  if (order.state === 'completed') {
    expect(runsBegun).toBe(0);
    expect(order.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
    expect(net).toBeCloseTo(order.total, 2);
    expect({ reserved: item.reserved, holds: item.holds }).toEqual({ reserved: 1, holds: {} });
  } else if (order.state === 'cancelled') {
    expect(net).toBe(0);
    expect({ reserved: item.reserved, holds: item.holds }).toEqual({ reserved: 0, holds: {} });
  } else {
    // `attention` only when refunds kept failing and the runs were used up.
    expect(scenario.refundFailures).toBeGreaterThan(0);
  }
}

const requestArb: fc.Arbitrary<Request> = fc.record(
  {
    person: fc.constantFrom<0 | 1>(0, 1),
    action: fc.constantFrom<Action>('requeue', 'compensate'),
    after: fc.integer({ min: 0, max: 60 }),
    fault: fc.record({ at: fc.integer({ min: 1, max: 6 }), kind: fc.constantFrom<'refused' | 'unanswered'>('refused', 'unanswered') }),
  },
  { requiredKeys: ['person', 'action', 'after'] },
);

const scenarioArb = (over: { requests?: fc.Arbitrary<Request[]>; refundFailures?: fc.Arbitrary<number> } = {}): fc.Arbitrary<Scenario> =>
  fc.record({
    billingFailures: fc.constantFrom(0, 1, 3, 4, 6, 9),
    refundFailures: over.refundFailures ?? fc.integer({ min: 0, max: 4 }),
    maxCompensationRuns: fc.integer({ min: 1, max: 2 }),
    maxBillingRequeues: fc.integer({ min: 0, max: 2 }),
    requests: over.requests ?? fc.array(requestArb, { minLength: 1, maxLength: 4 }),
    twice: fc.array(fc.boolean(), { maxLength: 30 }),
  });

async function expectEveryPromiseKept(scenarios: fc.Arbitrary<Scenario>, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(scenarios, fc.scheduler(), async (scenario, s) => {
      const world = await play(scenario, s);
      try {
        await expectPromisesKept(world);
      } catch (err) {
        (err as Error).message += `\n\nwhat happened:\n${world.trace.join('\n')}\n\norder:\n${JSON.stringify(await world.order(), null, 1)}`;
        throw err;
      }
    }),
    searchOptions(numRuns),
  );
}

describe("a person's requests interleaved at every store call with the monitor, the consumers and compensation", () => {
  it('an accepted request is carried out once or made moot, within the bounds, and the order ends with its money and stock right', async () => {
    await expectEveryPromiseKept(scenarioArb(), 120);
  });

  it('two people asking to compensate an order whose refunds keep failing: every request answered is carried out, and none left owed in attention', async () => {
    const compensate = fc.array(requestArb.map((r) => ({ ...r, action: 'compensate' as const })), { minLength: 2, maxLength: 4 });
    await expectEveryPromiseKept(scenarioArb({ requests: compensate, refundFailures: fc.integer({ min: 1, max: 6 }) }), 80);
  });

  it('requeues asked for while billing dead-letters and is requeued by the monitor are sent once each, within the bounds', async () => {
    const requeue = fc.array(requestArb.map((r) => ({ ...r, action: 'requeue' as const })), { minLength: 1, maxLength: 4 });
    await expectEveryPromiseKept(scenarioArb({ requests: requeue }).map((s) => ({ ...s, billingFailures: Math.max(s.billingFailures, 3) })), 80);
  });
});
