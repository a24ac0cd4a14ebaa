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
 * The Idempotency-Key's claim is two calls, as the Cosmos DB repository makes it: the create and, when
 * the key was already claimed, the read of its record; each may meet a fault of its own.
 *
 * In the last property the intake's waits run out too: its timers (`storeWaitMs` for the Cosmos DB
 * steps, `intakeWaitMs` for publishing and for the monitor's start, the wait for the publish-failed
 * note) run on jest's fake clock, and time passes only when the scheduler chooses: then the next
 * timer due fires, among the calls still under way. A call whose abort signal fires is answered with
 * an AbortError, or with its answer if that comes first, and lands, or not, when its turn comes, as
 * a request already sent does; a call started with its signal aborted is not sent. Past its wait
 * for Cosmos DB a request starts no write, nor publishing or the monitor; once answered it starts
 * no write but the monitor's start after a status read already under way (a step goes on); and a
 * request answered without an order named (a 4xx, or a 503 before its write was sent) wrote none,
 * then or later.
 *
 * The intake leaves an order whose client never came back to its monitor, or, when no monitor was
 * started, to the sweeper (src/support/monitorSweep.ts starts the monitor of an active order that
 * has none; a started monitor sends the event again to services that stay pending). That is
 * played once everything has settled, and then nothing may be lost. An unhandled rejection fails
 * the run (jest reports it, with where it was thrown).
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { AsyncLocalStorage } from 'node:async_hooks';
import fc from 'fast-check';
import type { OrderDocument } from '../../src/domain/order';
import { handleCreateOrder } from '../../src/http/orderRoutes';
import type { CallOptions, IdempotencyStore, MonitorClient } from '../../src/services/ports';
import type { OrderSagaDependencies } from '../../src/services/dependencies';
import { SERVICES, TARGET_PROPERTY } from '../../src/topology';
import { callsThrough } from './support/callsThrough';
import { searchOptions } from './support/searchOptions';
import { claimKey, memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

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
/** What the SDK answers a call whose abort signal fired (or had fired before it was sent). */
const aborted = () => Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' });

const signalOf = (args: readonly unknown[]): AbortSignal | undefined => (args.at(-1) as CallOptions | undefined)?.signal;

/**
 * `landing`'s outcome, or an AbortError once `signal` fired and `heard` let the abort through, whichever
 * comes first: an answer already on its way may still come after the abort. The call goes on either
 * way (it may land).
 */
function untilAborted<T>(landing: Promise<T>, signal: AbortSignal, heard: () => Promise<void>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const stop = () => void heard().then(() => reject(aborted()));
    signal.addEventListener('abort', stop, { once: true });
    void landing.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
  });
}

/** Calls that write (`idempotency.insert` is the claim's create): past its wait for Cosmos DB a request starts none (see `send`). */
const WRITES = new Set(['orders.create', 'orders.appendTimeline', 'orders.transitionStatus', 'orders.transitionState', 'idempotency.insert', 'publisher.publish', 'monitor.start']);

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

/** The intake's waits, on a clock that moves when the scheduler lets it. */
interface Waits {
  storeWaitMs: number;
  intakeWaitMs: number;
  /** Scheduled turns the clock waits before the next timer due fires: the higher, the rarer a wait runs out. */
  pace: number;
}

interface Scenario {
  keys: number;
  clients: ClientPlan[];
  /** A dependency that refuses every call (503) while the clients' planned attempts run. */
  outage?: Dependency;
  /** A consumer takes each event as it lands on the topic (marking the order `published`). */
  consume: boolean;
  /** When given, the intake's waits may run out while the clients' planned attempts run. */
  waits?: Waits;
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
  /** Its host died before it answered: nobody heard the answer. */
  died: boolean;
  /** Something befell one of its calls (its own fault, or the outage). */
  faulted: boolean;
  status?: number;
  orderId?: string;
  /** The waits of it that ran out (their ms), as the clock fired them. */
  ranOut: number[];
  /** The handler has answered (heard or not). */
  answered: boolean;
  /** Orders its create wrote (it landed and created them), whenever it landed. */
  wrote: string[];
}

