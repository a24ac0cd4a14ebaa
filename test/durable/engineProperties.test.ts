/**
 * Properties of the local durable engine (local/durable/), checked against a model, with the real
 * durable-functions SDK running the orchestrations and the real DurableClient driving them.
 *
 * A scenario starts a few instances of one orchestrator that interprets a program drawn at random:
 * generations joined by continue-as-new, each a list of steps: an activity that succeeds or throws,
 * an activity with retry options that fails until a moment in virtual time, a durable timer (some
 * longer than the SDK's 6-day limit, so split), an external event raced against a timer with
 * `Task.any`, the same event awaited several times in a row (each against a timer), a `Task.all`
 * fan-out of plain and retried activities with failures among them, and a sub-orchestration that
 * completes or fails. Every step logs what it got and when (orchestration time).
 *
 * Operations drawn at random, each followed by waiting until the engine is idle or only a few turns
 * of the event loop: starts, virtual time moving (by set amounts, to the next timer, to just
 * before it), events raised (for steps to come, under way or past), status reads, terminate (also
 * while the engine is still at work on the moment, if the instance cannot finish at it), suspend,
 * resume, purge of a finished instance and of a running one (refused), a start of an id
 * again (over a finished instance; refused over a running one), and the engine stopped and started
 * again on the same store: at rest, while activities and episodes run, halfway through a time
 * advance.
 *
 * The model computes from the program, the raised events, suspensions and the virtual time what
 * each instance has done: virtual time only moves when told (a restart included); a timer fires at
 * its time, not before, and once; a retry attempt runs at the DTFx backoff times and the last
 * failure surfaces one more backoff later; an event raised and acknowledged is delivered, once, at
 * the time it was raised, or waits for the step that waits for it; a step whose timer fired first
 * logs a timeout; a suspended instance gets its timers and events when it resumes.
 * Checked against it:
 * - after every status read and at the end: each instance's runtime status and output (the whole
 *   log, times included), in its status and in the listing; a purged instance is gone;
 * - the stored history of the current execution: every completion answers one scheduled task,
 *   once; a timer fired in an episode that began at or after its time; episodes in time order; a
 *   raised event appears at most once;
 * - each activity ran as often as the model says (retries counted), exactly when the engine was
 *   never stopped, at least that often when it was: a result lost with the process runs again; and
 *   none ran that no orchestration called.
 */
import * as df from 'durable-functions';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { searchOptions } from '../unit/support/searchOptions';
import { startTestHub, type TestHub } from './harness';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------------------------
// The program and the functions that run it

/** Retry options, and how long the activity keeps failing from the moment it is first called. */
interface Flaky {
  firstMs: number;
  attempts: number;
  coefficient: number;
  failForMs: number;
}

type FanItem = { t: 'work'; fail: boolean; ticks: number } | ({ t: 'flaky' } & Flaky);

type Step =
  | { t: 'act'; fail: boolean; ticks: number }
  | ({ t: 'retry' } & Flaky)
  | { t: 'timer'; ms: number }
  | { t: 'race'; ms: number }
  | { t: 'collect'; n: number; ms: number }
  | { t: 'fan'; items: FanItem[] }
  | { t: 'sub'; fail: boolean };

/** What a step got, and when (ms of orchestration time since the scenario began). */
type Entry = [kind: Step['t'], value: unknown, at: number];

interface ProgramInput {
  base: number;
  /** Which start of the instance id this is (an id that finished may be started again). */
  run: number;
  gens: Step[][];
  gen: number;
  log: Entry[];
}

const eventName = (gen: number, step: number): string => `e${gen}.${step}`;
const tagOf = (id: string, run: number, gen: number, step: number): string => `${id}#${run}/${gen}.${step}`;

/** Activity runs by tag, whatever became of their results. */
const runs = new Map<string, number>();
const ran = (tag: string): void => {
  runs.set(tag, (runs.get(tag) ?? 0) + 1);
};
/** The running engine's clock, as an activity on the host could read the time. */
let engineNow: () => number = () => {
  throw new Error('no engine running');
};
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

df.app.activity('propWork', {
  handler: async (input: { tag: string; fail: boolean; ticks: number }) => {
    ran(input.tag);
    await turns(input.ticks);
    if (input.fail) throw new Error(`refused ${input.tag}`);
    return `done ${input.tag}`;
  },
});

df.app.activity('propFlaky', {
  handler: (input: { tag: string; failBefore: number }) => {
    ran(input.tag);
    if (engineNow() < input.failBefore) throw new Error(`not yet ${input.tag}`);
    return `ok ${input.tag}`;
  },
});

