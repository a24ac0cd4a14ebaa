/**
 * Properties of the monitor sweep (src/support/monitorSweep.ts) that operators rely on, run the way
 * its timer runs it (triggers/monitorSweeper.ts): the cursor lives in the process's memory only; each
 * run is handed the cursor the last one returned; a run that throws leaves it as it was (the handler
 * rejects, the host logs that, and the next run starts where the failed one did); a process that
 * starts again begins at ''. The timer is a singleton, one instance of the app runs it at a time, but
 * which one may change, each with the cursor it kept itself.
 *
 * The active orders are a model of the query `CosmosActiveOrders` makes: the orders in `accepted`,
 * `processing` or `compensating` created at or after the cursor's time and before `now - graceMs`, but
 * those whose ids it is to leave out, by `createdAt` ascending, the first TOP of them (TOP at most
 * MAX_ACTIVE_PAGE, whatever the run asks for). Cosmos DB gives no order among equal times, and may
 * give them in another order on each query: a scenario draws how ties fall (by id, against it, in a
 * fixed random order, or in a new one on each query). The monitors are a model of the durable client:
 * a start of an instance that is on the job leaves it be ('exists'); a start of one that completed,
 * failed or was terminated, or of none, starts it.
 *
 * Commands drawn at random: orders created (one or several in one millisecond, bursts of more than a
 * batch, in a few cases of more than a page; some stamped a while before they are written; some whose
 * intake could not start their monitor), orders moving between states and finishing (their monitor
 * then completes), monitors failing, terminated, purged, completing while their order is open,
 * suspended or resumed by a person, the clock moving (any of these also while a run is under way,
 * before one of its calls), timer runs, the process starting again, the timer moving to another
 * instance, and one call failing: the query, a status read, or a start (refused, or carried out with
 * its answer lost).
 *
 * After every run:
 * - it throws only when one of its calls failed; it asks for at most MAX_ACTIVE_PAGE orders, and makes
 *   a bounded number of calls;
 * - its cursor is '' or parses, and names only orders created at its time, each once;
 * - it starts a monitor only for an order its query returned, after reading that monitor's status in
 *   the same run as not on the job: a monitor on the job is never started again;
 * - it reports the monitors it started.
 * Then, with no more changes and no faults, every order past the grace period:
 * - every active order whose monitor is not on the job has one within the rest of the pass under way
 *   and the next pass up to it, however ties fall: floor((A + U) / batch) + 2 runs, A being the
 *   number of active orders and U those of the cursor's time it has not checked (the next pass may
 *   check them again before it reaches an order of that time the cursor had passed);
 * - a further pass, and a pass of a process that starts again, start nothing.
 */
import fc from 'fast-check';
import { seededRandom } from '../../bench/seededRandom';
import type { OrderState } from '../../src/domain/order';
import { TransientError } from '../../src/errors';
import { createLogger } from '../../src/log';
import type { MonitorClient, MonitorStatus } from '../../src/services/ports';
import { MAX_ACTIVE_PAGE, sweepMonitors, type ActiveOrder, type ActiveOrderSource, type SweepReport, type SweepSettings } from '../../src/support/monitorSweep';
import { searchOptions } from './support/searchOptions';

const START = Date.UTC(2026, 0, 1);
const ACTIVE: readonly OrderState[] = ['accepted', 'processing', 'compensating'];
type RuntimeStatus = 'Running' | 'Pending' | 'ContinuedAsNew' | 'Suspended' | 'Completed' | 'Failed' | 'Terminated';
/** The runtime statuses of a monitor still on the job (a suspended one was stopped by a person). */
const ON_THE_JOB: readonly RuntimeStatus[] = ['Running', 'Pending', 'ContinuedAsNew', 'Suspended'];
/** Instances of the app the timer may run on. */
const HOSTS = 3;
/** The timer's period. */
const TICK_MS = 30_000;
const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });
const orderIdOf = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

// ---------------------------------------------------------------------------------------------
// Commands

/** How Cosmos DB orders equal `createdAt`s: by id, against it, in one random order, or in a new one on each query. */
type Ties = 'id' | 'reverse' | 'fixed' | 'shuffled';

