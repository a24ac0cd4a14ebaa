/**
 * A backlog run: a burst of orders bigger than billing keeps up with (each payment takes
 * `--billing-latency-ms`, and the host runs 16 at a time), every order then followed to its end
 * through the API. Billing's subscription holds the burst for minutes, as it would behind a slow
 * payment provider or after an outage. The monitor must not take that for a stuck consumer: no
 * order may be republished to, nor cancelled. `--no-backlog-check` runs the same with the
 * monitor's check off (`MONITOR_BACKLOG_WAIT_SECONDS=0`), for comparison.
 *
 *   node dist/bench/backlog.js [--orders 320] [--billing-latency-ms 30000] [--no-backlog-check] [--timeout 1800]
 *
 * Prints a table, writes bench/results/backlog-<time>.json, and exits 1 when an order was
 * cancelled or left open while the check was on.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, startLocalStack } from '../local/stack';
import { call, closedLoop, keepAliveAgent, Progress, sleep } from './load';

interface Options {
  orders: number;
  billingLatencyMs: number;
  backlogCheck: boolean;
  timeoutS: number;
}

export interface SeenOrder {
  id: string;
  state: string;
  createdAt: string;
  timeline: { kind: string; service?: string; reason?: string; at: string }[];
}

const SKUS = ['KEYBOARD-01', 'MOUSE-01', 'MONITOR-27', 'HEADSET-01', 'CABLE-USB-C', 'DOCK-01', 'WEBCAM-01'];
const TERMINAL = new Set(['completed', 'cancelled', 'attention']);

function parseOptions(argv: string[]): Options {
  const options: Options = { orders: 320, billingLatencyMs: 30_000, backlogCheck: true, timeoutS: 1_800 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number`);
      return n;
    };
    if (flag === '--orders') options.orders = Math.floor(value());
    else if (flag === '--billing-latency-ms') options.billingLatencyMs = value();
    else if (flag === '--timeout') options.timeoutS = value();
    else if (flag === '--no-backlog-check') options.backlogCheck = false;
    else throw new Error(`unknown flag ${flag} (known: --orders --billing-latency-ms --timeout --no-backlog-check)`);
  }
  return options;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const progress = new Progress();
  const label = options.backlogCheck ? 'backlog check on' : 'backlog check off';
  progress.done(`backlog run (${label}): starting the emulators and the Functions host`);
  const stack = await startLocalStack({
    hostEnv: {
      BILLING_LATENCY_MS: String(options.billingLatencyMs),
      ...(options.backlogCheck ? {} : { MONITOR_BACKLOG_WAIT_SECONDS: '0' }),
    },
  });
  const agent = keepAliveAgent(32);
  const started = Date.now();
  const deadline = started + options.timeoutS * 1000;
  try {
    // The burst: every order placed as fast as the intake takes them.
    const ids = await closedLoop(16, { limit: options.orders }, async (n) => {
      for (;;) {
        const answer = await call<{ orderId?: string }>(stack.baseUrl, agent, {
          method: 'POST',
          path: '/api/orders',
          body: { customerId: `backlog-${n % 20}`, items: [{ sku: SKUS[n % SKUS.length], quantity: 1 }] },
          headers: { 'Idempotency-Key': `backlog-${started}-${n}` },
        });
        if (answer.status === 202 && answer.body?.orderId) return answer.body.orderId;
        if (answer.status >= 400 && answer.status < 500) throw new Error(`order ${n} refused: ${answer.status} ${JSON.stringify(answer.body)}`);
        if (Date.now() > deadline) throw new Error(`order ${n} not accepted before the timeout`);
        await sleep(500);
      }
    });
    const placedS = (Date.now() - started) / 1000;
    progress.done(`backlog run (${label}): ${ids.length} orders placed in ${placedS.toFixed(1)} s; each payment takes ${options.billingLatencyMs} ms`);

    // Followed to the end, reading only the orders still open.
    const seen = new Map<string, SeenOrder>();
    let open = [...ids];
    while (open.length > 0 && Date.now() < deadline) {
      const reading = open;
      await closedLoop(8, { limit: reading.length }, async (n) => {
        const answer = await call<SeenOrder>(stack.baseUrl, agent, { method: 'GET', path: `/api/orders/${reading[n]}` });
        if (answer.status === 200 && answer.body) seen.set(reading[n]!, answer.body);
      });
      open = ids.filter((id) => !TERMINAL.has(seen.get(id)?.state ?? ''));
      const states = countBy([...seen.values()].map((o) => o.state));
      progress.update(`backlog run (${label}): ${open.length} open, ${JSON.stringify(states)}, ${Math.round((Date.now() - started) / 1000)} s`);
      if (open.length > 0) await sleep(5_000);
    }
    const orders = ids.map((id) => seen.get(id)).filter((o): o is SeenOrder => o !== undefined);
    const states = countBy(orders.map((o) => o.state));
    const stuckRepublishes = orders.flatMap((o) => o.timeline.filter((e) => e.kind === 'republished' && e.reason?.startsWith('stuck')));
    const finishedS = orders
      .map(completedAfterSeconds)
      .filter((s): s is number => s !== undefined)
      .sort((a, b) => a - b);
    const cancelled = orders.filter((o) => o.state === 'cancelled');
    const result = {
      options,
      placedSeconds: placedS,
      seconds: (Date.now() - started) / 1000,
      states,
      stillOpen: ids.length - orders.filter((o) => TERMINAL.has(o.state)).length,
      stuckRepublishes: countBy(stuckRepublishes.map((e) => e.service ?? 'unknown')),
      cancelReasons: countBy(cancelled.map((o) => o.timeline.find((e) => e.kind === 'compensation-started')?.reason ?? 'unknown')),
      completedAfterSeconds: { median: finishedS[Math.floor(finishedS.length / 2)], max: finishedS.at(-1) },
    };
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const dir = join(REPO_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `backlog-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
    const pass = !options.backlogCheck || (result.stillOpen === 0 && cancelled.length === 0 && (states.attention ?? 0) === 0);
    process.stdout.write(
      [
        `backlog run, ${label}: ${options.orders} orders, each payment ${options.billingLatencyMs} ms, 16 at a time; ${result.seconds.toFixed(0)} s`,
        `  completed ${states.completed ?? 0}, cancelled ${cancelled.length}, attention ${states.attention ?? 0}, still open ${result.stillOpen}`,
        `  stuck republishes ${JSON.stringify(result.stuckRepublishes)}`,
        `  why cancelled ${JSON.stringify(result.cancelReasons)}`,
        `  completed orders took (s) median ${result.completedAfterSeconds.median?.toFixed(0) ?? '–'}, max ${result.completedAfterSeconds.max?.toFixed(0) ?? '–'}`,
        `  ${options.backlogCheck ? (pass ? 'PASS: no order cancelled or left open' : 'FAIL: orders cancelled or left open behind a backlog') : 'comparison run (no verdict)'}`,
        `result: bench/results/backlog-${stamp}.json`,
      ].join('\n') + '\n',
    );
    if (!pass) process.exitCode = 1;
  } finally {
    agent.destroy();
    await stack.stop();
  }
}

/**
 * Seconds from an order's placing to its completion, by the entry the completing patch wrote:
 * `updatedAt` moves with every entry after it too (a late duplicate delivery, a dead-letter noted),
 * and the run without the backlog check leaves republished messages that arrive after completion.
 */
export function completedAfterSeconds(order: Pick<SeenOrder, 'state' | 'createdAt' | 'timeline'>): number | undefined {
  if (order.state !== 'completed') return undefined;
  const completed = order.timeline.find((e) => e.kind === 'completed');
  return completed ? (Date.parse(completed.at) - Date.parse(order.createdAt)) / 1000 : undefined;
}

function countBy(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`backlog run failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