df.app.orchestration('propChild', function* (context) {
  const { tag, fail } = context.df.getInput<{ tag: string; fail: boolean }>();
  const done: string = yield context.df.callActivity('propWork', { tag: `${tag}.child`, fail: false, ticks: 1 });
  if (fail) throw new Error(`child of ${tag} gave up`);
  return `child ${done}`;
});

df.app.orchestration('propProgram', function* (context) {
  const input = context.df.getInput<ProgramInput>();
  const id = context.df.instanceId;
  const log = [...input.log];
  const now = (): number => context.df.currentUtcDateTime.getTime();
  const at = (): number => now() - input.base;
  const steps = input.gens[input.gen];
  const callFlaky = (flaky: Flaky, tag: string) => {
    const options = new df.RetryOptions(flaky.firstMs, flaky.attempts);
    options.backoffCoefficient = flaky.coefficient;
    return context.df.callActivityWithRetry('propFlaky', options, { tag, failBefore: now() + flaky.failForMs });
  };
  for (let s = 0; s < steps.length; s++) {
    const step = steps[s];
    const tag = tagOf(id, input.run, input.gen, s);
    switch (step.t) {
      case 'act':
        try {
          log.push(['act', yield context.df.callActivity('propWork', { tag, fail: step.fail, ticks: step.ticks }), at()]);
        } catch {
          log.push(['act', 'error', at()]);
        }
        break;
      case 'retry':
        try {
          log.push(['retry', yield callFlaky(step, tag), at()]);
        } catch {
          log.push(['retry', 'error', at()]);
        }
        break;
      case 'timer':
        yield context.df.createTimer(new Date(now() + step.ms));
        log.push(['timer', null, at()]);
        break;
      case 'race':
      case 'collect': {
        const rounds = step.t === 'race' ? 1 : step.n;
        for (let i = 0; i < rounds; i++) {
          const timer = context.df.createTimer(new Date(now() + step.ms));
          const event = context.df.waitForExternalEvent(eventName(input.gen, s));
          const winner = yield context.df.Task.any([event, timer]);
          if (winner === event) {
            timer.cancel();
            log.push([step.t, event.result, at()]);
          } else {
            log.push([step.t, 'timeout', at()]);
          }
        }
        break;
      }
      case 'fan':
        try {
          const tasks = step.items.map((item, i) =>
            item.t === 'work'
              ? context.df.callActivity('propWork', { tag: `${tag}.${i}`, fail: item.fail, ticks: item.ticks })
              : callFlaky(item, `${tag}.${i}`),
          );
          log.push(['fan', yield context.df.Task.all(tasks), at()]);
        } catch {
          log.push(['fan', 'error', at()]);
        }
        break;
      case 'sub':
        try {
          log.push(['sub', yield context.df.callSubOrchestrator('propChild', { tag, fail: step.fail }), at()]);
        } catch {
          log.push(['sub', 'error', at()]);
        }
        break;
    }
  }
  if (input.gen + 1 < input.gens.length) {
    context.df.continueAsNew({ ...input, gen: input.gen + 1, log });
    return undefined;
  }
  return log;
});

// ---------------------------------------------------------------------------------------------
// The model

interface Raise {
  at: number;
  name: string;
  value: number;
  /** Raised while the instance was suspended: held until it resumes. */
  held?: Suspension;
}

/** From a suspend to the resume (none yet: undefined). */
interface Suspension {
  from: number;
  to?: number;
}

/** When a message that comes due at `t` reaches the orchestrator: a suspended instance gets it when it resumes. */
const delivery =
  (suspensions: Suspension[]) =>
  (t: number): number => {
    const held = suspensions.find((s) => t > s.from && t < (s.to ?? Infinity));
    return held ? (held.to ?? Infinity) : t;
  };

/** When a timer from `start` to `fireAt` fires: in segments beyond the SDK's 6 days; a segment that comes late past `fireAt` ends it. */
function timerDone(start: number, fireAt: number, deliver: (t: number) => number): number {
  for (let t = start; ; ) {
    const segment = fireAt - t > 6 * DAY ? t + 3 * DAY : fireAt;
    t = deliver(segment);
    if (segment === fireAt || t >= fireAt) return t;
  }
}

interface Modelled {
  status: 'Running' | 'Completed';
  log: Entry[];
  gen: number;
  /** When the current generation began. */
  genStartedAt: number;
  /** The next moment a timer of this instance is due, when Running. */
  nextDue?: number;
  /** Activity runs by tag up to the horizon: certain, and at most (retries a failed fan-out left behind run on until the execution ends). */
  runs: Map<string, number>;
  mayRun: Map<string, number>;
}

