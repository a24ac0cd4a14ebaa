/**
 * `npm run bench`: measures the order system through the local Functions host and emulators and
 * writes bench/results/bench-<timestamp>.json and .svg, then prints the figures against the targets.
 *
 *  0. warm-up: orders until the code paths are optimized (the first thousand cost the host about
 *     1.5x the CPU of later ones while V8 compiles them), then the system drains;
 *  1. end to end: a burst of orders timed from acceptance to completion (server timestamps);
 *  2. intake: closed loops at concurrency 1, 16 and 64, and an open loop at a fixed rate;
 *  3. memory (VmRSS) of the host and each emulator after 1,000 and 10,000 orders;
 *  4. the reference demo's comparison: a synchronous chain against the 202 path, both with the
 *     reference latencies (billing 5 s, notification 2 s), on a second system started with the
 *     reference latency profile.
 *
 * Settings (flag or environment variable):
 *   --seconds / BENCH_SECONDS                 closed-loop phase length (5)
 *   --rate / BENCH_RATE                       open-loop arrival rate, orders/s (100)
 *   --open-seconds / BENCH_OPEN_SECONDS       open-loop length (10)
 *   --memory-orders / BENCH_MEMORY_ORDERS     memory checkpoints, comma-separated (1000,10000)
 *   --warmup-orders / BENCH_WARMUP_ORDERS     warm-up orders before anything is measured (1000)
 *   --e2e-orders / BENCH_E2E_ORDERS           end-to-end burst (1000)
 *   --compare-orders / BENCH_COMPARE_ORDERS   orders per side of the comparison (10)
 *   --compare-concurrency / BENCH_COMPARE_CONCURRENCY  clients per side (1: what one customer waits)
 *   --quick                                   a short run: 2 s phases, 300 warm-up and 300 burst orders, checkpoints 300,1000, 3 compared orders
 *   --skip-compare                            leave out the comparison
 *   --compare-only                            only the comparison
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, startLocalStack, type LocalStack } from '../local/stack';
import { SEED_CATALOG } from '../src/domain/catalog';
import { TERMINAL_STATES, type OrderDocument, type OrderState } from '../src/domain/order';
import { createCosmosClient } from '../src/azure/clients';
import { cosmosTopology } from '../src/topology';
import { call, closedLoop, keepAliveAgent, openLoop, Progress, sleep, summarize, type Answer } from './load';
import { benchChartSvg } from './report/chart';
import type { BenchResult, ChainComparison, EndToEndResult, IntakePhase, MemorySample } from './report/result';
import { checkTargets, formatBenchSummary, perSecondFigure } from './report/summary';
import { cpuMilliseconds, residentMegabytes, watchMachinePauses, type MachinePauses } from './process-usage';
import { startSyncChain } from './sync-chain';

interface BenchSettings {
  seconds: number;
  rate: number;
  openSeconds: number;
  memoryOrders: number[];
  warmupOrders: number;
  e2eOrders: number;
  compareOrders: number;
  compareConcurrency: number;
  skipCompare: boolean;
  compareOnly: boolean;
}

/** The states an order passes through before a terminal one, in the order it moves through them. */
const OPEN_STATES: readonly OrderState[] = ['accepted', 'processing', 'compensating'];
type OrderView = OrderDocument;