/** A change to the world that may also happen while a run is under way. */
type Change =
  /** `count` orders stamped in one millisecond, `agoMs` before they are written; every `withoutMonitor`-th one's intake could not start its monitor (0: none). */
  | { t: 'create'; count: number; agoMs: number; withoutMonitor: number }
  | { t: 'order'; which: number; to: OrderState }
  /** A monitor failing, terminated, purged (gone), completing while its order is open, suspended or resumed by a person. */
  | { t: 'monitor'; which: number; to: RuntimeStatus | 'purged' }
  | { t: 'clock'; ms: number };

type Fault =
  /** The next query. */
  | { on: 'query' }
  /** The `nth` status read from now on. */
  | { on: 'status'; nth: number }
  /** The `nth` start from now on: refused, or carried out with its answer lost. */
  | { on: 'start'; nth: number; lost: boolean };

type Command =
  | Change
  | { t: 'run' }
  | { t: 'restart' }
  /** The timer moves to another instance of the app, with the cursor that instance kept. */
  | { t: 'host'; which: number }
  /** A call that fails once: armed until a run makes it. */
  | { t: 'fault'; fault: Fault }
  /** A change that happens during the next run, just before its `at`-th call. */
  | { t: 'during'; at: number; change: Change };

/** How busy a scenario is. */
interface Shape {
  commands: { min: number; max: number };
  batchSize: fc.Arbitrary<number>;
  /** Orders created at once, with weights. */
  counts: { weight: number; arbitrary: fc.Arbitrary<number> }[];
}

const fraction = fc.integer({ min: 0, max: 999 }).map((n) => n / 1000);

function changeArb(shape: Shape): fc.Arbitrary<Change> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant('create' as const),
        count: fc.oneof(...shape.counts),
        agoMs: fc.constantFrom(0, 0, 0, 0, 1, 250, 45_000),
        withoutMonitor: fc.constantFrom(0, 0, 1, 2, 3, 7),
      }),
    },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('order' as const), which: fraction, to: fc.constantFrom<OrderState>('processing', 'compensating', 'completed', 'cancelled', 'attention') }) },
    {
      weight: 4,
      arbitrary: fc.record({
        t: fc.constant('monitor' as const),
        which: fraction,
        to: fc.constantFrom<RuntimeStatus | 'purged'>('Failed', 'Terminated', 'purged', 'Completed', 'Suspended', 'Running', 'Pending', 'ContinuedAsNew'),
      }),
    },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('clock' as const), ms: fc.constantFrom(1, 1, 999, TICK_MS, TICK_MS, 300_000, 3_600_000) }) },
  );
}

const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({ on: fc.constant('query' as const) }),
  fc.record({ on: fc.constant('status' as const), nth: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ on: fc.constant('start' as const), nth: fc.integer({ min: 1, max: 3 }), lost: fc.boolean() }),
);

function commandArb(shape: Shape): fc.Arbitrary<Command> {
  const change = changeArb(shape);
  return fc.oneof(
    { weight: 10, arbitrary: change },
    { weight: 10, arbitrary: fc.constant({ t: 'run' as const }) },
    { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('host' as const), which: fc.nat(HOSTS - 1) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('fault' as const), fault: faultArb }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('during' as const), at: fc.integer({ min: 1, max: 8 }), change }) },
  );
}

interface Scenario {
  settings: SweepSettings;
  ties: Ties;
  seed: number;
  commands: Command[];
}

function scenarioArb(shape: Shape): fc.Arbitrary<Scenario> {
  return fc.record({
    settings: fc.record({ batchSize: shape.batchSize, graceMs: fc.constantFrom(0, 1_000, 30_000) }),
    ties: fc.constantFrom<Ties>('id', 'reverse', 'fixed', 'shuffled'),
    seed: fc.integer(),
    commands: fc.array(commandArb(shape), { minLength: shape.commands.min, maxLength: shape.commands.max }),
  });
}

