/**
 * Durable engine benchmark: completed orchestrations per second (3-activity sequence, 10-way
 * fan-out), time per episode as the history grows, and database bytes per completed instance.
 * Runs the real durable-functions handlers through the worker's core module, like the local host.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/durable.js [--sequence N] [--fanout N]
 */
import * as fs from 'node:fs';
import Module from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';

interface Registration {
  metadata: { name: string; bindings: Record<string, { type: string; direction: string }> };
  handler: (input: unknown, context: unknown) => unknown;
}

/** Captures registrations the way the Functions worker's `@azure/functions-core` module does. */
function provideFunctionsCore(): Map<string, Registration> {
  const functions = new Map<string, Registration>();
  const core = {
    version: 'bench',
    hostVersion: 'bench',
    registerFunction: (metadata: Registration['metadata'], handler: Registration['handler']) => {
      functions.set(metadata.name, { metadata, handler });
      return { dispose: () => functions.delete(metadata.name) };
    },
    setProgrammingModel: () => undefined,
    getProgrammingModel: () => undefined,
    registerHook: () => ({ dispose: () => undefined }),
    log: () => undefined,
    Disposable: class {
      dispose(): void {}
    },
  };
  const proto = Module.prototype as unknown as { require: (id: string) => unknown };
  const original = proto.require;
  proto.require = function (this: unknown, id: string) {
    if (id === '@azure/functions-core') return core;
    return original.call(this, id);
  };
  return functions;
}

const functions = provideFunctionsCore();
// Loaded after the core module is in place, as in the worker.
/* eslint-disable @typescript-eslint/no-require-imports */
const df = require('durable-functions') as typeof import('durable-functions');
const { InvocationContext } = require('@azure/functions') as typeof import('@azure/functions');
const { DurableEngine } = require('../local/durable') as typeof import('../local/durable');
/* eslint-enable @typescript-eslint/no-require-imports */

df.app.activity('benchStep', { handler: (x: number) => x + 1 });
df.app.orchestration('benchSequence', function* (context) {
  const a: number = yield context.df.callActivity('benchStep', context.df.getInput<number>());
  const b: number = yield context.df.callActivity('benchStep', a);
  return yield context.df.callActivity('benchStep', b);
});
df.app.orchestration('benchFanOut', function* (context) {
  const parts: number[] = yield context.df.Task.all(Array.from({ length: 10 }, (_, i) => context.df.callActivity('benchStep', i)));
  return parts.reduce((s, x) => s + x, 0);
});
df.app.orchestration('benchLongHistory', function* (context) {
  const steps = context.df.getInput<number>();
  let x = 0;
  for (let i = 0; i < steps; i++) x = yield context.df.callActivity('benchStep', x);
  return x;
});

const triggerType = (r: Registration): string | undefined =>
  Object.values(r.metadata.bindings).find((b) => b.direction === 'in' && b.type.endsWith('Trigger'))?.type;

/** Replay timings by history length, recorded around the orchestrator invocation. */
const replays: Array<{ historyLength: number; ms: number }> = [];

const invoker = {
  hasOrchestrator: (n: string) => triggerType(functions.get(n) as Registration) === 'orchestrationTrigger',
  hasActivity: (n: string) => triggerType(functions.get(n) as Registration) === 'activityTrigger',
  invokeOrchestrator: async (n: string, payload: unknown) => {
    const began = performance.now();
    const result = await (functions.get(n) as Registration).handler(
      payload,
      new InvocationContext({ functionName: n, invocationId: randomUUID() }),
    );
    replays.push({ historyLength: (payload as { history: unknown[] }).history.length, ms: performance.now() - began });
    return result;
  },
  invokeActivity: async (n: string, input: unknown) =>
    (functions.get(n) as Registration).handler(input, new InvocationContext({ functionName: n, invocationId: randomUUID() })),
};

type Engine = InstanceType<typeof DurableEngine>;

