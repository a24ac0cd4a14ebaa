/**
 * Intake and end-to-end throughput through the local Functions host and emulators:
 * `node dist/bench/intake.js` (build first). Prints intake latency p50/p95/p99 and accepted
 * orders/s at concurrency 1, 16 and 64, p99 at a steady 100 orders/s, and completed orders/s.
 * Options: BENCH_SECONDS (per phase, default 5), BENCH_E2E_ORDERS (default 300),
 * BENCH_CPU_PROFILE=<dir> (write V8 CPU profiles of the Functions host and both emulators there: host-*, cosmos-*, servicebus-*).
 * CPU time per order (from /proc) is printed too: unlike latency, it holds when other work shares the machine.
 */
import { CosmosClient } from '@azure/cosmos';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { cpus, loadavg } from 'node:os';
import { startLocalStack } from '../local/stack';
import { SEED_CATALOG } from '../src/domain/catalog';
import { cosmosTopology } from '../src/topology';
import { cpuMilliseconds, residentMegabytes } from './process-usage';

const seconds = Number(process.env['BENCH_SECONDS'] ?? 5);
const e2eOrders = Number(process.env['BENCH_E2E_ORDERS'] ?? 300);
const profileDir = process.env['BENCH_CPU_PROFILE'];
const skus = SEED_CATALOG.filter((s) => s.available >= 1000).map((s) => s.id);

interface Sample {
  ms: number;
  status: number;
  orderId?: string;
}