/** DTFx backoff after the n-th failed attempt (1-based). */
const backoff = (flaky: Flaky, n: number): number => flaky.firstMs * Math.pow(flaky.coefficient, n - 1);

/**
 * An activity with retries first called at `t`: the attempts that run by `horizon`, and its result
 * (`ok`, or undefined once it failed for good) with when the orchestrator gets it, or when its
 * next attempt or its final failure is due if that is after `horizon`.
 */
function flakyOutcome(
  flaky: Flaky,
  tag: string,
  t: number,
  horizon: number,
  deliver: (t: number) => number,
  run: (tag: string, at: number) => void,
): { doneAt: number; result?: string } | { dueAt: number } {
  const failBefore = t + flaky.failForMs;
  let attemptAt = t;
  for (let n = 1; n <= flaky.attempts; n++) {
    if (attemptAt > horizon) return { dueAt: attemptAt };
    run(tag, attemptAt);
    if (attemptAt >= failBefore) return { doneAt: attemptAt, result: `ok ${tag}` };
    attemptAt = deliver(attemptAt + backoff(flaky, n));
  }
  // The last failure surfaces one more backoff after the last attempt.
  return attemptAt > horizon ? { dueAt: attemptAt } : { doneAt: attemptAt };
}

/** What an instance started at `startedAt` has done by `horizon`, given the events raised (in order). */
function simulate(
  id: string,
  run: number,
  gens: Step[][],
  startedAt: number,
  raises: Raise[],
  suspensions: Suspension[],
  horizon: number,
): Modelled {
  const deliver = delivery(suspensions);
  const log: Entry[] = [];
  const expected = new Map<string, number>();
  const possible = new Map<string, number>();
  const count = (tag: string, into: Map<string, number>): void => {
    into.set(tag, (into.get(tag) ?? 0) + 1);
  };
  const ran = (tag: string): void => {
    count(tag, expected);
    count(tag, possible);
  };
  const consumed = new Set<Raise>();
  let t = startedAt;
  let genStartedAt = startedAt;
  const running = (gen: number, nextDue: number | undefined): Modelled => ({
    status: 'Running',
    log,
    gen,
    genStartedAt,
    nextDue: nextDue !== undefined && Number.isFinite(nextDue) ? nextDue : undefined,
    runs: expected,
    mayRun: possible,
  });
  for (let gen = 0; gen < gens.length; gen++) {
    if (gen > 0) genStartedAt = t;
    const steps = gens[gen];
    for (let s = 0; s < steps.length; s++) {
      const step = steps[s];
      const tag = tagOf(id, run, gen, s);
      switch (step.t) {
        case 'act':
          ran(tag);
          log.push(['act', step.fail ? 'error' : `done ${tag}`, t]);
          break;
        case 'retry': {
          const outcome = flakyOutcome(step, tag, t, horizon, deliver, ran);
          if ('dueAt' in outcome) return running(gen, outcome.dueAt);
          t = outcome.doneAt;
          log.push(['retry', outcome.result ?? 'error', t]);
          break;
        }
        case 'timer': {
          const done = timerDone(t, t + step.ms, deliver);
          if (done > horizon) return running(gen, done);
          t = done;
          log.push(['timer', null, t]);
          break;
        }
        case 'race':
        case 'collect': {
          const rounds = step.t === 'race' ? 1 : step.n;
          const name = eventName(gen, s);
          for (let i = 0; i < rounds; i++) {
            // The event wins if it reaches the orchestrator before the timer's time: a timer that
            // fired while the instance was suspended is older than any event held with it.
            const fireAt = t + step.ms;
            const next = raises.find((r) => r.name === name && !consumed.has(r));
            const deliveredAt = next ? (next.held ? (next.held.to ?? Infinity) : next.at) : Infinity;
            if (next && deliveredAt < fireAt) {
              consumed.add(next);
              t = Math.max(t, deliveredAt);
              log.push([step.t, next.value, t]);
              continue;
            }
            const timedOut = timerDone(t, fireAt, deliver);
            if (timedOut > horizon) return running(gen, timedOut);
            t = timedOut;
            log.push([step.t, 'timeout', t]);
          }
          break;
        }
        case 'fan': {
          // Task.all fails as soon as one item has failed; else it has every result once the last one is in.
          const attempts: Array<[tag: string, at: number]> = [];
          const outcomes = step.items.map((item, i) =>
            item.t === 'work'
              ? (attempts.push([`${tag}.${i}`, t]), { doneAt: t, result: item.fail ? undefined : `done ${tag}.${i}` })
              : flakyOutcome(item, `${tag}.${i}`, t, horizon, deliver, (attempt, at) => attempts.push([attempt, at])),
          );
          const failedAt = Math.min(...outcomes.map((o) => ('doneAt' in o && o.result === undefined ? o.doneAt : Infinity)));
          // The model does not follow the retries still under way when the fan-out failed: they may
          // run up to the end of the execution, which ends whenever it does (an attempt due in the
          // very episode the fan-out fails in may already be too late).
          for (const [attempt, at] of attempts) {
            if (at < failedAt) count(attempt, expected);
            count(attempt, possible);
          }
          if (failedAt <= horizon) {
            t = failedAt;
            log.push(['fan', 'error', t]);
            break;
          }
          const due = outcomes.map((o) => ('dueAt' in o ? o.dueAt : -Infinity));
          if (due.some((d) => d > horizon)) return running(gen, Math.min(...due.filter((d) => d > horizon)));
          t = Math.max(...outcomes.map((o) => (o as { doneAt: number }).doneAt));
          log.push(['fan', outcomes.map((o) => (o as { result: string }).result), t]);
          break;
        }
        case 'sub':
          ran(`${tag}.child`);
          log.push(['sub', step.fail ? 'error' : `child done ${tag}.child`, t]);
          break;
      }
    }
  }
  return { status: 'Completed', log, gen: gens.length - 1, genStartedAt, runs: expected, mayRun: possible };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const durationArb = fc.constantFrom(MINUTE, 30 * MINUTE, HOUR, 5 * HOUR, DAY, 7 * DAY);
const ticksArb = fc.integer({ min: 0, max: 4 });
const flakyArb: fc.Arbitrary<Flaky> = fc.record({
  firstMs: fc.constantFrom(SECOND, MINUTE),
  attempts: fc.integer({ min: 1, max: 4 }),
  coefficient: fc.constantFrom(1, 2),
  failForMs: fc.constantFrom(0, 30 * SECOND, 2 * MINUTE, HOUR),
});
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constant('act' as const), fail: fc.boolean(), ticks: ticksArb }),
  fc.record({ t: fc.constant('retry' as const) }).chain((step) => flakyArb.map((flaky) => ({ ...step, ...flaky }))),
  fc.record({ t: fc.constant('timer' as const), ms: durationArb }),
  fc.record({ t: fc.constant('race' as const), ms: durationArb }),
  fc.record({ t: fc.constant('collect' as const), n: fc.integer({ min: 2, max: 3 }), ms: durationArb }),
  fc.record({
    t: fc.constant('fan' as const),
    items: fc.array(
      fc.oneof(
        fc.record({ t: fc.constant('work' as const), fail: fc.constantFrom(false, false, false, true), ticks: ticksArb }),
        fc.record({ t: fc.constant('flaky' as const) }).chain((item) => flakyArb.map((flaky) => ({ ...item, ...flaky }))),
      ),
      { minLength: 1, maxLength: 4 },
    ),
  }),
  fc.record({ t: fc.constant('sub' as const), fail: fc.boolean() }),
);
const programArb = fc.array(fc.array(stepArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 });

