/**
 * Time source of the engine. Orchestrations see time only through OrchestratorStarted timestamps,
 * so swapping the clock makes a day of durable timers pass in milliseconds under test.
 */

export interface EngineClock {
  now(): number;
  /** Virtual clocks only: moves time forward, firing every timer due on the way, in order. */
  advance?(ms: number): Promise<void>;
}

export class SystemClock implements EngineClock {
  now(): number {
    return Date.now();
  }
}

/**
 * A clock that only moves when told. `advance` is wired by the engine so that it steps from one
 * due timer to the next and waits for the engine to go idle at each step: an orchestration that
 * sleeps an hour 24 times sees 24 distinct timestamps, as it would in production.
 */
export class VirtualClock implements EngineClock {
  private current: number;
  /** Set by the engine: runs everything due up to `target`, timer by timer. */
  stepper?: (target: number) => Promise<void>;
  /** Set by the engine: keeps each new time with the task hub, so a restart resumes from it. */
  onMove?: (ms: number) => void;

  /**
   * Starts at the real time so that timestamps written by non-durable code (Date.now() in HTTP or
   * Service Bus functions) and orchestration time agree until the test moves time forward.
   */
  constructor(start: number = Date.now()) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  /** Sets the time directly; never backwards (durable time is monotonic). */
  set(ms: number): void {
    if (ms > this.current) {
      this.current = ms;
      this.onMove?.(ms);
    }
  }

  /** Takes up the time a previous run on the same task hub left off at, even if this clock had started later. */
  resume(ms: number): void {
    this.current = ms;
  }

  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance: expected a non-negative duration, got ${ms}`);
    const target = this.current + ms;
    if (this.stepper) await this.stepper(target);
    this.set(target);
  }
}