async function withEngine<T>(
  name: string,
  fn: (engine: Engine, episodes: Array<{ historyLength: number; ms: number }>) => Promise<T>,
): Promise<T> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `durable-bench-${name}-`));
  const episodes: Array<{ historyLength: number; ms: number }> = [];
  const engine = new DurableEngine({
    dataDir,
    hubName: 'Bench',
    baseUrl: 'http://127.0.0.1:0',
    invoker,
    log: (level, msg, props) => {
      if (msg === 'episode') episodes.push(props as { historyLength: number; ms: number });
      if (level === 'error') console.error(msg, props);
    },
  });
  await engine.start();
  try {
    return await fn(engine, episodes);
  } finally {
    await engine.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function throughput(
  orchestrator: string,
  count: number,
): Promise<{ perSecond: number; perCpuSecond: number; bytesPerInstance: number }> {
  return withEngine(orchestrator, async (engine) => {
    const began = performance.now();
    const cpuBefore = process.cpuUsage();
    for (let i = 0; i < count; i++) await engine.startOrchestration(orchestrator, undefined, JSON.stringify(i));
    await engine.whenIdle();
    const seconds = (performance.now() - began) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const page = engine.listInstances({ runtimeStatus: ['Completed'] }, count + 1);
    if (page.rows.length !== count) throw new Error(`${orchestrator}: ${page.rows.length}/${count} completed`);
    const db = new (require('better-sqlite3') as typeof import('better-sqlite3'))(engine.databaseFile);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const pages = db.pragma('page_count', { simple: true }) as number;
    const free = db.pragma('freelist_count', { simple: true }) as number;
    db.close();
    return { perSecond: count / seconds, perCpuSecond: count / cpuSeconds, bytesPerInstance: ((pages - free) * pageSize) / count };
  });
}

async function episodeCost(): Promise<Array<{ history: number; episodeMs: number; replayMs: number }>> {
  return withEngine('history', async (engine, episodes) => {
    // 4 history events per step (OrchestratorStarted, TaskCompleted, TaskScheduled, OrchestratorCompleted);
    // one instance at a time so the figures are not queueing.
    replays.length = 0;
    for (let i = 0; i < 5; i++) {
      await engine.startOrchestration('benchLongHistory', undefined, '250');
      await engine.whenIdle();
    }
    // Median of the episodes near each length: a shared machine adds GC and scheduling outliers.
    const near = <T extends { historyLength: number; ms: number }>(rows: T[], target: number): number => {
      const hits = rows
        .filter((e) => Math.abs(e.historyLength - target) <= Math.max(4, target * 0.05))
        .map((e) => e.ms)
        .sort((a, b) => a - b);
      return hits.length ? Number(hits[Math.floor(hits.length / 2)].toFixed(3)) : NaN;
    };
    return [10, 100, 250, 500, 750, 1000].map((target) => ({
      history: target,
      episodeMs: near(episodes, target),
      replayMs: near(replays, target),
    }));
  });
}

async function main(): Promise<void> {
  const arg = (flag: string, fallback: number): number => {
    const i = process.argv.indexOf(flag);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const sequenceCount = arg('--sequence', 2000);
  const fanoutCount = arg('--fanout', 500);
  console.log(`durable engine benchmark (node ${process.version}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(2)})`);
  const seq = await throughput('benchSequence', sequenceCount);
  console.log(
    `3-activity sequence: ${sequenceCount} instances, ${seq.perSecond.toFixed(0)} completed/s wall clock ` +
      `(${seq.perCpuSecond.toFixed(0)} per CPU-second of this process), ${seq.bytesPerInstance.toFixed(0)} DB bytes per completed instance`,
  );
  const fan = await throughput('benchFanOut', fanoutCount);
  console.log(
    `10-way fan-out:      ${fanoutCount} instances, ${fan.perSecond.toFixed(0)} completed/s wall clock ` +
      `(${fan.perCpuSecond.toFixed(0)} per CPU-second of this process), ${fan.bytesPerInstance.toFixed(0)} DB bytes per completed instance`,
  );
  console.log('time per episode by history length (episode = load + SDK replay of the whole history + commit):');
  for (const row of await episodeCost()) {
    console.log(`  ${String(row.history).padStart(5)} events: episode ${row.episodeMs} ms, of which SDK replay ${row.replayMs} ms`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
