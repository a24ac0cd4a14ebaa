/**
 * Properties of the durable history purge (src/support/historyPurge.ts, run by
 * triggers/historyPurge.ts) through the real DurableClient against the durable engine, on a
 * virtual clock. Orders' monitors stand in as small orchestrations that wait, run compensation
 * runs as sub-orchestrations, continue as new, complete, fail or are terminated; the monitor
 * sweeper's restart is a start over a finished instance. After every purge run:
 *
 * - no instance that is not finished (running, pending, suspended) lost anything: it is there
 *   with all its history;
 * - no instance created within the retention was purged, finished or not;
 * - every finished instance created before the retention is gone, and the count says how many;
 * - a purge stopped midway (the host going down) left every instance whole or gone, never half;
 *   the next run finishes the job;
 * - an instance started again while the purge runs is judged as it is when its turn comes.
 *
 * The purge goes by the orchestration, not by the order: a failed or terminated monitor of an order
 * still active goes too (the monitor sweeper starts it again, as it does one that is missing), and
 * so do the finished compensation runs of a monitor still running (its history holds their results).
 */
import * as df from 'durable-functions';
import type { OrchestrationContext } from 'durable-functions';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { durableHistoryPurgeClient } from '../../src/azure/durableHistoryPurgeClient';
import { createLogger } from '../../src/log';
import { purgeFinishedHistory } from '../../src/support/historyPurge';
import { searchOptions } from '../unit/support/searchOptions';
import { startTestHub, type TestHub } from './harness';
import type { DurableEngine } from '../../local/durable';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** A retention of one day: hours of virtual time cover it. */
const RETENTION_DAYS = 1;
const FINISHED = new Set(['Completed', 'Failed', 'Terminated']);

const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });

type Nudge = 'complete' | 'fail' | 'compensate' | 'renew';

df.app.orchestration('purgeMonitor', function* (context: OrchestrationContext) {
  const runs = (context.df.getInput<{ runs?: number }>()?.runs ?? 0) as number;
  for (let run = runs; ; ) {
    const nudge: Nudge = yield context.df.waitForExternalEvent('Nudge');
    if (nudge === 'complete') return 'completed';
    if (nudge === 'fail') throw new Error('monitor failed');
    if (nudge === 'renew') {
      context.df.continueAsNew({ runs: run });
      return undefined;
    }
    run += 1;
    yield context.df.callSubOrchestrator('purgeCompensation', run, `${context.df.instanceId}:compensation:${run}`);
  }
});

df.app.orchestration('purgeCompensation', function* (context: OrchestrationContext) {
  return `compensated ${context.df.getInput<number>()}`;
});

let hub: TestHub;
let dataDir: string;

beforeAll(async () => {
  // A directory of the suite's own: the hub is stopped and started again on it.
  dataDir = mkdtempSync(join(tmpdir(), 'history-purge-'));
  hub = await startTestHub({ dataDir });
});

