/**
 * Properties of `POST /api/orders` under concurrent requests whose steps interleave at every call
 * the intake makes to the order store, the idempotency store, the catalog, Service Bus and the
 * monitor, in an order fast-check chooses.
 *
 * The requests are the real handler (`handleCreateOrder`) on the in-memory stores. At once: the
 * same Idempotency-Key sent two or three times with the same body (its JSON written differently),
 * the same key with another body, a body today's rules refuse, one naming an unknown SKU, requests
 * with no key. What befalls a request at one of its calls: the call is refused before it lands
 * (429, or 503), it lands and its answer is lost (a timeout), or it lands and the host dies (the
 * request's promise is abandoned; nothing it asks for after that lands). A whole dependency may be
 * down while the requests run, and a consumer may take the event (marking the order `published`)
 * while the requests still work. Each client retries with its key until it gets a 202 or a 4xx; once
 * every dependency is up, the retry must work.
 *
 * The intake leaves an order whose client never came back to its monitor, or, when no monitor was
 * started, to the sweeper (src/support/monitorSweep.ts starts the monitor of an active order that
 * has none; a started monitor sends the event again to services that stay pending). That is
 * played once everything has settled, and then nothing may be lost.
 *
 * Not played here: a call outliving the intake's waits (`storeWaitMs`, `intakeWaitMs`). Those are
 * real timers, which the scheduler does not drive; test/unit/orderRoutes.test.ts covers each.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import fc from 'fast-check';
import type { OrderDocument } from '../../src/domain/order';
import { handleCreateOrder } from '../../src/http/orderRoutes';
import type { MonitorClient } from '../../src/services/ports';
import type { OrderSagaDependencies } from '../../src/services/dependencies';
import { SERVICES, TARGET_PROPERTY } from '../../src/topology';
import { callsThrough } from './support/callsThrough';
import { searchOptions } from './support/searchOptions';
import { memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

/** What the host dying looks like to the request it was running: nothing it asks for lands any more. */
class HostDied extends Error {
  constructor() {
    super('host died');
  }
}

type FaultKind = 'refused' | 'unavailable' | 'unanswered' | 'dies';

/** What befalls a request at its `at`-th call. */
interface Fault {
  at: number;
  kind: FaultKind;
}

/** A call not served (Cosmos DB's 429 past the SDK's retries, or a 503): it did not land. */
const notServed = (kind: 'refused' | 'unavailable') =>
  kind === 'refused' ? Object.assign(new Error('Request rate is large'), { code: 429, retryAfterInMs: 50 }) : Object.assign(new Error('Service Unavailable'), { code: 503 });
/** A call that landed and whose answer never came back. */
const unanswered = () => Object.assign(new Error('request timed out'), { code: 'TimeoutError' });

type Dependency = 'orders' | 'idempotency' | 'inventory' | 'publisher' | 'monitor';

/**
 * What a client sends: `same` (its key's body), `other` (another body under the same key: another
 * customer, or the same lines with `simulate`), `overLimit` (one SKU past the line limit over two
 * lines, refused by today's rules, which reads the key's record before it answers), `unknownSku`.
 */
type BodyKind = 'same' | 'other' | 'otherSimulate' | 'overLimit' | 'unknownSku';

interface ClientPlan {
  /** Index into the scenario's keys; undefined: the client sends no Idempotency-Key. */
  key?: number;
  body: BodyKind;
  /** The body's JSON with its fields in the other order: the same body to the API. */
  reordered: boolean;
  /** What befalls each of its attempts while everything runs at once; attempts past these go well. */
  attempts: (Fault | undefined)[];
  /** Before its `at`-th call the request lets `turns` scheduled steps go by (a slow host), so others get ahead. */
  stall?: { at: number; turns: number };
}

interface Scenario {
  keys: number;
  clients: ClientPlan[];
  /** A dependency that refuses every call (503) while the clients' planned attempts run. */
  outage?: Dependency;
  /** A consumer takes each event as it lands on the topic (marking the order `published`). */
  consume: boolean;
}

const BODIES: Record<BodyKind, object> = {
  same: { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 2 }, { sku: 'KEYBOARD-01', quantity: 1 }] },
  other: { customerId: 'c-2', items: [{ sku: 'MOUSE-01', quantity: 2 }, { sku: 'KEYBOARD-01', quantity: 1 }] },
  otherSimulate: { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 2 }, { sku: 'KEYBOARD-01', quantity: 1 }], simulate: { billingFailures: 1 } },
  overLimit: { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 600 }, { sku: 'MOUSE-01', quantity: 401 }] },
  unknownSku: { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 1 }, { sku: 'NOPE-1', quantity: 1 }] },
};
/** Bodies the API takes: an order with one of them exists for the key that first carried it. */
const VALID: readonly BodyKind[] = ['same', 'other', 'otherSimulate'];