/** A few orders at a time, a few checked a run; now and then more in one millisecond than a run checks. */
const EVERYDAY: Shape = {
  commands: { min: 20, max: 80 },
  batchSize: fc.integer({ min: 1, max: 6 }),
  counts: [
    { weight: 8, arbitrary: fc.integer({ min: 1, max: 3 }) },
    { weight: 3, arbitrary: fc.integer({ min: 4, max: 15 }) },
  ],
};
/** Bursts of many orders in one millisecond, now and then more than a page holds; batches of tens, or of a page or more. */
const BURSTS: Shape = {
  commands: { min: 8, max: 30 },
  batchSize: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 20, max: 120 }) }, { weight: 1, arbitrary: fc.constantFrom(MAX_ACTIVE_PAGE - 1, MAX_ACTIVE_PAGE, 700) }),
  counts: [
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }) },
    { weight: 3, arbitrary: fc.integer({ min: 20, max: 200 }) },
    { weight: 2, arbitrary: fc.integer({ min: MAX_ACTIVE_PAGE - 30, max: MAX_ACTIVE_PAGE + 120 }) },
  ],
};

// ---------------------------------------------------------------------------------------------
// The world

interface Order {
  id: string;
  correlationId: string;
  createdAt: string;
  state: OrderState;
  /** Where it falls among orders of its time when ties fall in one random order. */
  key: number;
}

/** What one run did. */
interface RunLog {
  now: number;
  calls: number;
  /** Ids its query returned. */
  queried: Set<string>;
  /** Its status reads: whether the monitor was on the job. */
  read: Map<string, boolean>;
  /** Monitors put back on the job by someone else while it ran. */
  revived: Set<string>;
  /** Starts that returned. */
  started: string[];
}

const onTheJob = (s: RuntimeStatus | undefined) => s !== undefined && ON_THE_JOB.includes(s);
const isActive = (o: Order) => ACTIVE.includes(o.state);

class World {
  now = START;
  readonly orders: Order[] = [];
  readonly byId = new Map<string, Order>();
  readonly monitors = new Map<string, RuntimeStatus>();
  /** Each instance's cursor (its module's memory); '' until it has run. */
  readonly cursors: string[] = Array.from({ length: HOSTS }, () => '');
  host = 0;
  armed?: Fault;
  faultCalls = 0;
  fired = false;
  pending: { at: number; change: Change }[] = [];
  run?: RunLog;
  starts = 0;
  readonly violations: string[] = [];
  readonly trace: string[] = [];
  readonly random: () => number;

  constructor(
    readonly settings: SweepSettings,
    readonly ties: Ties,
    seed: number,
  ) {
    this.random = seededRandom(seed);
  }

  /** Orders a run checks: a batch, and never more than a page. */
  get batch(): number {
    return Math.min(this.settings.batchSize, MAX_ACTIVE_PAGE);
  }