afterAll(async () => {
  await hub?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

interface Seen {
  id: string;
  status: string;
  createdAt: number;
  history: number;
}

/** Every instance the engine holds, with its status, creation time and history length. */
function everyInstance(engine: DurableEngine): Map<string, Seen> {
  const rows = engine.listInstances({}, 100_000).rows;
  return new Map(rows.map((r) => [r.instance_id, { id: r.instance_id, status: r.status, createdAt: r.created_at, history: engine.historyOf(r.instance_id).length }]));
}

/** Purges every instance left from an earlier case. */
async function clearHub(): Promise<void> {
  await hub.idle();
  for (const id of everyInstance(hub.engine).keys()) {
    const status = hub.engine.getInstance(id)?.status;
    if (status && !FINISHED.has(status)) await hub.client.terminate(id, 'next case');
  }
  await hub.idle();
  for (const id of everyInstance(hub.engine).keys()) await hub.client.purgeInstanceHistory(id).catch(() => undefined);
}

function purgeRun(): Promise<number> {
  return purgeFinishedHistory(new Date(hub.engine.clock.now()), RETENTION_DAYS, { client: durableHistoryPurgeClient(hub.client), log: silent });
}

/** What must hold of a purge run, given the instances before it and after it. */
function expectPurgeKept(before: Map<string, Seen>, after: Map<string, Seen>, cutoff: number, deleted: number): void {
  const gone = [...before.values()].filter((s) => !after.has(s.id));
  const wronglyGone = gone.filter((s) => !FINISHED.has(s.status) || s.createdAt > cutoff);
  expect(wronglyGone).toEqual([]);
  const missed = [...after.values()].filter((s) => FINISHED.has(s.status) && s.createdAt <= cutoff);
  expect(missed).toEqual([]);
  for (const s of before.values()) {
    if (!FINISHED.has(s.status)) expect({ id: s.id, history: (after.get(s.id)?.history ?? 0) >= s.history }).toEqual({ id: s.id, history: true });
  }
  expect(deleted).toBe(gone.length);
}

const ORDERS = ['o1', 'o2', 'o3', 'o4'];

type Command =
  | { kind: 'start'; order: string }
  | { kind: 'nudge'; order: string; nudge: Nudge }
  | { kind: 'terminate'; order: string }
  | { kind: 'advance'; ms: number }
  | { kind: 'purge' }
  | { kind: 'purgeCutShort'; after: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('start' as const), order: fc.constantFrom(...ORDERS) }),
  { arbitrary: fc.record({ kind: fc.constant('nudge' as const), order: fc.constantFrom(...ORDERS), nudge: fc.constantFrom<Nudge>('complete', 'fail', 'compensate', 'renew') }), weight: 3 },
  fc.record({ kind: fc.constant('terminate' as const), order: fc.constantFrom(...ORDERS) }),
  {
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      // Minutes to a day and more, and steps that end just short of, at and just past the retention.
      ms: fc.oneof(fc.integer({ min: 1, max: 30 * 60 }).map((minutes) => minutes * 60_000), fc.constantFrom(HOUR, DAY - HOUR, DAY - 60_000, DAY, DAY + 60_000)),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('purge' as const) }), weight: 2 },
  fc.record({ kind: fc.constant('purgeCutShort' as const), after: fc.nat(4) }),
);

function running(id: string): boolean {
  const status = hub.engine.getInstance(id)?.status;
  return status !== undefined && !FINISHED.has(status);
}

async function apply(command: Command): Promise<void> {
  switch (command.kind) {
    case 'start':
      // The intake, or the monitor sweeper starting a finished monitor again.
      if (!running(command.order)) await hub.client.startNew('purgeMonitor', { instanceId: command.order, input: {} });
      break;
    case 'nudge':
      if (running(command.order)) await hub.client.raiseEvent(command.order, 'Nudge', command.nudge);
      break;
    case 'terminate':
      if (running(command.order)) await hub.client.terminate(command.order, 'support');
      break;
    case 'advance':
      await hub.advance(command.ms);
      break;
    case 'purge': {
      await hub.idle();
      const before = everyInstance(hub.engine);
      const cutoff = hub.engine.clock.now() - RETENTION_DAYS * DAY;
      const deleted = await purgeRun();
      expectPurgeKept(before, everyInstance(hub.engine), cutoff, deleted);
      break;
    }
    case 'purgeCutShort': {
      // The host goes down while the purge runs, after it took `after` instances (or once it is
      // done), and comes back on the same task hub.
      await hub.idle();
      const before = everyInstance(hub.engine);
      const now = hub.engine.clock.now();
      const cutoff = now - RETENTION_DAYS * DAY;
      const engine = hub.engine as unknown as { withInstance(id: string, fn: () => unknown): Promise<unknown> };
      const withInstance = engine.withInstance.bind(engine);
      let taken = 0;
      engine.withInstance = (id, fn) => {
        if (taken++ >= command.after) return Promise.reject(new Error('the host went down'));
        return withInstance(id, fn);
      };
      const cut = await purgeRun().then(
        () => false,
        () => true,
      );
      delete (engine as Partial<typeof engine>).withInstance;
      await hub.stop();
      hub = await startTestHub({ dataDir });
      await hub.advance(Math.max(0, now - hub.engine.clock.now()));
      const after = everyInstance(hub.engine);
      // Each instance whole or gone, and gone only when finished before the retention.
      const gone = [...before.values()].filter((s) => !after.has(s.id));
      expect(gone.filter((s) => !FINISHED.has(s.status) || s.createdAt > cutoff)).toEqual([]);
      for (const s of after.values()) expect(s).toEqual(before.get(s.id));
      if (cut) expect(gone.length).toBeLessThanOrEqual(command.after);
      break;
    }
  }
  await hub.idle();
}