function json(kind: BodyKind, reordered: boolean): string {
  const body = BODIES[kind] as Record<string, unknown>;
  return JSON.stringify(reordered ? Object.fromEntries(Object.entries(body).reverse()) : body);
}

/** What one attempt came to. */
interface Attempt {
  client: number;
  n: number;
  correlationId: string;
  /** Its host died: nobody heard the answer. */
  died: boolean;
  /** Something befell one of its calls (its own fault, or the outage). */
  faulted: boolean;
  status?: number;
  orderId?: string;
}

const silent = () => new InvocationContext({ functionName: 'createOrder', invocationId: 'inv', logHandler: () => undefined });

class World {
  readonly deps: MemoryDependencies = memoryDependencies();
  readonly monitor = new RecordingMonitor();
  readonly attempts: Attempt[] = [];
  /** Broken promises, seen as they happen. */
  readonly unexpected: string[] = [];
  readonly trace: string[] = [];
  /** Per client: done once it got a 202 or a 4xx, or gave up as its contract tells it to. */
  readonly finished: boolean[];
  private gate: (label: string) => Promise<void> = async () => undefined;
  private quiet = false;
  private live = 0;
  private idle?: () => void;

  constructor(readonly scenario: Scenario) {
    this.finished = scenario.clients.map(() => false);
  }

  interleave(gate: (label: string) => Promise<void>): void {
    this.gate = gate;
  }

  /** Every dependency is up, nothing fails and every call lands at once. */
  inSequence(): void {
    this.gate = async () => undefined;
    this.quiet = true;
  }

  settled(): Promise<void> {
    return this.live === 0 ? Promise.resolve() : new Promise((resolve) => (this.idle = resolve));
  }

  spawn(work: () => Promise<void>): void {
    this.live++;
    void work()
      .catch((err: unknown) => void this.unexpected.push(`threw: ${String(err)}`))
      .finally(() => {
        if (--this.live === 0) this.idle?.();
      });
  }

  /** One request of `client`, with its own view of the dependencies, each call waiting for the scheduler. */
  private async send(client: number, n: number): Promise<Attempt> {
    const plan = this.scenario.clients[client]!;
    const fault = this.quiet ? undefined : plan.attempts[n - 1];
    const stall = this.quiet || n > 1 ? undefined : plan.stall;
    const outage = this.quiet ? undefined : this.scenario.outage;
    const label = `client ${client}#${n}`;
    const attempt: Attempt = { client, n, correlationId: `corr-${client}-${n}`, died: false, faulted: false };
    const state = { calls: 0 };
    const call = async (name: string, dependency: Dependency, land: () => Promise<unknown>) => {
      if (state.calls + 1 === stall?.at) for (let turn = 0; turn < stall.turns; turn++) await this.gate(`${label}: held up`);
      await this.gate(`${label}: ${name}`);
      if (attempt.died) throw new HostDied();
      const at = ++state.calls;
      if (dependency === outage) {
        attempt.faulted = true;
        this.trace.push(`${label}: ${name} (${dependency} down)`);
        throw notServed('unavailable');
      }
      const faulty = at === fault?.at;
      if (faulty) {
        attempt.faulted = true;
        this.trace.push(`${label}: ${name} ${fault.kind}`);
      }
      if (faulty && (fault.kind === 'refused' || fault.kind === 'unavailable')) throw notServed(fault.kind);
      const result = await land();
      if (faulty && fault.kind === 'unanswered') throw unanswered();
      if (faulty && fault.kind === 'dies') {
        attempt.died = true;
        throw new HostDied();
      }
      return result;
    };
    const view = <T extends object>(target: T, dependency: Dependency): T => callsThrough(target, (name, land) => call(name, dependency, land));
    const base = this.deps;
    const deps: OrderSagaDependencies = {
      ...base,
      orders: view(base.orders, 'orders'),
      idempotency: view(base.idempotency, 'idempotency'),
      inventory: view(base.inventory, 'inventory'),
      publisher: view(base.publisher, 'publisher'),
    };
    const monitor: MonitorClient = view(this.monitor, 'monitor');
    const key: Record<string, string> = plan.key === undefined ? {} : { 'Idempotency-Key': `key-${plan.key}` };
    const request = new HttpRequest({
      method: 'POST',
      url: 'http://localhost:7071/api/orders',
      body: { string: json(plan.body, plan.reordered) },
      headers: { 'content-type': 'application/json', 'x-correlation-id': attempt.correlationId, ...key },
    });
    let res: HttpResponseInit;
    try {
      res = await handleCreateOrder(request, silent(), () => ({ deps, monitor }));
    } catch (err) {
      this.unexpected.push(`${label}: the handler threw ${String(err)}`);
      return attempt;
    }
    if (attempt.died) {
      this.trace.push(`${label}: died`);
      return attempt;
    }
    attempt.status = res.status;
    attempt.orderId = (res.jsonBody as { orderId?: string } | undefined)?.orderId;
    this.trace.push(`${label}: ${res.status} ${attempt.orderId ?? ''} ${res.status === 202 ? '' : ((res.jsonBody as { detail?: string })?.detail ?? '')}`);
    if (res.status === 202) this.expectSeenThroughAt202(label, attempt.orderId!);
    return attempt;
  }

