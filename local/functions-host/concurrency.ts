/**
 * Dynamic concurrency (host.json `concurrency.dynamicConcurrencyEnabled`) for Service Bus
 * triggers, after the Functions host's: each function starts at one invocation at a time; while
 * the host is healthy and a function uses all it may, it may run one more; when the host is
 * overloaded, every function drops back to one. Here "overloaded" means HTTP function requests are
 * being served and the event loop that serves them runs its callbacks late (mean lag over the last
 * 100 ms above `lagThresholdMs`): background triggers give way before the API slows down, and their
 * messages wait in Service Bus instead. While no API request is being served, they double; when
 * API traffic then starts, they are back to one at the first sign of overload, not after several
 * rounds of halving, so the first API requests do not wait behind a burst of background work.
 *
 * Unlike Azure, where `maxConcurrentCalls` is ignored once this is on, it stays the upper bound:
 * it is also how many messages a receiver takes ahead (they wait here with their locks renewed).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface DynamicConcurrencyOptions {
  /** Upper bound per function (host.json `concurrency.maximumFunctionConcurrency`, default 500). */
  maximumFunctionConcurrency?: number;
  /** How often limits are adjusted (default 100 ms). */
  adjustIntervalMs?: number;
  /** Mean event-loop lag (ms) above which the host counts as overloaded (default 1). */
  lagThresholdMs?: number;
  /** Mean event-loop lag (ms) since the previous call; defaults to Node's event-loop delay monitor. */
  sampleLag?: () => number;
  /**
   * API requests being served right now. When given, triggers give way only while some are (the
   * loop's lag is then the API's wait), and double each round while none are.
   */
  httpInFlight?: () => number;
}

/** The invocation slots of one function. */
export class FunctionConcurrency {
  #limit = 1;
  #running = 0;
  #peak = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(
    readonly name: string,
    private readonly cap: number,
  ) {}

  get limit(): number {
    return this.#limit;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Waits for a slot; call the returned function once the invocation is over. */
  async acquire(): Promise<() => void> {
    if (this.#running < this.#limit && this.#waiting.length === 0) this.#running++;
    // A waiter is handed its slot (already counted) by #admit.
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#peak = Math.max(this.#peak, this.#running);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running--;
      this.#admit();
    };
  }

  /**
   * One adjustment: back to one when the host is overloaded; when healthy and every slot was used,
   * one more (twice as many when `unhindered`: no API request is waiting on the host).
   */
  adjust(overloaded: boolean, unhindered = false): void {
    const saturated = this.#peak >= this.#limit || this.#waiting.length > 0;
    this.#peak = this.#running;
    if (overloaded) this.#limit = 1;
    else if (saturated) this.#limit = Math.min(this.cap, unhindered ? this.#limit * 2 : this.#limit + 1);
    this.#admit();
  }

  #admit(): void {
    while (this.#running < this.#limit && this.#waiting.length > 0) {
      this.#running++;
      this.#waiting.shift()!();
    }
  }
}

export class ConcurrencyManager {
  readonly #functions = new Map<string, FunctionConcurrency>();
  readonly #maximum: number;
  readonly #intervalMs: number;
  readonly #threshold: number;
  readonly #sampleLag: () => number;
  readonly #stopSampling: () => void = () => undefined;
  readonly #httpInFlight: (() => number) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: DynamicConcurrencyOptions = {}) {
    this.#maximum = Math.max(1, options.maximumFunctionConcurrency ?? 500);
    this.#intervalMs = options.adjustIntervalMs ?? 100;
    this.#threshold = options.lagThresholdMs ?? 1;
    if (options.sampleLag) this.#sampleLag = options.sampleLag;
    else ({ sample: this.#sampleLag, stop: this.#stopSampling } = eventLoopLag());
    this.#httpInFlight = options.httpInFlight;
  }

  /** The slots of one function, created at its first use; `cap` bounds it below the host-wide maximum. */
  forFunction(name: string, cap = this.#maximum): FunctionConcurrency {
    let f = this.#functions.get(name);
    if (!f) this.#functions.set(name, (f = new FunctionConcurrency(name, Math.max(1, Math.min(cap, this.#maximum)))));
    return f;
  }

  /** One round of adjustments (the timer calls this; tests call it directly). */
  adjust(): void {
    const lag = this.#sampleLag();
    const serving = this.#httpInFlight ? this.#httpInFlight() > 0 : true;
    const overloaded = serving && lag > this.#threshold;
    for (const f of this.#functions.values()) f.adjust(overloaded, !serving);
  }

  start(): void {
    this.#timer ??= setInterval(() => this.adjust(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopSampling();
  }
}

/** How late (ms, mean) this process's event loop ran its callbacks since the previous call. */
function eventLoopLag(): { sample: () => number; stop: () => void } {
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  return {
    sample: () => {
      // The histogram reports nanoseconds; the timer's own resolution is not lag.
      const lag = Math.max(0, histogram.mean / 1e6 - 5);
      histogram.reset();
      return Number.isFinite(lag) ? lag : 0;
    },
    stop: () => histogram.disable(),
  };
}