  // The query, as CosmosActiveOrders makes it.
  readonly source: ActiveOrderSource = {
    activeOrders: async (from: string, createdBefore: string, limit: number, excluding: readonly string[]): Promise<ActiveOrder[]> => {
      const run = this.call('query');
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ACTIVE_PAGE) this.violations.push(`a run asked for ${limit} orders: not 1 to ${MAX_ACTIVE_PAGE}`);
      const before = new Date(run.now - this.settings.graceMs).toISOString();
      if (createdBefore !== before) this.violations.push(`a run at ${new Date(run.now).toISOString()} read orders created before ${createdBefore}, not ${before}`);
      if (this.fails('query')) throw Object.assign(new Error('Service Unavailable'), { code: 503 });
      const top = Math.max(1, Math.min(MAX_ACTIVE_PAGE, Math.floor(limit)));
      const key = this.tieKey();
      const left = new Set(excluding);
      const page = this.orders
        .filter((o) => isActive(o) && o.createdAt >= from && o.createdAt < createdBefore && !left.has(o.id))
        .sort((x, y) => (x.createdAt < y.createdAt ? -1 : x.createdAt > y.createdAt ? 1 : key(x) - key(y)))
        .slice(0, top);
      for (const o of page) run.queried.add(o.id);
      this.trace.push(`  query from ${from || "''"} before ${createdBefore} top ${top}, ${left.size} left out: ${page.length} orders`);
      return page.map((o) => ({ id: o.id, correlationId: o.correlationId, state: o.state, createdAt: o.createdAt }));
    },
  };

  /** Where an order falls among the orders of its time, in this query. */
  tieKey(): (o: Order) => number {
    switch (this.ties) {
      case 'id':
        return (o) => Number(o.id.slice(-12));
      case 'reverse':
        return (o) => -Number(o.id.slice(-12));
      case 'fixed':
        return (o) => o.key;
      case 'shuffled': {
        const keys = new Map<string, number>();
        return (o) => {
          let k = keys.get(o.id);
          if (k === undefined) keys.set(o.id, (k = this.random()));
          return k;
        };
      }
    }
  }

  // The durable client.
  readonly monitor: MonitorClient = {
    status: async (orderId: string): Promise<MonitorStatus | null> => {
      const run = this.call('status');
      if (this.fails('status')) throw new TransientError('the durable backend did not answer within 5000 ms');
      const status = this.monitors.get(orderId);
      run.read.set(orderId, onTheJob(status));
      return status === undefined ? null : { runtimeStatus: status, customStatus: null };
    },
    start: async (orderId: string, input: { orderId: string; correlationId: string }): Promise<'started' | 'exists'> => {
      const run = this.call('start');
      const order = this.byId.get(orderId);
      if (input.orderId !== orderId || input.correlationId !== order?.correlationId) this.violations.push(`${orderId}: started with ${JSON.stringify(input)}`);
      if (!run.queried.has(orderId)) this.violations.push(`${orderId}: monitor started, but the run's query did not return the order`);
      const read = run.read.get(orderId);
      if (read === undefined) this.violations.push(`${orderId}: monitor started without reading its status first`);
      if (read === true) this.violations.push(`${orderId}: monitor started though the run read it on the job`);
      const fault = this.fails('start');
      if (fault?.on === 'start' && !fault.lost) throw Object.assign(new Error('Too Many Requests'), { code: 429 });
      let answer: 'started' | 'exists';
      if (onTheJob(this.monitors.get(orderId))) {
        if (!run.revived.has(orderId)) this.violations.push(`${orderId}: a start reached a monitor on the job (${this.monitors.get(orderId)})`);
        answer = 'exists';
      } else {
        this.monitors.set(orderId, 'Running');
        answer = 'started';
      }
      this.trace.push(`  start ${orderId}: ${answer}${fault ? ', answer lost' : ''}`);
      if (fault) throw new TransientError('the durable backend did not answer within 5000 ms');
      run.started.push(orderId);
      this.starts++;
      return answer;
    },
    notifyOrderChanged: async () => {
      this.call('notify');
    },
  };

  /** Counts a call of the run under way, and lets what is due before it happen. */
  call(name: string): RunLog {
    const run = this.run;
    if (!run) throw new Error(`${name} called outside a run`);
    run.calls++;
    for (const p of this.pending.filter((p) => p.at === run.calls)) {
      this.trace.push(`  meanwhile ${JSON.stringify(p.change)}`);
      this.change(p.change);
    }
    // A query, and a status read, a start and a nudge for each order of a batch: anything beyond
    // that by far is a run going round in circles.
    const cap = 4 * this.batch + 10;
    if (run.calls > cap) {
      this.violations.push(`a run made more than ${cap} calls`);
      throw new Error('runaway run');
    }
    return run;
  }

  /** Whether the armed fault befalls this call. */
  fails(on: Fault['on']): Fault | undefined {
    const fault = this.armed;
    if (!fault || this.fired || fault.on !== on) return undefined;
    if (fault.on !== 'query' && ++this.faultCalls !== fault.nth) return undefined;
    this.fired = true;
    this.trace.push(`  !! ${on} fails`);
    return fault;
  }

  /** One run of the timer on the instance it is on. */
  async tick(): Promise<SweepReport | undefined> {
    const run: RunLog = { now: this.now, calls: 0, queried: new Set(), read: new Map(), revived: new Set(), started: [] };
    this.run = run;
    this.fired = false;
    const cursor = this.cursors[this.host]!;
    let report: SweepReport | undefined;
    try {
      report = await sweepMonitors(cursor, new Date(run.now), this.settings, { orders: this.source, monitor: this.monitor, log: silent });
    } catch (err) {
      // The handler rejects, the host logs it; the cursor stays as it was.
      this.trace.push(`  threw ${String(err)}`);
      if (!this.fired) this.violations.push(`a run threw ${String(err)}, though none of its calls failed`);
    }
    if (report) {
      this.trace.push(`  checked ${report.checked}, restarted ${report.restarted.map((r) => `${r.orderId} (${r.previous})`).join(' ') || 'none'}, cursor ${summary(report.cursor)}`);
      this.checkReport(report, run);
      this.cursors[this.host] = report.cursor;
    }
    if (this.fired) this.armed = undefined;
    this.pending = [];
    this.run = undefined;
    return report;
  }

  checkReport(report: SweepReport, run: RunLog): void {
    if (report.checked > this.batch) this.violations.push(`a run checked ${report.checked} orders, more than a batch of ${this.batch}`);
    const restarted = report.restarted.map((r) => r.orderId);
    if (JSON.stringify(restarted) !== JSON.stringify(run.started)) this.violations.push(`a run reported ${restarted.join(' ')} restarted, and started ${run.started.join(' ')}`);
    if (report.cursor === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(report.cursor);
    } catch {
      this.violations.push(`the cursor ${summary(report.cursor)} does not parse`);
      return;
    }
    const { createdAt, checked } = parsed as { createdAt?: unknown; checked?: unknown };
    if (typeof createdAt !== 'string' || !Array.isArray(checked) || !checked.every((id) => typeof id === 'string')) {
      this.violations.push(`the cursor ${summary(report.cursor)} is not a time and the ids checked at it`);
      return;
    }
    const strays = checked.filter((id: string) => this.byId.get(id)?.createdAt !== createdAt);
    if (strays.length > 0) this.violations.push(`the cursor at ${createdAt} names orders of another time: ${strays.slice(0, 5).join(' ')}`);
    if (new Set(checked).size !== checked.length) this.violations.push(`the cursor at ${createdAt} names an order twice`);
  }

  async apply(c: Command): Promise<void> {
    this.trace.push(c.t === 'create' ? `create ${c.count} (${c.agoMs} ms ago, every ${c.withoutMonitor || 'none'}-th without monitor)` : JSON.stringify(c));
    switch (c.t) {
      case 'run':
        await this.tick();
        return;
      case 'restart':
        this.cursors[this.host] = '';
        return;
      case 'host':
        this.host = c.which;
        return;
      case 'fault':
        this.armed = c.fault;
        this.faultCalls = 0;
        return;
      case 'during':
        this.pending.push({ at: c.at, change: c.change });
        return;
      default:
        this.change(c);
    }
  }

  change(c: Change): void {
    switch (c.t) {
      case 'create': {
        const createdAt = new Date(this.now - c.agoMs).toISOString();
        for (let i = 0; i < c.count; i++) {
          const id = orderIdOf(this.orders.length + 1);
          const order: Order = { id, correlationId: `corr-${id}`, createdAt, state: 'accepted', key: this.random() };
          this.orders.push(order);
          this.byId.set(id, order);
          if (c.withoutMonitor === 0 || (i + 1) % c.withoutMonitor !== 0) this.monitors.set(id, 'Running');
        }
        this.trace.push(`  -> ${orderIdOf(this.orders.length - c.count + 1).slice(-6)}..${orderIdOf(this.orders.length).slice(-6)} at ${createdAt}`);
        return;
      }
      case 'order': {
        const order = this.orders[Math.floor(c.which * this.orders.length)];
        if (!order || order.state === 'completed' || order.state === 'cancelled') return;
        order.state = c.to;
        // A monitor completes when its order is finished, or handed to a person.
        if (!isActive(order) && this.monitors.has(order.id)) this.monitors.set(order.id, 'Completed');
        this.trace.push(`  -> ${order.id.slice(-6)} ${order.state}`);
        return;
      }
      case 'monitor': {
        const order = this.orders[Math.floor(c.which * this.orders.length)];
        if (!order) return;
        if (c.to === 'purged') this.monitors.delete(order.id);
        else this.monitors.set(order.id, c.to);
        if (onTheJob(this.monitors.get(order.id))) this.run?.revived.add(order.id);
        this.trace.push(`  -> monitor of ${order.id.slice(-6)} (${order.state}) ${c.to}`);
        return;
      }
      case 'clock':
        this.now += c.ms;
        return;
    }
  }

  /** Active orders the sweep is to look after: past the grace period, their monitor not on the job. */
  unattended(): Order[] {
    const before = new Date(this.now - this.settings.graceMs).toISOString();
    return this.orders.filter((o) => isActive(o) && o.createdAt < before && !onTheJob(this.monitors.get(o.id)));
  }
}