  /**
   * The moment a 202 is given, its order exists, its event is on the topic (or a consumer already
   * has it) and its monitor is running: the answer is given only after all three.
   */
  private expectSeenThroughAt202(label: string, orderId: string): void {
    const order = this.deps.orders.docs.get(orderId);
    if (!order) return void this.unexpected.push(`${label}: 202 names ${orderId}, which does not exist`);
    if (!this.deps.publisher.sent.some((m) => m.messageId === order.eventId)) this.unexpected.push(`${label}: 202 for ${orderId} before its event was published`);
    if (!this.monitor.instances.has(orderId)) this.unexpected.push(`${label}: 202 for ${orderId} before its monitor was started`);
  }

  /**
   * A client: sends, and after an answer that asks for it (a 503, or no answer at all) sends again
   * with its key, up to its planned attempts; a client with no key sends again only after a 503
   * that names no order (nothing was placed). It stops at a 202 or a 4xx.
   */
  client(client: number, attempts: number): void {
    this.spawn(async () => {
      const plan = this.scenario.clients[client]!;
      for (let i = 0; i < attempts && !this.finished[client]; i++) {
        const n = this.attempts.filter((a) => a.client === client).length + 1;
        const attempt = await this.send(client, n);
        this.attempts.push(attempt);
        if (attempt.died) {
          // Without a key, sending again could place the order twice: such a client follows up
          // another way (it has no order id to follow), which is no business of the intake.
          if (plan.key === undefined) this.finished[client] = true;
          continue;
        }
        const status = attempt.status!;
        if (status === 503) {
          if (!this.quiet && !attempt.faulted) this.unexpected.push(`client ${client}#${n}: 503 though no call of it failed`);
          // Told the order was recorded: a client without a key follows it at its statusUrl.
          if (plan.key === undefined && attempt.orderId !== undefined) this.finished[client] = true;
          continue;
        }
        if (status >= 500 || status === undefined) this.unexpected.push(`client ${client}#${n}: answered ${status}`);
        this.finished[client] = true;
      }
    });
  }

  /** A consumer taking the order's event: the first one records that it was published. */
  consume(orderId: string): void {
    this.spawn(async () => {
      await this.gate(`consumer ${orderId.slice(0, 8)}`);
      await this.deps.orders.transitionStatus(orderId, { service: 'inventory', from: ['pending'], to: 'processing', published: true });
    });
  }

  /**
   * The sweeper's promise for the orders left behind: an active order with no monitor gets one.
   * (The monitor then sends the event again to each service still pending.)
   */
  async sweep(): Promise<void> {
    for (const order of this.deps.orders.docs.values()) {
      if (!this.monitor.instances.has(order.id)) await this.monitor.start(order.id, { orderId: order.id, correlationId: order.correlationId });
    }
  }
}

async function play(scenario: Scenario, s: fc.Scheduler): Promise<World> {
  const world = new World(scenario);
  if (scenario.consume) {
    const publish = world.deps.publisher.publish.bind(world.deps.publisher);
    world.deps.publisher.publish = async (message) => {
      const before = world.deps.publisher.sent.length;
      await publish(message);
      if (world.deps.publisher.sent.length > before) world.consume(String(message.applicationProperties?.order_id));
    };
  }
  world.interleave((label) => s.schedule(Promise.resolve(), label));
  scenario.clients.forEach((plan, client) => world.client(client, Math.max(1, plan.attempts.length)));
  await s.waitFor(world.settled());

  // Every dependency is up again: a client still owed an answer sends again, and must get one.
  world.inSequence();
  scenario.clients.forEach((_, client) => world.client(client, 2));
  await world.settled();
  await world.sweep();
  return world;
}