function readSettings(argv: string[]): BenchSettings {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    flags.set(name, ['quick', 'skip-compare', 'compare-only'].includes(name) ? 'true' : (inline ?? argv[++i] ?? ''));
  }
  const known = ['seconds', 'rate', 'open-seconds', 'memory-orders', 'warmup-orders', 'e2e-orders', 'compare-orders', 'compare-concurrency', 'quick', 'skip-compare', 'compare-only'];
  for (const name of flags.keys()) if (!known.includes(name)) throw new Error(`unknown flag --${name} (known: ${known.map((k) => `--${k}`).join(' ')})`);
  const quick = flags.has('quick');
  const raw = (flag: string): string | undefined => flags.get(flag) ?? process.env[`BENCH_${flag.toUpperCase().replace(/-/g, '_')}`];
  const number = (flag: string, fallback: number): number => {
    const value = raw(flag);
    if (value === undefined || value === '') return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number, got "${value}"`);
    return n;
  };
  const memoryOrders = (raw('memory-orders') ?? (quick ? '300,1000' : '1000,10000'))
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => a - b);
  return {
    seconds: number('seconds', quick ? 2 : 5),
    rate: number('rate', 100),
    openSeconds: number('open-seconds', quick ? 3 : 10),
    memoryOrders,
    warmupOrders: Math.round(number('warmup-orders', quick ? 300 : 1000)),
    e2eOrders: Math.round(number('e2e-orders', quick ? 300 : 1000)),
    compareOrders: Math.round(number('compare-orders', quick ? 3 : 10)),
    compareConcurrency: Math.round(number('compare-concurrency', 1)),
    skipCompare: flags.has('skip-compare'),
    compareOnly: flags.has('compare-only'),
  };
}

/** Unlimited stock on every SKU, so every order can complete and the figures measure completions. */
async function stockUp(stack: LocalStack): Promise<void> {
  const { client, agent } = createCosmosClient(stack.cosmos);
  try {
    const inventory = client.database(cosmosTopology.databaseName).container('inventory');
    for (const item of SEED_CATALOG) await inventory.items.upsert({ ...item, available: 100_000_000, reserved: 0, holds: {} });
  } finally {
    client.dispose();
    agent?.destroy();
  }
}

/** CPU time (user + system) this process has used so far, in ms. */
function ownCpuMilliseconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Starts timing a process's main thread; the returned function gives its CPU ms since, and the share of the time it ran. */
function watchMainThread(pid: number): () => { cpuMs: number; busy: number } {
  const cpuBefore = cpuMilliseconds(pid, pid);
  const started = performance.now();
  return () => {
    const cpuMs = cpuMilliseconds(pid, pid) - cpuBefore;
    return { cpuMs, busy: cpuMs / (performance.now() - started) };
  };
}

function cpuPerOrder<K extends string>(before: Record<K, number>, after: Record<K, number>, orders: number): Record<K | 'total', number> {
  const per = Object.fromEntries(Object.keys(before).map((k) => [k, (after[k as K] - before[k as K]) / Math.max(orders, 1)])) as Record<K, number>;
  return { ...per, total: Object.values<number>(per).reduce((a, b) => a + b, 0) };
}

/** Places orders and remembers every accepted id, in the order they were accepted. */
class OrderPlacer {
  readonly accepted: string[] = [];
  private readonly agent = keepAliveAgent(256);
  private readonly skus = SEED_CATALOG.map((s) => s.id);
  private n = 0;

  constructor(private readonly baseUrl: string) {}

  async place(): Promise<Answer<{ orderId?: string }>> {
    const n = this.n++;
    const answer = await call<{ orderId?: string }>(this.baseUrl, this.agent, {
      method: 'POST',
      path: '/api/orders',
      body: { customerId: `bench-${n % 97}`, items: [{ sku: this.skus[n % this.skus.length]!, quantity: 1 }] },
    });
    if (answer.status === 202 && answer.body?.orderId) this.accepted.push(answer.body.orderId);
    return answer;
  }

  order(id: string): Promise<Answer<OrderView>> {
    return call<OrderView>(this.baseUrl, this.agent, { method: 'GET', path: `/api/orders/${id}` });
  }

  /**
   * Ids of the orders in a state that is not terminal, from the orders list. Asked state by state
   * in the order orders move through them, so an order that stays open is always caught in one.
   * Undefined when the list does not answer.
   */
  async openOrderIds(): Promise<Set<string> | undefined> {
    const ids = new Set<string>();
    for (const state of OPEN_STATES) {
      let token: string | undefined;
      do {
        const query = new URLSearchParams({ state, pageSize: '100', ...(token ? { continuationToken: token } : {}) });
        const answer = await call<{ orders: { id: string }[]; continuationToken?: string }>(this.baseUrl, this.agent, { method: 'GET', path: `/api/orders?${query}` });
        if (answer.status !== 200 || !Array.isArray(answer.body?.orders)) return undefined;
        for (const order of answer.body.orders) ids.add(order.id);
        token = answer.body.continuationToken;
      } while (token);
    }
    return ids;
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Waits until the given orders are all terminal, loading the host it measures as little as it can:
 * it reads only the newest open order, four times a second (orders finish roughly in the order they
 * came; each read also asks the monitor's status), and once that one is done, asks the orders list
 * which orders are still open (a query per open state, not a read per order). Gives up after
 * `timeoutMs`.
 */
async function waitUntilTerminal(placer: OrderPlacer, ids: string[], progress: Progress, label: string, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let open = ids.slice();
  while (Date.now() < deadline) {
    if (open.length === 0) return;
    progress.update(`${label}: waiting for the newest of ${open.length} unconfirmed orders (${ids.length - open.length}/${ids.length} seen finished), ${Math.round((timeoutMs - (deadline - Date.now())) / 1000)} s`);
    const newest = open.slice(-1);
    const states = await Promise.all(newest.map(async (id) => (await placer.order(id)).body?.state));
    if (states.every((state) => state !== undefined && TERMINAL_STATES.includes(state))) {
      const stillOpen = await placer.openOrderIds();
      // The list unreadable (an error answer): keep watching every order not seen finished.
      open = stillOpen ? open.filter((id) => stillOpen.has(id)) : open.filter((id) => !newest.includes(id));
    } else {
      await sleep(250);
    }
  }
}

/** Every order as it is now (4 reads at a time). */
async function readOrders(placer: OrderPlacer, ids: string[]): Promise<Map<string, OrderView>> {
  const orders = new Map<string, OrderView>();
  let cursor = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (cursor < ids.length) {
        const id = ids[cursor++]!;
        const answer = await placer.order(id);
        if (answer.status === 200) orders.set(id, answer.body);
      }
    }),
  );
  return orders;
}

function intakePhase(
  label: string,
  kind: 'closed' | 'open',
  samples: Answer[],
  seconds: number,
  extra: { concurrency?: number; ratePerSecond?: number; machine: MachinePauses; hostMainThreadBusy?: number },
): IntakePhase {
  const accepted = samples.filter((s) => s.status === 202);
  const otherStatuses: Record<string, number> = {};
  for (const s of samples) if (s.status !== 202) otherStatuses[String(s.status)] = (otherStatuses[String(s.status)] ?? 0) + 1;
  return {
    label,
    kind,
    ...extra,
    seconds,
    requests: samples.length,
    accepted: accepted.length,
    otherStatuses,
    acceptedPerSecond: accepted.length / seconds,
    latencyMs: summarize(accepted.map((s) => s.ms)),
  };
}

const completedAt = (order: OrderView): number | undefined => {
  const entry = order.timeline.find((t) => t.kind === 'completed');
  return entry ? Date.parse(entry.at) : undefined;
};

async function memorySample(stack: LocalStack, afterOrders: number): Promise<MemorySample> {
  return {
    afterOrders,
    hostMb: await residentMegabytes(stack.host().pid),
    serviceBusEmulatorMb: await residentMegabytes(stack.serviceBusEmulator.pid),
    cosmosEmulatorMb: await residentMegabytes(stack.cosmosEmulator.pid),
  };
}

async function measureMainSystem(settings: BenchSettings, progress: Progress): Promise<{ intake: IntakePhase[]; endToEnd: EndToEndResult; memory: MemorySample[] }> {
  progress.done('bench: starting the emulators and the Functions host');
  const stack = await startLocalStack();
  const placer = new OrderPlacer(stack.baseUrl);
  const intake: IntakePhase[] = [];
  const memory: MemorySample[] = [];
  const checkpoints = [...settings.memoryOrders];
  const takeCheckpoints = async (): Promise<void> => {
    while (checkpoints.length > 0 && placer.accepted.length >= checkpoints[0]!) {
      checkpoints.shift();
      const sample = await memorySample(stack, placer.accepted.length);
      memory.push(sample);
      progress.done(`bench: after ${sample.afterOrders} orders: host ${sample.hostMb.toFixed(0)} MB, Service Bus emulator ${sample.serviceBusEmulatorMb.toFixed(0)} MB, Cosmos stand-in ${sample.cosmosEmulatorMb.toFixed(0)} MB`);
    }
  };
  try {
    await stockUp(stack);
    const warmupTicker = setInterval(() => progress.update(`warm-up: ${placer.accepted.length}/${settings.warmupOrders} orders placed`), 250);
    await closedLoop(32, { limit: settings.warmupOrders }, () => placer.place());
    clearInterval(warmupTicker);
    await waitUntilTerminal(placer, placer.accepted, progress, 'warm-up');
    await takeCheckpoints();

    // End to end: a burst, timed from the first acceptance to the last completion.
    const burstStart = placer.accepted.length;
    const pids = { host: stack.host().pid, serviceBusEmulator: stack.serviceBusEmulator.pid, cosmosEmulator: stack.cosmosEmulator.pid };
    const cpuAt = () => ({
      host: cpuMilliseconds(pids.host),
      serviceBusEmulator: cpuMilliseconds(pids.serviceBusEmulator),
      cosmosEmulator: cpuMilliseconds(pids.cosmosEmulator),
      loadGenerator: ownCpuMilliseconds(),
    });
    const cpuBefore = cpuAt();
    const burstMainThread = watchMainThread(pids.host);
    const burstTicker = setInterval(() => progress.update(`end to end: ${placer.accepted.length - burstStart}/${settings.e2eOrders} orders placed`), 250);
    const burst = await closedLoop(32, { limit: settings.e2eOrders }, () => placer.place());
    clearInterval(burstTicker);
    const burstIds = placer.accepted.slice(burstStart);
    // CPU up to the last completion: reading every order's details afterwards is the bench's work.
    await waitUntilTerminal(placer, burstIds, progress, 'end to end');
    const cpuAfter = cpuAt();
    const mainThreadMs = burstMainThread().cpuMs;
    const finished = await readOrders(placer, burstIds);
    const orders = burstIds.map((id) => finished.get(id)).filter((o): o is OrderView => o !== undefined);
    const completed = orders.filter((o) => o.state === 'completed' && completedAt(o) !== undefined);
    const otherStates: Record<string, number> = {};
    for (const id of burstIds) {
      const state = finished.get(id)?.state ?? 'unread';
      if (state !== 'completed') otherStates[state] = (otherStates[state] ?? 0) + 1;
    }
    const firstCreated = Math.min(...orders.map((o) => Date.parse(o.createdAt)));
    const lastCompleted = Math.max(...completed.map((o) => completedAt(o)!));
    const seconds = (lastCompleted - firstCreated) / 1000;
    const endToEnd: EndToEndResult = {
      orders: burst.length,
      accepted: burstIds.length,
      completed: completed.length,
      otherStates,
      seconds,
      completedPerSecond: completed.length / seconds,
      latencyMs: summarize(completed.map((o) => completedAt(o)! - Date.parse(o.createdAt))),
      cpuMsPerOrder: cpuPerOrder(cpuBefore, cpuAfter, completed.length),
      hostMainThreadCpuMsPerOrder: mainThreadMs / Math.max(completed.length, 1),
    };
    progress.done(`end to end: ${endToEnd.completed}/${endToEnd.accepted} completed in ${seconds.toFixed(1)} s (${perSecondFigure(endToEnd.completedPerSecond)}/s)`);
    await takeCheckpoints();

    // Intake: each phase starts on a drained system, so the last phase's backlog does not count.
    for (const concurrency of [1, 16, 64]) {
      const label = `concurrency ${concurrency}`;
      const before = placer.accepted.length;
      const ticker = setInterval(() => progress.update(`intake ${label}: ${placer.accepted.length - before} accepted`), 250);
      const started = performance.now();
      const pauses = watchMachinePauses();
      const mainThread = watchMainThread(stack.host().pid);
      const samples = await closedLoop(concurrency, { durationMs: settings.seconds * 1000 }, () => placer.place());
      const phase = intakePhase(label, 'closed', samples, (performance.now() - started) / 1000, { concurrency, machine: pauses(), hostMainThreadBusy: mainThread().busy });
      clearInterval(ticker);
      intake.push(phase);
      progress.done(`intake ${label}: ${phase.acceptedPerSecond.toFixed(0)} accepted/s, p99 ${phase.latencyMs.p99.toFixed(1)} ms`);
      await waitUntilTerminal(placer, placer.accepted.slice(before), progress, `draining after ${label}`);
      await takeCheckpoints();
    }
    {
      const label = `open ${settings.rate}/s`;
      const before = placer.accepted.length;
      const total = Math.round(settings.rate * settings.openSeconds);
      const ticker = setInterval(() => progress.update(`intake ${label}: ${placer.accepted.length - before}/${total} accepted`), 250);
      const started = performance.now();
      const pauses = watchMachinePauses();
      const mainThread = watchMainThread(stack.host().pid);
      const samples = await openLoop(settings.rate, total, () => placer.place());
      clearInterval(ticker);
      // Until the last answer: a server that falls behind the arrival rate shows a lower figure.
      const phase = intakePhase(label, 'open', samples, (performance.now() - started) / 1000, {
        ratePerSecond: settings.rate,
        machine: pauses(),
        hostMainThreadBusy: mainThread().busy,
      });
      intake.push(phase);
      progress.done(`intake ${label}: p50 ${phase.latencyMs.p50.toFixed(1)} ms, p99 ${phase.latencyMs.p99.toFixed(1)} ms`);
      await waitUntilTerminal(placer, placer.accepted.slice(before), progress, `draining after ${label}`);
      await takeCheckpoints();
    }

    // Memory: top up to each remaining checkpoint, let the system finish, then read RSS.
    while (checkpoints.length > 0) {
      const target = checkpoints[0]!;
      const before = placer.accepted.length;
      const ticker = setInterval(() => progress.update(`memory: ${placer.accepted.length}/${target} orders placed`), 250);
      await closedLoop(32, { limit: Math.max(0, target - before) }, () => placer.place());
      clearInterval(ticker);
      await waitUntilTerminal(placer, placer.accepted.slice(before), progress, `memory: finishing orders up to ${target}`);
      if (placer.accepted.length < target) {
        progress.done(`memory: only ${placer.accepted.length} of ${target} orders were accepted`);
        checkpoints[0] = placer.accepted.length;
      }
      await takeCheckpoints();
    }
    return { intake, endToEnd, memory };
  } finally {
    placer.close();
    await stack.stop();
  }
}

async function compareWithSynchronousChain(settings: BenchSettings, progress: Progress): Promise<ChainComparison> {
  progress.done('comparison: starting a second system with the reference latency profile');
  const stack = await startLocalStack({ hostEnv: { SIMULATED_LATENCY_PROFILE: 'reference' } });
  const placer = new OrderPlacer(stack.baseUrl);
  let closeChain: (() => Promise<void>) | undefined;
  try {
    await stockUp(stack);
    // The chain runs in this process on the app's own settings: the same stores, the same profile.
    for (const [k, v] of Object.entries(stack.hostEnv)) if (!k.startsWith('FUNCTIONS_') && !k.startsWith('DURABLE_')) process.env[k] = v;
    const { appDependencies } = await import('../src/services/dependencies');
    const deps = appDependencies();
    const chain = await startSyncChain(deps);
    closeChain = chain.close;
    const agent = keepAliveAgent(settings.compareConcurrency * 2);
    const order = { customerId: 'bench-compare', items: [{ sku: SEED_CATALOG[0]!.id, quantity: 1 }] };

    // One of each first, so neither side pays for a cold start in the figures.
    await call(chain.baseUrl, agent, { method: 'POST', path: '/orders', body: order, timeoutMs: 60_000 });
    await placer.place();

    let done = 0;
    const ticker = setInterval(() => progress.update(`comparison: synchronous chain ${done}/${settings.compareOrders} answered (each takes ${(deps.settings.latencyMs.inventory + deps.settings.latencyMs.billing + deps.settings.latencyMs.notification) / 1000} s or more)`), 250);
    const sync = await closedLoop(settings.compareConcurrency, { limit: settings.compareOrders }, async () => {
      const answer = await call(chain.baseUrl, agent, { method: 'POST', path: '/orders', body: order, timeoutMs: 60_000 });
      done++;
      return answer;
    });
    clearInterval(ticker);
    agent.destroy();
    const before = placer.accepted.length;
    const async202 = await closedLoop(settings.compareConcurrency, { limit: settings.compareOrders }, () => placer.place());
    const ids = placer.accepted.slice(before);
    await waitUntilTerminal(placer, ids, progress, 'comparison: 202 path orders', 120_000);
    const finished = await readOrders(placer, ids);
    const completions = ids
      .map((id) => finished.get(id))
      .filter((o): o is OrderView => o !== undefined && completedAt(o) !== undefined)
      .map((o) => completedAt(o)! - Date.parse(o.createdAt));
    const synchronous = summarize(sync.filter((a) => a.status === 200).map((a) => a.ms));
    const accepted202 = summarize(async202.filter((a) => a.status === 202).map((a) => a.ms));
    const comparison: ChainComparison = {
      latencyProfile: { ...deps.settings.latencyMs },
      orders: settings.compareOrders,
      concurrency: settings.compareConcurrency,
      synchronous,
      synchronousErrors: sync.filter((a) => a.status !== 200).length,
      accepted202,
      accepted202Errors: async202.filter((a) => a.status !== 202).length + (ids.length - completions.length),
      completion202: summarize(completions),
      speedup: synchronous.p50 / accepted202.p50,
    };
    progress.done(`comparison: synchronous p50 ${synchronous.p50.toFixed(0)} ms, 202 p50 ${accepted202.p50.toFixed(1)} ms: ${comparison.speedup.toFixed(0)}x`);
    return comparison;
  } finally {
    placer.close();
    await closeChain?.();
    await stack.stop();
  }
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  const progress = new Progress();
  const startedAt = new Date().toISOString();
  const machine = { cpus: cpus().length, loadAverageAtStart: loadavg(), node: process.version, platform: process.platform };
  const measured = settings.compareOnly ? { intake: [], endToEnd: undefined, memory: [] } : await measureMainSystem(settings, progress);
  const comparison = settings.skipCompare ? undefined : await compareWithSynchronousChain(settings, progress);
  const partial = {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    settings: { ...settings, memoryOrders: settings.memoryOrders.join(','), skipCompare: String(settings.skipCompare), compareOnly: String(settings.compareOnly) },
    intake: measured.intake,
    ...(measured.endToEnd ? { endToEnd: measured.endToEnd } : {}),
    ...(comparison ? { comparison } : {}),
    memory: measured.memory,
  };
  const result: BenchResult = { ...partial, targets: checkTargets(partial) };
  const stamp = startedAt.replace(/[:.]/g, '-');
  const dir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `bench-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(dir, `bench-${stamp}.svg`), benchChartSvg(result));
  process.stdout.write(`${formatBenchSummary(result)}\n\nwritten: bench/results/bench-${stamp}.json, bench/results/bench-${stamp}.svg\n`);
}

if (require.main === module) {
  main().then(
    // The Cosmos and Service Bus clients of the comparison keep sockets open; the run is over.
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`\nbenchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