/** After an operation: wait until the engine is idle, or only this many turns of the event loop. */
const settleArb = fc.oneof(fc.constant('idle' as const), fc.integer({ min: 0, max: 30 }));

type Op =
  | { op: 'start'; settle: 'idle' | number }
  | { op: 'advance'; by: number | 'next' | 'justBeforeNext'; crashAfter?: number }
  | { op: 'raise'; who: number; pick: number; settle: 'idle' | number }
  | { op: 'crash'; settle: 'idle' | number }
  | { op: 'check' }
  | { op: 'terminate'; who: number; settle: 'idle' | number }
  | { op: 'suspend'; who: number }
  | { op: 'resume'; who: number }
  | { op: 'purge'; who: number }
  | { op: 'startAgain'; who: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('start' as const), settle: settleArb }) },
  {
    weight: 4,
    arbitrary: fc.record(
      {
        op: fc.constant('advance' as const),
        by: fc.oneof(fc.constantFrom('next' as const, 'justBeforeNext' as const), fc.constantFrom(SECOND, MINUTE, HOUR, DAY, 3 * DAY)),
        crashAfter: fc.integer({ min: 0, max: 20 }),
      },
      { requiredKeys: ['op', 'by'] },
    ),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('raise' as const), who: fc.nat(), pick: fc.nat(), settle: settleArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('crash' as const), settle: settleArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('check' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('terminate' as const), who: fc.nat(), settle: settleArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('purge' as const), who: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('startAgain' as const), who: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('suspend' as const), who: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('resume' as const), who: fc.nat() }) },
);