describe('durable history purge', () => {
  it('purges every finished instance created before the retention, and nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 16 }), async (commands) => {
        await clearHub();
        for (const command of commands) await apply(command);
        // However the case went, a last run after the retention leaves only unfinished instances.
        await apply({ kind: 'advance', ms: DAY + HOUR });
        await apply({ kind: 'purge' });
        expect([...everyInstance(hub.engine).values()].filter((s) => FINISHED.has(s.status))).toEqual([]);
      }),
      searchOptions(50),
    );
  });
});

type Fate = 'running' | 'complete' | 'fail' | 'terminate' | 'compensateAndWait' | 'compensateAndComplete';

/** Starts an order's monitor and takes it to `fate`. */
async function monitorWith(order: string, fate: Fate): Promise<void> {
  await apply({ kind: 'start', order });
  if (fate === 'compensateAndWait' || fate === 'compensateAndComplete') await apply({ kind: 'nudge', order, nudge: 'compensate' });
  if (fate === 'complete' || fate === 'compensateAndComplete') await apply({ kind: 'nudge', order, nudge: 'complete' });
  if (fate === 'fail') await apply({ kind: 'nudge', order, nudge: 'fail' });
  if (fate === 'terminate') await apply({ kind: 'terminate', order });
}

describe('durable history purge cut short', () => {
  it('leaves every instance whole or gone, only finished old ones gone, and the next run finishes the job', async () => {
    const fate = fc.constantFrom<Fate>('running', 'complete', 'fail', 'terminate', 'compensateAndWait', 'compensateAndComplete');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fate, { minLength: 1, maxLength: 10 }),
        fc.array(fate, { maxLength: 4 }),
        fc.nat(12),
        async (old, recent, after) => {
          await clearHub();
          for (const [i, f] of old.entries()) await monitorWith(`old-${i}`, f);
          await apply({ kind: 'advance', ms: DAY + HOUR });
          for (const [i, f] of recent.entries()) await monitorWith(`new-${i}`, f);
          await apply({ kind: 'purgeCutShort', after });
          await apply({ kind: 'purge' });
        },
      ),
      searchOptions(20),
    );
  });
});

describe('durable history purge at the retention', () => {
  it('purges what was created a retention ago or longer, and keeps what was created since', async () => {
    await clearHub();
    // Created (and finished) 25 h, 24 h, 23.5 h and 1 minute ago, with a retention of one day.
    for (const [order, wait] of [['o1', HOUR], ['o2', HOUR / 2], ['o3', 23.5 * HOUR - 60_000], ['o4', 60_000]] as const) {
      await apply({ kind: 'start', order });
      await apply({ kind: 'nudge', order, nudge: 'complete' });
      await apply({ kind: 'advance', ms: wait });
    }
    await apply({ kind: 'purge' });
    expect([...everyInstance(hub.engine).keys()].sort()).toEqual(['o3', 'o4']);
  });
});

describe('durable history purge while a monitor is started again', () => {
  it('keeps a monitor started again, and finished, after the purge found it old and before it purged it', async () => {
    await clearHub();
    await apply({ kind: 'start', order: 'o1' });
    await apply({ kind: 'nudge', order: 'o1', nudge: 'complete' });
    await apply({ kind: 'advance', ms: DAY + HOUR });
    // The monitor sweeper (or a support request) starts the monitor again, and it finishes at once,
    // between the purge listing the old one and taking it.
    const engine = hub.engine as unknown as { withInstance(id: string, fn: () => unknown): Promise<unknown> };
    const withInstance = engine.withInstance.bind(engine);
    let restarted = false;
    engine.withInstance = async (id, fn) => {
      if (id === 'o1' && !restarted) {
        restarted = true;
        await hub.client.startNew('purgeMonitor', { instanceId: 'o1', input: {} });
        await hub.idle();
        await hub.client.raiseEvent('o1', 'Nudge', 'complete');
        await hub.idle();
      }
      return withInstance(id, fn);
    };
    const cutoff = hub.engine.clock.now() - RETENTION_DAYS * DAY;
    try {
      expect(await purgeRun()).toBe(0);
    } finally {
      delete (engine as Partial<typeof engine>).withInstance;
    }
    expect(restarted).toBe(true);
    const monitor = hub.engine.getInstance('o1');
    expect(monitor?.status).toBe('Completed');
    expect(monitor!.created_at).toBeGreaterThan(cutoff);
  });
});