/** The attempt whose code is running: a timer it sets is its wait. */
const running = new AsyncLocalStorage<Attempt>();

const silent = () => new InvocationContext({ functionName: 'createOrder', invocationId: 'inv', logHandler: () => undefined });

class World {
  readonly deps: MemoryDependencies;
  readonly monitor = new RecordingMonitor();
  readonly attempts: Attempt[] = [];
  /** Broken promises, seen as they happen. */
  readonly unexpected: string[] = [];
  readonly trace: string[] = [];
  /** Per client: done once it got a 202 or a 4xx, or gave up as its contract tells it to. */
  readonly finished: boolean[];
  /** Orders whose monitor the intake started (before the sweeper looked). */
  readonly monitoredByIntake = new Set<string>();
  private gate: (label: string) => Promise<void> = async () => undefined;
  private quiet = false;
  private live = 0;
  private idle?: () => void;
  private ticking = false;
  /** Calls sent and not yet landed (or failed). */
  inFlight = 0;

  constructor(readonly scenario: Scenario) {
    this.deps = memoryDependencies(scenario.waits ? { storeWaitMs: scenario.waits.storeWaitMs, intakeWaitMs: scenario.waits.intakeWaitMs } : {});
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

  /**
   * Time, on jest's fake clock: each timer set while an attempt runs is its wait. Every `pace`
   * scheduled turns the next timer due fires. Resolves when the requests wait for nothing that
   * could still happen (no call under way, no timer), which no request may do.
   */
  startClock(s: fc.Scheduler, pace: number): Promise<void> {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'hrtime', 'performance'] });
    const fakeSetTimeout = globalThis.setTimeout;
    globalThis.setTimeout = ((handler: () => void, ms?: number) => {
      const attempt = running.getStore();
      return fakeSetTimeout(() => {
        if (attempt) {
          attempt.ranOut.push(ms ?? 0);
          this.trace.push(`client ${attempt.client}#${attempt.n}: its wait of ${ms} ms ran out`);
        }
        handler();
      }, ms);
    }) as unknown as typeof setTimeout;
    this.ticking = true;
    return new Promise<void>((stuck) => {
      void (async () => {
        let idle = 0;
        while (this.ticking) {
          for (let turn = 0; turn < pace && this.ticking; turn++) await s.schedule(Promise.resolve(), 'time passes');
          if (!this.ticking) break;
          if (jest.getTimerCount() > 0) {
            idle = 0;
            jest.advanceTimersToNextTimer();
          } else if (s.count() > 0) idle = 0;
          else if (++idle >= 3) {
            this.unexpected.push('requests wait for nothing that can still happen');
            this.ticking = false;
            stuck();
          }
        }
      })();
    });
  }

  /** Back to real time, once every request has its answer: by then each of their waits has ended. */
  stopClock(): void {
    this.ticking = false;
    const left = jest.getTimerCount();
    if (left > 0) this.unexpected.push(`${left} waits still set after every request was answered`);
    jest.useRealTimers();
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
    const attempt: Attempt = { client, n, correlationId: `corr-${client}-${n}`, died: false, faulted: false, ranOut: [], answered: false, wrote: [] };
    // Its host died (before or after it answered): nothing it asks for lands any more.
    const state = { calls: 0, hostDied: false };
    // The abort signals of its waits for Cosmos DB: one that fired means that wait ran out.
    const signals = new Set<AbortSignal>();
    /** The call as it meets its turn, its planned fault and the outage. */
    const landOnce = async (name: string, dependency: Dependency, write: () => Promise<unknown>) => {
      if (state.calls + 1 === stall?.at) for (let turn = 0; turn < stall.turns; turn++) await this.gate(`${label}: held up`);
      await this.gate(`${label}: ${name}`);
      if (state.hostDied) throw new HostDied();
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
      const result = await write();
      if (faulty && fault.kind === 'unanswered') throw unanswered();
      if (faulty && fault.kind === 'dies') {
        state.hostDied = true;
        // A host that dies once the answer is out (a call outlived its wait) takes nothing from the client.
        if (!attempt.answered) attempt.died = true;
        throw new HostDied();
      }
      return result;
    };
    const land = async (name: string, dependency: Dependency, write: () => Promise<unknown>) => {
      this.inFlight++;
      try {
        return await landOnce(name, dependency, write);
      } finally {
        this.inFlight--;
      }
    };
    const call = (name: string, dependency: Dependency, write: () => Promise<unknown>, args: readonly unknown[]) => {
      const what = `${dependency}.${name}`;
      const signal = signalOf(args);
      if (signal) signals.add(signal);
      const storeWaitRanOut = [...signals].some((s) => s.aborted);
      // Past its wait for Cosmos DB "no later step runs": no write, and nothing of publishing or the monitor.
      if (storeWaitRanOut && (WRITES.has(what) || dependency === 'publisher' || dependency === 'monitor')) {
        this.unexpected.push(`${label}: ${what} started after its wait for Cosmos DB ran out`);
      }
      // Once answered, a step still running goes on: the monitor's start after its status read, no other write.
      if (attempt.answered && WRITES.has(what) && what !== 'monitor.start') this.unexpected.push(`${label}: ${what} started after its answer`);
      if (signal?.aborted) {
        this.trace.push(`${label}: ${name} not sent (its wait ran out)`);
        return Promise.reject(aborted());
      }
      const landing = land(name, dependency, async () => {
        const result = await write();
        if (what === 'orders.create' && (result as { created: boolean }).created) attempt.wrote.push((args[0] as OrderDocument).id);
        return result;
      });
      return signal ? untilAborted(landing, signal, () => this.gate(`${label}: ${name} aborted`)) : landing;
    };
    const view = <T extends object>(target: T, dependency: Dependency): T => callsThrough(target, (name, write, args) => call(name, dependency, write, args));
    const base = this.deps;
    const keys = view(base.idempotency, 'idempotency');
    const idempotency: IdempotencyStore = {
      claim: (record, options) => claimKey(keys, record, options),
      find: (key, options) => keys.find(key, options),
    };
    const deps: OrderSagaDependencies = {
      ...base,
      orders: view(base.orders, 'orders'),
      idempotency,
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
      res = await running.run(attempt, () => handleCreateOrder(request, silent(), () => ({ deps, monitor })));
    } catch (err) {
      this.unexpected.push(`${label}: the handler threw ${String(err)}`);
      return attempt;
    } finally {
      attempt.answered = true;
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
          if (!this.quiet && !attempt.faulted && attempt.ranOut.length === 0) this.unexpected.push(`client ${client}#${n}: 503 though no call of it failed and no wait of it ran out`);
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
    for (const id of this.monitor.instances.keys()) this.monitoredByIntake.add(id);
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
  const stuck = scenario.waits ? world.startClock(s, scenario.waits.pace) : new Promise<void>(() => undefined);
  scenario.clients.forEach((plan, client) => world.client(client, Math.max(1, plan.attempts.length)));
  const answered = await s.waitFor(Promise.race([world.settled().then(() => true), stuck.then(() => false)]));
  if (scenario.waits) world.stopClock();
  if (!answered) return world;

  // Every dependency is up again: a client still owed an answer sends again, and must get one,
  // while calls of earlier requests that outlived their waits still land.
  world.inSequence();
  scenario.clients.forEach((_, client) => world.client(client, 2));
  await s.waitFor(world.settled());
  for (let round = 0; world.inFlight > 0 && round < 100; round++) await s.waitIdle();
  if (world.inFlight > 0) world.unexpected.push(`${world.inFlight} calls never ended`);
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
    // Its client's retries saw it through: its event on the topic once, its monitor started by the intake.
    const events = deps.publisher.sent.filter((m) => m.messageId === order.eventId).length;
    expect({ key, events, monitored: world.monitoredByIntake.has(order.id) }).toEqual({ key, events: 1, monitored: true });
  }

  // Every 202 names an order that exists.
  for (const a of attempts.filter((a) => a.status === 202)) expect(deps.orders.docs.has(a.orderId!)).toBe(true);

  // A request wrote no order but the one its answer names: one answered with none named (a 4xx, or
  // a 503 before its write was sent) wrote none, then or later, whoever else wrote one for its key.
  for (const a of attempts.filter((a) => !a.died)) {
    expect({ attempt: `${a.client}#${a.n}`, wrote: a.wrote.filter((id) => id !== a.orderId) }).toEqual({ attempt: `${a.client}#${a.n}`, wrote: [] });
  }
  // A 503 naming an order to a client without a key names the order it sent: there, or never written
  // (a 404 at its statusUrl).
  for (const a of attempts.filter((a) => a.status === 503 && a.orderId !== undefined && scenario.clients[a.client]!.key === undefined)) {
    const named = deps.orders.docs.get(a.orderId!);
    const sent = named === undefined || named.correlationId === a.correlationId;
    expect({ attempt: `${a.client}#${a.n}`, named: a.orderId, sent }).toEqual({ attempt: `${a.client}#${a.n}`, named: a.orderId, sent: true });
  }

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

/**
 * A request makes up to nine calls: two catalog reads, the claim's create (and read, when the key
 * was claimed), the order's create, the publish, the monitor's status read (for an order that
 * existed) and start, the publish-failed note.
 */
const faultArb = ({ none, some }: Odds): fc.Arbitrary<Fault | undefined> =>
  fc.oneof(
    { arbitrary: fc.constant(undefined), weight: none },
    { arbitrary: fc.record({ at: fc.integer({ min: 1, max: 9 }), kind: fc.constantFrom<FaultKind>('refused', 'unavailable', 'unanswered', 'dies', 'dies') }), weight: some },
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
 * The waits as deployed (10 s for Cosmos DB, 5 s for publishing and the monitor) or shorter, so
 * that now one, now another runs out first; the 1 s wait for the publish-failed note is the intake's own.
 */
const waitsArb: fc.Arbitrary<Waits> = fc.record({
  storeWaitMs: fc.constantFrom(10_000, 2_000),
  intakeWaitMs: fc.constantFrom(5_000, 500),
  pace: fc.integer({ min: 1, max: 8 }),
});

/**
 * One or two keys, each sent two or three times at once with its body, now and then also with
 * another body or one the API refuses; a request or two with no key; faults now and then; with
 * `withWaits`, the intake's waits running out.
 */
const scenarioArb = (odds: Odds, withWaits = false): fc.Arbitrary<Scenario> =>
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
      waits: withWaits ? waitsArb : fc.constant(undefined),
    })
    .map(({ keys, same, extra, unkeyed, faults, reordered, outage, consume, waits }) => {
      const clients: ClientPlan[] = [];
      for (let key = 0; key < keys; key++) {
        for (let copy = 0; copy < same[key]!; copy++) {
          const i = key * 3 + copy;
          clients.push({ key, body: 'same', reordered: reordered[i % 6]!, attempts: faults[i % 6]! });
        }
      }
      clients.push(...extra.map((c) => ({ ...c, key: c.key! % keys })), ...unkeyed);
      return { keys, clients, consume, ...(outage ? { outage } : {}), ...(waits ? { waits } : {}) };
    });

async function expectEveryPromiseKept(scenarios: fc.Arbitrary<Scenario>, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(scenarios, fc.scheduler(), async (scenario, s) => {
      const world = await play(scenario, s).finally(() => jest.useRealTimers());
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

  it('keeps every promise also when the waits for Cosmos DB, Service Bus and the monitor run out between any two calls', async () => {
    await expectEveryPromiseKept(scenarioArb({ none: 3, some: 1 }, true), 200);
  });
});