function expectPromisesKept(world: World): void {
  const { scenario, attempts, deps, monitor } = world;
  expect(world.unexpected).toEqual([]);
  const orders = [...deps.orders.docs.values()];

  // Every client got its answer once every dependency was up.
  scenario.clients.forEach((plan, client) => {
    const answers = attempts.filter((a) => a.client === client && !a.died).map((a) => a.status);
    if (plan.key !== undefined) expect({ client, finished: world.finished[client], last: answers.at(-1) }).toEqual({ client, finished: true, last: expect.any(Number) });
    // A body today's rules refuse is 400 whatever the stores do; an unknown SKU is 400 once the catalog can be read.
    if (plan.body === 'overLimit') expect({ client, answers: [...new Set(answers)] }).toEqual({ client, answers: [400] });
    const last = attempts.filter((a) => a.client === client).at(-1)!;
    if (plan.body === 'unknownSku' && !last.died) expect({ client, last: last.status }).toEqual({ client, last: 400 });
  });

  for (let key = 0; key < scenario.keys; key++) {
    const clients = scenario.clients.map((plan, client) => ({ plan, client })).filter(({ plan }) => plan.key === key);
    if (!clients.some(({ plan }) => VALID.includes(plan.body))) continue;
    const keyed = orders.filter((o) => o.idempotencyKey === `key-${key}`);
    // Per key exactly one order.
    expect({ key, orders: keyed.length }).toEqual({ key, orders: 1 });
    const [order] = keyed as [OrderDocument];
    const record = deps.idempotency.records.get(`key-${key}`)!;
    expect(record.orderId).toBe(order.id);
    // The order is the body of whichever request claimed the key first; every other body gets 409/422, never 202.
    const ownBody = (kind: BodyKind) => {
      const body = BODIES[kind] as { customerId: string; simulate?: unknown };
      return body.customerId === order.customerId && (body.simulate !== undefined) === (order.simulate !== undefined);
    };
    for (const { plan, client } of clients.filter(({ plan }) => VALID.includes(plan.body))) {
      const answers = attempts.filter((a) => a.client === client && !a.died);
      const last = answers.at(-1)!;
      if (ownBody(plan.body)) expect({ client, last: last.status }).toEqual({ client, last: 202 });
      else {
        const final = answers.filter((a) => a.status === 202 || (a.status! >= 400 && a.status! < 500)).map((a) => a.status);
        expect({ client, final, conflict: final.length === 1 && [409, 422].includes(final[0]!) }).toEqual({ client, final, conflict: true });
      }
    }
    // Every order id answered for the key (202s, and 503s naming the order) is that order.
    const named = attempts.filter((a) => scenario.clients[a.client]!.key === key && a.orderId !== undefined).map((a) => a.orderId);
    expect({ key, named: [...new Set(named)] }).toEqual({ key, named: [order.id] });
  }

  // Every 202 names an order that exists.
  for (const a of attempts.filter((a) => a.status === 202)) expect(deps.orders.docs.has(a.orderId!)).toBe(true);

  // A client without a key told "nothing was placed" (a 503 naming no order) placed nothing.
  for (const a of attempts.filter((a) => a.status === 503 && a.orderId === undefined && scenario.clients[a.client]!.key === undefined)) {
    expect({ attempt: `${a.client}#${a.n}`, placed: orders.filter((o) => o.correlationId === a.correlationId).map((o) => o.id) }).toEqual({ attempt: `${a.client}#${a.n}`, placed: [] });
  }

  // Every key claimed has its order: each keyed client retried until it got an answer.
  for (const record of deps.idempotency.records.values()) expect(deps.orders.docs.has(record.orderId)).toBe(true);

  // Events: each names an order that exists, with its event id as messageId, so an order has one
  // OrderCreated on the topic however many times it was sent (duplicate detection drops the rest).
  for (const message of [...deps.publisher.sent, ...deps.publisher.duplicates]) {
    const order = deps.orders.docs.get(String(message.applicationProperties?.order_id));
    expect(order).toBeDefined();
    expect(message.applicationProperties?.[TARGET_PROPERTY]).toBeUndefined();
    expect(message.messageId).toBe(order!.eventId);
  }

  // Nothing is lost: every order has a monitor, and its event is on the topic or, still pending
  // everywhere, the monitor sends it again.
  for (const order of orders) {
    expect(monitor.instances.has(order.id)).toBe(true);
    const published = deps.publisher.sent.some((m) => m.messageId === order.eventId);
    if (!published) expect({ order: order.id, state: order.state, status: order.status }).toEqual({ order: order.id, state: 'accepted', status: Object.fromEntries(SERVICES.map((s) => [s, 'pending'])) });
  }
}