function summary(cursor: string): string {
  return cursor.length > 160 ? `${cursor.slice(0, 160)}... (${cursor.length} chars)` : cursor || "''";
}

// ---------------------------------------------------------------------------------------------
// Settling: no changes, no faults

async function settle(world: World): Promise<void> {
  world.armed = undefined;
  world.pending = [];
  // Every order past the grace period.
  world.now += world.settings.graceMs + 1;
  const active = world.orders.filter(isActive);
  const cursor = world.cursors[world.host]!;
  const at = cursor === '' ? undefined : (JSON.parse(cursor) as { createdAt: string; checked: string[] });
  const unchecked = at ? active.filter((o) => o.createdAt === at.createdAt && !at.checked.includes(o.id)).length : 0;
  const bound = Math.floor((active.length + unchecked) / world.batch) + 2;
  world.trace.push(`settling: ${active.length} active orders, ${unchecked} of the cursor's time unchecked, ${world.unattended().length} unattended; ${bound} runs`);
  for (let i = 0; i < bound && world.violations.length === 0; i++) {
    world.now += TICK_MS;
    await world.tick();
  }
  expect(world.violations).toEqual([]);
  const left = world.unattended();
  expect({ runs: bound, unattended: left.length, first: left.slice(0, 5).map((o) => `${o.id} of ${o.createdAt}, monitor ${world.monitors.get(o.id) ?? 'missing'}`) }).toEqual({
    runs: bound,
    unattended: 0,
    first: [],
  });

  // A further pass, and one of a process that starts again, start nothing.
  const starts = world.starts;
  for (const again of [false, true]) {
    if (again) world.cursors[world.host] = '';
    world.trace.push(again ? 'a new process' : 'a further pass');
    for (let i = 0; i < bound; i++) {
      world.now += TICK_MS;
      await world.tick();
    }
  }
  expect(world.violations).toEqual([]);
  expect(world.starts).toBe(starts);
}

async function expectSweepLooksAfterEveryOrder(scenario: Scenario): Promise<void> {
  const world = new World(scenario.settings, scenario.ties, scenario.seed);
  world.trace.push(`settings: ${JSON.stringify(scenario.settings)}, ties by ${scenario.ties}`);
  try {
    for (const command of scenario.commands) {
      await world.apply(command);
      if (world.violations.length > 0) break;
    }
    expect(world.violations).toEqual([]);
    await settle(world);
  } catch (err) {
    (err as Error).message += `\n\nwhat happened:\n${world.trace.slice(-400).join('\n')}`;
    throw err;
  }
}

describe('monitor sweep over orders and monitors that change between and during its runs', () => {
  it('gives every active order whose monitor is gone one within a pass and a bit, and never starts a monitor on the job', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb(EVERYDAY), expectSweepLooksAfterEveryOrder), searchOptions(1000));
  });

  it('keeps those promises through bursts of orders in one millisecond, more than a page holds among them', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb(BURSTS), expectSweepLooksAfterEveryOrder), searchOptions(100));
  });
});