/** V8 CPU profile flags for one process: `<BENCH_CPU_PROFILE>/<name>-*.cpuprofile`. */
function profileArgs(name: string): string[] {
  return profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}-${process.pid}.cpuprofile`] : [];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function postOrder(baseUrl: string, agent: HttpAgent, n: number): Promise<Sample> {
  const body = JSON.stringify({ customerId: `bench-${n % 97}`, items: [{ sku: skus[n % skus.length], quantity: 1 }] });
  const url = new URL('/api/orders', baseUrl);
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const ms = performance.now() - started;
          let orderId: string | undefined;
          try {
            orderId = (JSON.parse(text) as { orderId?: string }).orderId;
          } catch {
            // Not JSON: counted by status.
          }
          resolve({ ms, status: res.statusCode ?? 0, ...(orderId ? { orderId } : {}) });
        });
      },
    );
    req.on('error', () => resolve({ ms: performance.now() - started, status: 0 }));
    req.end(body);
  });
}

let counter = 0;

/** Closed loop: `concurrency` clients, each posting its next order when the last was answered. */
async function closedLoop(baseUrl: string, concurrency: number, durationMs: number): Promise<Sample[]> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  const samples: Sample[] = [];
  const deadline = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) samples.push(await postOrder(baseUrl, agent, counter++));
    }),
  );
  agent.destroy();
  return samples;
}

/** Open loop at a fixed rate: latency as a steady stream of clients sees it. */
async function openLoop(baseUrl: string, perSecond: number, durationMs: number): Promise<Sample[]> {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  const inFlight: Promise<Sample>[] = [];
  const start = performance.now();
  const total = Math.round((perSecond * durationMs) / 1000);
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(postOrder(baseUrl, agent, counter++));
  }
  const samples = await Promise.all(inFlight);
  agent.destroy();
  return samples;
}

/** Waits until a count stops moving (the previous phase's orders have drained), at most 60 s. */
async function waitUntilQuiet(count: () => Promise<number>): Promise<void> {
  let last = await count();
  const deadline = Date.now() + 60_000;
  for (let stable = 0; stable < 2 && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = await count();
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
}

function report(label: string, samples: Sample[], durationMs: number, ordersBefore: number): void {
  const accepted = samples.filter((s) => s.status === 202);
  const sorted = accepted.map((s) => s.ms).sort((a, b) => a - b);
  const others = samples.length - accepted.length;
  console.log(
    `${label.padEnd(22)} accepted ${String(accepted.length).padStart(6)}  ${(accepted.length / (durationMs / 1000)).toFixed(0).padStart(5)}/s` +
      `  p50 ${percentile(sorted, 50).toFixed(1).padStart(6)} ms  p95 ${percentile(sorted, 95).toFixed(1).padStart(6)} ms  p99 ${percentile(sorted, 99).toFixed(1).padStart(6)} ms` +
      (others ? `  non-202: ${others}` : '') +
      `  (${ordersBefore} orders stored before)`,
  );
}

async function main(): Promise<void> {
  let cosmosClient: CosmosClient | undefined;
  let agent: HttpsAgent | undefined;
  // Each emulator in its own process, as `npm start` runs them: in one process they would share
  // one core and the figures would measure that.
  const stack = await startLocalStack({
    nodeArgs: profileArgs,
    hostTimeoutMs: 60_000,
    // Stock for every order the run can place, so the end-to-end figure measures completions.
    async beforeHost({ cosmos }) {
      agent = new HttpsAgent({ ca: readFileSync(cosmos.caCertificateFile), keepAlive: true });
      cosmosClient = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key, agent });
      const inventory = cosmosClient.database(cosmosTopology.databaseName).container('inventory');
      for (const item of SEED_CATALOG) await inventory.items.upsert({ ...item, available: 10_000_000, reserved: 0, holds: {} });
    },
  });
  const database = cosmosClient!.database(cosmosTopology.databaseName);
  const host = stack.host();
  const baseUrl = stack.baseUrl;
  const orders = database.container('orders');
  const countOrders = async (where = ''): Promise<number> => {
    const { resources } = await orders.items.query<number>(`SELECT VALUE COUNT(1) FROM c${where}`).fetchAll();
    return resources[0] ?? 0;
  };
  try {
    console.log(`intake benchmark: ${seconds} s per phase, host ${baseUrl}`);
    await closedLoop(baseUrl, 4, 1000); // warm-up: JIT, connections, first monitor starts

    // End to end first, on a quiet system.
    await waitUntilQuiet(() => countOrders(" WHERE c.state = 'completed'"));
    const before = await countOrders(" WHERE c.state = 'completed'");
    const burstAgent = new HttpAgent({ keepAlive: true, maxSockets: 32 });
    const processes = { host: host.pid, cosmos: stack.cosmosEmulator.pid, 'service bus': stack.serviceBusEmulator.pid };
    const cpuBefore = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, cpuMilliseconds(pid)]));
    const started = performance.now();
    const samples: Sample[] = [];
    await Promise.all(
      Array.from({ length: 32 }, async (_, lane) => {
        for (let i = lane; i < e2eOrders; i += 32) samples.push(await postOrder(baseUrl, burstAgent, counter++));
      }),
    );
    burstAgent.destroy();
    const accepted = samples.filter((s) => s.status === 202).length;
    const deadline = performance.now() + 180_000;
    let completed = 0;
    while (performance.now() < deadline) {
      completed = (await countOrders(" WHERE c.state = 'completed'")) - before;
      if (completed >= accepted) break;
      // Stand-in queries are full scans: poll gently so the figure is not the poll's cost.
      await new Promise((r) => setTimeout(r, 250));
    }
    const elapsed = (performance.now() - started) / 1000;
    if (completed < accepted) {
      const { resources } = await orders.items
        .query<{ state: string; status: Record<string, string> }>("SELECT c.state, c.status FROM c WHERE c.state != 'completed'")
        .fetchAll();
      const shapes = new Map<string, number>();
      for (const o of resources) {
        const key = `${o.state} ${Object.entries(o.status).map(([k, v]) => `${k}=${v}`).join(',')}`;
        shapes.set(key, (shapes.get(key) ?? 0) + 1);
      }
      console.log('not completed:', [...shapes].map(([k, n]) => `${n} x ${k}`).join('; '));
    }
    console.log(
      `end to end             ${accepted} accepted, ${completed} completed in ${elapsed.toFixed(1)} s: ${(completed / elapsed).toFixed(0)} completed orders/s`,
    );
    console.log(
      `CPU per completed order ${Object.entries(processes)
        .map(([name, pid]) => `${name} ${((cpuMilliseconds(pid) - cpuBefore[name]!) / Math.max(completed, 1)).toFixed(1)} ms`)
        .join(', ')}  (machine load ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores)`,
    );

    for (const concurrency of [1, 16, 64]) {
      await waitUntilQuiet(() => countOrders(" WHERE c.state = 'completed'"));
      const size = await countOrders();
      report(`concurrency ${concurrency}`, await closedLoop(baseUrl, concurrency, seconds * 1000), seconds * 1000, size);
    }
    await waitUntilQuiet(() => countOrders(" WHERE c.state = 'completed'"));
    const size = await countOrders();
    report('steady 100 orders/s', await openLoop(baseUrl, 100, seconds * 1000), seconds * 1000, size);
    console.log(`host RSS ${(await residentMegabytes(host.pid)).toFixed(0)} MB after ${await countOrders()} orders`);
  } finally {
    cosmosClient!.dispose();
    agent!.destroy();
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