interface Scenario {
  programs: Step[][][];
  ops: Op[];
  /** The engine's bounds: histories cached (none, a few: evicted all the time), episodes and activities at once. */
  engine: { historyCacheEvents?: number; maxConcurrentOrchestrations?: number; maxConcurrentActivities?: number };
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  programs: fc.array(programArb, { minLength: 1, maxLength: 3 }),
  ops: fc.array(opArb, { minLength: 4, maxLength: 18 }),
  engine: fc.record(
    {
      historyCacheEvents: fc.constantFrom(0, 12),
      maxConcurrentOrchestrations: fc.constantFrom(1, 2),
      maxConcurrentActivities: fc.constantFrom(1, 3),
    },
    { requiredKeys: [] },
  ),
});

interface Instance {
  id: string;
  program: Step[][];
  run: number;
  /** Activity runs of the earlier starts of this id. */
  earlierRuns: Array<Pick<Modelled, 'runs' | 'mayRun'>>;
  startedAt?: number;
  raises: Raise[];
  suspensions: Suspension[];
  /** Terminated at `at`; `busy`: while the engine was still at work on that moment. */
  terminated?: { at: number; reason: string; busy: boolean };
  purged: boolean;
}

/** The model's view of an instance at `now` (virtual ms since the scenario began). */
function modelOf(inst: Instance, now: number): Modelled & { final?: { status: string; output: unknown }; suspended: boolean } {
  const horizon = inst.terminated ? Math.min(now, inst.terminated.at) : now;
  const m = simulate(inst.id, inst.run, inst.program, inst.startedAt as number, inst.raises, inst.suspensions, horizon);
  const suspended = inst.suspensions.some((s) => s.to === undefined);
  if (m.status === 'Completed') return { ...m, suspended: false, final: { status: 'Completed', output: m.log } };
  if (inst.terminated) {
    const final = { status: 'Terminated', output: inst.terminated.reason };
    // Terminated while the engine was at work on that moment: the activities it called at that
    // moment may have run before the termination took effect, or not.
    const runs = inst.terminated.busy ? simulate(inst.id, inst.run, inst.program, inst.startedAt as number, inst.raises, inst.suspensions, horizon - 1).runs : m.runs;
    return { ...m, runs, suspended: false, nextDue: undefined, final };
  }
  return { ...m, suspended };
}