/** How often an attempt meets nothing, and how often a fault. */
interface Odds {
  none: number;
  some: number;
}

const faultArb = ({ none, some }: Odds): fc.Arbitrary<Fault | undefined> =>
  fc.oneof(
    { arbitrary: fc.constant(undefined), weight: none },
    { arbitrary: fc.record({ at: fc.integer({ min: 1, max: 7 }), kind: fc.constantFrom<FaultKind>('refused', 'unavailable', 'unanswered', 'dies', 'dies') }), weight: some },
  );

const clientArb = (key: fc.Arbitrary<number | undefined>, body: fc.Arbitrary<BodyKind>, odds: Odds): fc.Arbitrary<ClientPlan> =>
  fc
    .record({
      key,
      body,
      reordered: fc.boolean(),
      attempts: fc.array(faultArb(odds), { minLength: 1, maxLength: 3 }),
      stall: fc.option(fc.record({ at: fc.integer({ min: 1, max: 6 }), turns: fc.integer({ min: 1, max: 20 }) }), { nil: undefined, freq: 3 }),
    })
    .map(({ key: k, stall, ...rest }) => ({ ...rest, ...(k === undefined ? {} : { key: k }), ...(stall ? { stall } : {}) }));

/**
 * One or two keys, each sent two or three times at once with its body, now and then also with
 * another body or one the API refuses; a request or two with no key; faults now and then.
 */
const scenarioArb = (odds: Odds): fc.Arbitrary<Scenario> =>
  fc
    .record({
      keys: fc.integer({ min: 1, max: 2 }),
      same: fc.array(fc.integer({ min: 2, max: 3 }), { minLength: 2, maxLength: 2 }),
      extra: fc.array(clientArb(fc.integer({ min: 0, max: 1 }), fc.constantFrom<BodyKind>('other', 'otherSimulate', 'overLimit', 'unknownSku'), odds), { maxLength: 2 }),
      unkeyed: fc.array(clientArb(fc.constant(undefined), fc.constantFrom<BodyKind>('same', 'same', 'unknownSku'), odds), { maxLength: 2 }),
      faults: fc.array(fc.array(faultArb(odds), { minLength: 1, maxLength: 3 }), { minLength: 6, maxLength: 6 }),
      reordered: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
      outage: fc.option(fc.constantFrom<Dependency>('orders', 'idempotency', 'inventory', 'publisher', 'monitor'), { nil: undefined, freq: 4 }),
      consume: fc.boolean(),
    })
    .map(({ keys, same, extra, unkeyed, faults, reordered, outage, consume }) => {
      const clients: ClientPlan[] = [];
      for (let key = 0; key < keys; key++) {
        for (let copy = 0; copy < same[key]!; copy++) {
          const i = key * 3 + copy;
          clients.push({ key, body: 'same', reordered: reordered[i % 6]!, attempts: faults[i % 6]! });
        }
      }
      clients.push(...extra.map((c) => ({ ...c, key: c.key! % keys })), ...unkeyed);
      return { keys, clients, consume, ...(outage ? { outage } : {}) };
    });

async function expectEveryPromiseKept(scenarios: fc.Arbitrary<Scenario>, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(scenarios, fc.scheduler(), async (scenario, s) => {
      const world = await play(scenario, s);
      try {
        expectPromisesKept(world);
      } catch (err) {
        (err as Error).message += `\n\nwhat happened:\n${world.trace.join('\n')}\n\norders: ${JSON.stringify([...world.deps.orders.docs.values()].map((o) => ({ id: o.id, key: o.idempotencyKey, customerId: o.customerId, correlationId: o.correlationId })))}`;
        throw err;
      }
    }),
    searchOptions(numRuns),
  );
}

describe('order intake with concurrent requests interleaved at every store, publisher and monitor call', () => {
  it('gives one order per Idempotency-Key, one event per order, 202 only for the body that claimed the key, and loses nothing', async () => {
    await expectEveryPromiseKept(scenarioArb({ none: 2, some: 1 }), 200);
  });

  it('keeps every promise also when nearly every request meets a fault', async () => {
    await expectEveryPromiseKept(scenarioArb({ none: 1, some: 4 }), 150);
  });
});
