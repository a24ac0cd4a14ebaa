/**
 * Timer triggers: NCRONTAB (or `hh:mm:ss` interval) schedules, `runOnStartup`, and the
 * `{isPastDue, scheduleStatus}` input the real extension sends. One invocation of a timer at a
 * time, like the host's singleton lock: the next occurrence is computed after each run.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RegisteredFunction } from './core-module';
import type { HostLog } from './host-log';
import type { FunctionInvoker } from './invoker';
import { CronSchedule } from './ncrontab';
import { resolveSettingExpression } from './settings';

/** How late a run may start before it counts as past due. */
const PAST_DUE_MS = 1000;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

interface Schedule {
  next(after: Date): Date;
}

class IntervalSchedule implements Schedule {
  constructor(private readonly ms: number) {}
  next(after: Date): Date {
    return new Date(after.getTime() + this.ms);
  }
}

/** `hh:mm:ss` or `d.hh:mm:ss` (a TimeSpan). */
export function parseTimeSpan(text: string): number | undefined {
  const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(text.trim());
  if (!m) return undefined;
  const [, d, h, min, s, frac] = m;
  return (
    ((Number(d ?? 0) * 24 + Number(h)) * 3600 + Number(min) * 60 + Number(s)) * 1000 +
    (frac ? Math.round(Number(`0.${frac}`) * 1000) : 0)
  );
}

export function parseSchedule(text: string): Schedule {
  const span = parseTimeSpan(text);
  if (span !== undefined) {
    if (span <= 0) throw new Error(`timer interval must be positive: ${text}`);
    return new IntervalSchedule(span);
  }
  return new CronSchedule(text);
}

interface TimerState {
  fn: RegisteredFunction;
  schedule: Schedule;
  timer?: NodeJS.Timeout;
  last?: Date;
  next: Date;
  running?: Promise<void>;
  /** Whether the schedule status is kept across restarts (the extension's schedule monitor). */
  monitored: boolean;
}

/** What the extension's schedule monitor stores per timer function. */
interface ScheduleStatus {
  Last: string;
  Next: string;
  LastUpdated: string;
}

/** The extension does not monitor schedules that fire more often than once a minute. */
const MONITOR_MIN_INTERVAL_MS = 60_000;

export class TimerTriggers {
  readonly #timers = new Map<string, TimerState>();
  #stopped = false;

  /**
   * @param statusDir where schedule status is kept between runs of the host (the extension keeps
   *   it in storage): a timer whose recorded next occurrence passed while the host was down runs
   *   at start with `isPastDue: true`.
   */
  constructor(
    functions: RegisteredFunction[],
    private readonly invoker: FunctionInvoker,
    private readonly log: HostLog,
    private readonly statusDir?: string,
  ) {
    for (const fn of functions) {
      if (fn.trigger.type?.toLowerCase() !== 'timertrigger') continue;
      const raw = resolveSettingExpression(String(fn.trigger['schedule'] ?? ''));
      let schedule: Schedule;
      try {
        schedule = parseSchedule(raw);
      } catch (err) {
        throw new Error(`timer function ${fn.name}: invalid schedule "${raw}": ${(err as Error).message}`);
      }
      const now = new Date();
      const next = schedule.next(now);
      const interval = schedule.next(next).getTime() - next.getTime();
      const monitored = fn.trigger['useMonitor'] !== false && interval >= MONITOR_MIN_INTERVAL_MS && !!statusDir;
      this.#timers.set(fn.name, { fn, schedule, next, monitored });
    }
  }

  has(name: string): boolean {
    return this.#timers.has(name);
  }

  describe(name: string): string | undefined {
    const t = this.#timers.get(name);
    return t ? `timer, next ${t.next.toISOString()}` : undefined;
  }

  start(): void {
    for (const state of this.#timers.values()) {
      const status = state.monitored ? this.#readStatus(state.fn.name) : undefined;
      if (status?.Last) state.last = new Date(status.Last);
      const missed = status?.Next ? new Date(status.Next) : undefined;
      if (missed && missed.getTime() < Date.now()) void this.#run(state, true, 'Timer past due');
      else if (state.fn.trigger['runOnStartup'] === true) void this.#run(state, false, 'Timer runOnStartup');
      else {
        this.#writeStatus(state);
        this.#arm(state);
      }
    }
  }

  #statusFile(name: string): string {
    return join(this.statusDir!, `${name}.json`);
  }

  #readStatus(name: string): Partial<ScheduleStatus> | undefined {
    try {
      return JSON.parse(readFileSync(this.#statusFile(name), 'utf8')) as Partial<ScheduleStatus>;
    } catch {
      return undefined;
    }
  }

  #writeStatus(state: TimerState): void {
    if (!state.monitored) return;
    const status: ScheduleStatus = {
      Last: (state.last ?? new Date(0)).toISOString(),
      Next: state.next.toISOString(),
      LastUpdated: new Date().toISOString(),
    };
    try {
      mkdirSync(this.statusDir!, { recursive: true });
      const file = this.#statusFile(state.fn.name);
      writeFileSync(`${file}.tmp`, JSON.stringify(status));
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.log.host('warning', `${state.fn.name}: could not record the timer schedule status: ${(err as Error).message}`);
    }
  }

  /** Runs a timer function now (admin invoke); isPastDue false, like the real host. */
  fire(name: string): boolean {
    const state = this.#timers.get(name);
    if (!state) return false;
    void this.#run(state, false, 'Manual invoke', false);
    return true;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const s of this.#timers.values()) clearTimeout(s.timer);
    await Promise.all([...this.#timers.values()].map((s) => s.running));
  }

  #arm(state: TimerState): void {
    if (this.#stopped) return;
    clearTimeout(state.timer);
    const delay = state.next.getTime() - Date.now();
    if (delay > MAX_TIMEOUT_MS) {
      state.timer = setTimeout(() => this.#arm(state), MAX_TIMEOUT_MS);
      return;
    }
    state.timer = setTimeout(
      () => {
        const late = Date.now() - state.next.getTime() > PAST_DUE_MS;
        void this.#run(state, late, 'Timer fired', true, state.next);
      },
      Math.max(0, delay),
    );
  }

  /** @param occurrence the scheduled time being served: the next run comes strictly after it. */
  async #run(state: TimerState, isPastDue: boolean, reason: string, rearm = true, occurrence?: Date): Promise<void> {
    if (this.#stopped) return;
    while (state.running) await state.running;
    const now = new Date();
    const next = state.schedule.next(now);
    const input = {
      Schedule: { AdjustForDST: true },
      ScheduleStatus: {
        Last: (state.last ?? new Date(0)).toISOString(),
        Next: next.toISOString(),
        LastUpdated: now.toISOString(),
      },
      IsPastDue: isPastDue,
    };
    const run = (async () => {
      try {
        await this.invoker.invoke(state.fn, {
          inputData: [{ name: state.fn.triggerName, data: { json: JSON.stringify(input) } }],
          reason,
        });
      } catch {
        // Already logged by the invoker; a timer keeps its schedule after a failure.
      }
    })();
    state.running = run;
    await run;
    state.running = undefined;
    state.last = now;
    if (rearm) {
      // A timer may fire a hair early; never serve the same occurrence twice.
      state.next = state.schedule.next(new Date(Math.max(Date.now(), occurrence?.getTime() ?? 0)));
      this.#writeStatus(state);
      this.#arm(state);
    }
  }
}