/** Real time a scenario's wait for the engine may take before the engine counts as stuck. */
const STUCK_MS = 15_000;
async function unlessStuck<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the engine got stuck: ${what}`)), STUCK_MS);
  });
  try {
    return await Promise.race([work, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Removes a store's directory. `engine.stop()` does not wait for the store's checkpoint thread,
 * which may still open and close the database (creating and deleting its -wal and -shm files)
 * a moment later: a removal that meets such a file tries again.
 */
async function removeStore(dataDir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      fs.rmSync(dataDir, { recursive: true, force: true });
      return;
    } catch (err) {
      if (attempt >= 50 || (err as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function runScenario(scenario: Scenario): Promise<void> {
  runs.clear();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-props-'));
  const hubOptions = { dataDir, ...scenario.engine };
  let hub: TestHub = await startTestHub(hubOptions);
  engineNow = () => hub.engine.clock.now();
  const base = hub.engine.clock.now();
  let now = 0;
  let stops = 0;
  let raised = 0;
  const instances: Instance[] = scenario.programs.map((program, i) => ({
    id: `i${i}`,
    program,
    run: 0,
    earlierRuns: [],
    raises: [],
    suspensions: [],
    purged: false,
  }));
  const started = (): Instance[] => instances.filter((i) => i.startedAt !== undefined);
  /** The started instance not purged that `who` picks; undefined when there is none. */
  const liveOne = (who: number): Instance | undefined => {
    const candidates = started().filter((i) => !i.purged);
    return candidates[who % candidates.length];
  };

  const settle = async (how: 'idle' | number): Promise<void> => {
    if (how === 'idle') await unlessStuck(hub.idle(), 'idle');
    else await turns(how);
  };
  const restart = async (): Promise<void> => {
    stops++;
    await hub.engine.stop(0);
    await hub.stop();
    hub = await startTestHub(hubOptions);
  };
  const expectClock = (): void => {
    expect(hub.engine.clock.now() - base).toBe(now);
  };
  const check = async (): Promise<void> => {
    await unlessStuck(hub.idle(), 'idle before a check');
    expectClock();
    // The listing agrees with the model too (sub-orchestrations left out).
    const listed = (await hub.client.getStatusAll()).filter((st) => !st.instanceId.includes(':'));
    const listedStatus = Object.fromEntries(listed.map((st) => [st.instanceId, st.runtimeStatus]));
    const modelStatus = Object.fromEntries(
      started()
        .filter((i) => !i.purged)
        .map((i) => {
          const m = modelOf(i, now);
          return [i.id, m.final ? m.final.status : m.suspended ? 'Suspended' : 'Running'];
        }),
    );
    expect(listedStatus).toEqual(modelStatus);
    for (const inst of started()) {
      if (inst.purged) {
        await expect(hub.client.getStatus(inst.id)).rejects.toThrow();
        continue;
      }
      const m = modelOf(inst, now);
      const status = await hub.client.getStatus(inst.id);
      if (m.final) {
        expect({ id: inst.id, status: status.runtimeStatus, output: status.output }).toEqual({ id: inst.id, ...m.final });
      } else {
        expect({ id: inst.id, status: status.runtimeStatus }).toEqual({ id: inst.id, status: m.suspended ? 'Suspended' : 'Running' });
        // The log so far travels in the current generation's input.
        expect((status.input as ProgramInput).gen).toBe(m.gen);
      }
      expectWellFormedHistory(hub, inst.id);
    }
  };
  const nextDue = (): number | undefined => {
    const due = started()
      .filter((i) => !i.purged)
      .map((i) => modelOf(i, now).nextDue)
      .filter((t): t is number => t !== undefined);
    return due.length ? Math.min(...due) : undefined;
  };

  try {
    for (const op of scenario.ops) {
      switch (op.op) {
        case 'start': {
          const inst = instances.find((i) => i.startedAt === undefined);
          if (!inst) break;
          inst.startedAt = now;
          const input: ProgramInput = { base, run: inst.run, gens: inst.program, gen: 0, log: [] };
          expect(await hub.client.startNew('propProgram', { instanceId: inst.id, input })).toBe(inst.id);
          await settle(op.settle);
          break;
        }
        case 'advance': {
          const due = nextDue();
          let by: number;
          if (op.by === 'next') by = due === undefined ? HOUR : due - now;
          else if (op.by === 'justBeforeNext') by = due === undefined ? SECOND : due - now - 1;
          else by = op.by;
          const target = now + by;
          if (op.crashAfter === undefined) {
            await unlessStuck(hub.advance(by), `advance by ${by}`);
          } else {
            // Stopped halfway: the clock is where the engine had got to; the rest of the way after the restart.
            const advancing = hub.advance(by);
            await turns(op.crashAfter);
            await restart();
            await unlessStuck(advancing, 'an advance the stop cut short');
            const reached = hub.engine.clock.now() - base;
            expect(reached).toBeLessThanOrEqual(target);
            expect(reached).toBeGreaterThanOrEqual(now);
            await unlessStuck(hub.advance(target - reached), 'the rest of an advance');
          }
          now = target;
          expectClock();
          break;
        }
        case 'raise': {
          const inst = liveOne(op.who);
          if (!inst) break;
          const m = modelOf(inst, now);
          // Names of steps of the generation under way and of those before it. An event for a
          // generation to come would be dropped or kept depending on whether it reaches the old
          // execution first, which is not for the model to guess; nor is one raised while the
          // generation changes at this very moment.
          if (m.gen > 0 && m.genStartedAt === now) await unlessStuck(hub.idle(), 'idle before a raise');
          const names: string[] = [];
          for (let gen = 0; gen <= m.gen; gen++) inst.program[gen].forEach((_, s) => names.push(eventName(gen, s)));
          const name = names[op.pick % names.length];
          const value = ++raised;
          await hub.client.raiseEvent(inst.id, name, value);
          const held = inst.suspensions.find((s) => s.to === undefined);
          if (!m.final) inst.raises.push({ at: now, name, value, held });
          await settle(op.settle);
          break;
        }
        case 'crash':
          await settle(op.settle);
          await restart();
          expectClock();
          break;
        case 'check':
          await check();
          break;
        case 'terminate': {
          const inst = liveOne(op.who);
          if (!inst) break;
          // While the engine may still be at work on this moment only if the instance will not
          // finish at this moment: then it ends terminated whichever comes first.
          let m = modelOf(inst, now);
          const busy = op.settle !== 'idle' && !m.final;
          if (!busy) {
            await unlessStuck(hub.idle(), `idle before ${op.op}`);
            m = modelOf(inst, now);
          }
          const reason = `stop ${inst.id} at ${now}`;
          await hub.client.terminate(inst.id, reason);
          if (!m.final) inst.terminated = { at: now, reason, busy };
          if (busy) await settle(op.settle);
          break;
        }
        case 'suspend':
        case 'resume': {
          const inst = liveOne(op.who);
          if (!inst) break;
          await unlessStuck(hub.idle(), `idle before ${op.op}`);
          const m = modelOf(inst, now);
          const open = inst.suspensions.find((s) => s.to === undefined);
          if (op.op === 'suspend') {
            await hub.client.suspend(inst.id, `hold ${inst.id}`);
            if (!m.final && !open) inst.suspensions.push({ from: now });
          } else {
            await hub.client.resume(inst.id, `go on ${inst.id}`);
            if (!m.final && open) open.to = now;
          }
          break;
        }
        case 'startAgain': {
          // An id whose instance finished (or was purged) starts over with fresh history; one still
          // on the job is refused.
          const candidates = started();
          if (candidates.length === 0) break;
          const inst = candidates[op.who % candidates.length];
          await unlessStuck(hub.idle(), `idle before ${op.op}`);
          const m = modelOf(inst, now);
          const input: ProgramInput = { base, run: inst.run + 1, gens: inst.program, gen: 0, log: [] };
          if (!m.final && !inst.purged) {
            await expect(hub.client.startNew('propProgram', { instanceId: inst.id, input })).rejects.toThrow();
            break;
          }
          expect(await hub.client.startNew('propProgram', { instanceId: inst.id, input })).toBe(inst.id);
          inst.earlierRuns.push({ runs: m.runs, mayRun: m.mayRun });
          Object.assign(inst, { run: inst.run + 1, startedAt: now, raises: [], suspensions: [], terminated: undefined, purged: false });
          break;
        }
        case 'purge': {
          const inst = liveOne(op.who);
          if (!inst) break;
          await unlessStuck(hub.idle(), `idle before ${op.op}`);
          const m = modelOf(inst, now);
          if (m.final) {
            expect((await hub.client.purgeInstanceHistory(inst.id)).instancesDeleted).toBe(1);
            inst.purged = true;
          } else {
            await expect(hub.client.purgeInstanceHistory(inst.id)).rejects.toThrow();
          }
          break;
        }
      }
    }

    // Every instance started, resumed, and run to its end.
    for (const inst of started().filter((i) => !i.purged && modelOf(i, now).suspended)) {
      await hub.client.resume(inst.id, 'the end');
      (inst.suspensions.find((s) => s.to === undefined) as Suspension).to = now;
    }
    for (const inst of instances.filter((i) => i.startedAt === undefined)) {
      inst.startedAt = now;
      const input: ProgramInput = { base, run: inst.run, gens: inst.program, gen: 0, log: [] };
      await hub.client.startNew('propProgram', { instanceId: inst.id, input });
    }
    for (let due = nextDue(); due !== undefined; due = nextDue()) {
      if (due <= now) throw new Error(`the model is stuck at ${now}`);
      await unlessStuck(hub.advance(due - now), `advance to ${due}`);
      now = due;
    }
    await check();
    for (const inst of instances) {
      if (!inst.purged) expect(modelOf(inst, now).final).toBeDefined();
    }

    // Each activity ran as often as the model says; more often only if the engine was stopped
    // while its result was not yet committed; never one the orchestrations did not call.
    const atLeast = new Map<string, number>();
    const atMost = new Map<string, number>();
    for (const inst of instances) {
      for (const m of [...inst.earlierRuns, modelOf(inst, now)]) {
        for (const [tag, n] of m.runs) atLeast.set(tag, n);
        for (const [tag, n] of m.mayRun) atMost.set(tag, n);
      }
    }
    const wrong: string[] = [];
    for (const tag of new Set([...runs.keys(), ...atMost.keys()])) {
      const actual = runs.get(tag) ?? 0;
      const min = atLeast.get(tag) ?? 0;
      const max = atMost.get(tag) ?? 0;
      if (actual < min || (max === 0 && actual > 0) || (stops === 0 && actual > max)) wrong.push(`${tag} ran ${actual} times, expected ${min}..${max}`);
    }
    expect({ stops, wrong }).toEqual({ stops, wrong: [] });
  } finally {
    await hub.stop();
    await removeStore(dataDir);
  }
}

interface StoredEvent {
  EventType: number;
  EventId: number;
  Timestamp: string;
  TaskScheduledId?: number;
  TimerId?: number;
  FireAt?: string;
  Name?: string;
  Input?: string;
}

/** The current execution's stored history: each completion answers one scheduled task, once, and no timer fired early. */
function expectWellFormedHistory(hub: TestHub, id: string): void {
  const events = hub.engine.historyOf(id) as unknown as StoredEvent[];
  const scheduled = new Map<number, number>();
  const completed = new Set<number>();
  const raisedInputs = new Set<string>();
  let episodeStart = -Infinity;
  const problems: string[] = [];
  for (const e of events) {
    switch (e.EventType) {
      case 12: {
        const t = Date.parse(e.Timestamp);
        if (t < episodeStart) problems.push(`episode at ${e.Timestamp} after a later one`);
        episodeStart = t;
        break;
      }
      case 4:
      case 7:
      case 10:
        if (scheduled.has(e.EventId)) problems.push(`task ${e.EventId} scheduled twice`);
        scheduled.set(e.EventId, e.EventType);
        break;
      case 5:
      case 6:
      case 8:
      case 9:
      case 11: {
        const task = e.EventType === 11 ? (e.TimerId as number) : (e.TaskScheduledId as number);
        const kind = e.EventType === 11 ? 10 : e.EventType <= 6 ? 4 : 7;
        if (scheduled.get(task) !== kind) problems.push(`completion ${e.EventType} of task ${task} that was not scheduled as ${kind}`);
        if (completed.has(task)) problems.push(`task ${task} completed twice`);
        completed.add(task);
        if (e.EventType === 11 && Date.parse(e.FireAt as string) > episodeStart) problems.push(`timer ${task} fired before ${e.FireAt}`);
        break;
      }
      case 15:
        if (raisedInputs.has(`${e.Name}=${e.Input}`)) problems.push(`event ${e.Name}=${e.Input} delivered twice`);
        raisedInputs.add(`${e.Name}=${e.Input}`);
        break;
    }
  }
  expect({ id, problems }).toEqual({ id, problems: [] });
}

describe('the durable engine against a model of the orchestrations it runs', () => {
  const options = searchOptions(25);
  // A scenario takes about half a second of real time: shrinking a counterexample takes minutes, so
  // it is left to a replay (FC_SEED, FC_PATH), which has the time for it.
  const replaying = process.env.FC_SEED !== undefined;
  it(
    'runs random programs to the model\u2019s results through events, time, terminations, purges and restarts',
    async () => {
      await fc.assert(fc.asyncProperty(scenarioArb, runScenario), { ...options, endOnFailure: !replaying });
    },
    replaying ? 30 * 60_000 : 30_000 + (options.numRuns ?? 25) * 2_000,
  );
});

describe('restarts', () => {
  it('resume virtual time where it stood, and deliver an event raised after an advance that fired nothing', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-props-'));
    let hub = await startTestHub({ dataDir });
    try {
      const base = hub.engine.clock.now();
      const input: ProgramInput = { base, run: 0, gens: [[{ t: 'race', ms: 10 * DAY }]], gen: 0, log: [] };
      await hub.client.startNew('propProgram', { instanceId: 'approval', input });
      await hub.idle();
      await hub.advance(HOUR);
      // Acknowledged (committed), and the engine stops before the episode that would deliver it runs.
      await hub.engine.raiseEvent('approval', eventName(0, 0), JSON.stringify(7));
      await hub.engine.stop(0);
      await hub.stop();

      hub = await startTestHub({ dataDir });
      expect(hub.engine.clock.now() - base).toBe(HOUR);
      const status = await hub.status('approval');
      expect(status.runtimeStatus).toBe('Completed');
      expect(status.output).toEqual([['race', 7, HOUR]]);
    } finally {
      await hub.stop();
      await removeStore(dataDir);
    }
  });

  it('never take virtual time back behind what a run on the real clock wrote to the same hub since', async () => {
    // DURABLE_VIRTUAL_CLOCK on and off over one data directory (the host's default, `.data/durable`).
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-props-'));
    let hub = await startTestHub({ dataDir });
    try {
      const virtualAt = hub.engine.clock.now();
      await hub.engine.stop(0);
      await hub.stop();
      // Real time has moved on by the next run, however little.
      while (Date.now() <= virtualAt) await new Promise((r) => setTimeout(r, 1));

      hub = await startTestHub({ dataDir, virtualClock: false });
      const base = hub.engine.clock.now();
      const input: ProgramInput = { base, run: 0, gens: [[{ t: 'race', ms: HOUR }]], gen: 0, log: [] };
      await hub.client.startNew('propProgram', { instanceId: 'real-run', input });
      const waiting = await hub.status('real-run');
      expect(waiting.runtimeStatus).toBe('Running');
      await hub.engine.stop(0);
      await hub.stop();

      hub = await startTestHub({ dataDir });
      // Taken back to where the first run stood, behind the real time the timer was set from, the
      // hour's timer was still in the future an hour later.
      await hub.advance(HOUR);
      expect((await hub.status('real-run')).runtimeStatus).toBe('Completed');
    } finally {
      await hub.stop();
      await removeStore(dataDir);
    }
  });
});
