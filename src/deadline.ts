/** Bounded waits for calls whose client has no timeout of its own (or one longer than a caller can wait). */
import { setMaxListeners } from 'node:events';
import { ensureError, TransientError } from './errors';

export type LateOutcome = { ok: true } | { ok: false; error: Error };

/**
 * `work`'s outcome, or the error `timedOut()` makes once `ms` have passed. `work` is not cancelled:
 * `late` hears how it ended after the deadline, so nothing it does goes unseen.
 */
export async function withinDeadline<T>(work: Promise<T>, ms: number, timedOut: () => Error, late?: (outcome: LateOutcome) => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let expired: Error | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      work.then(
        () => late?.({ ok: true }),
        (err: unknown) => late?.({ ok: false, error: ensureError(err) }),
      );
      expired = timedOut();
      reject(expired);
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } catch (err) {
    // `timedOut()` may stop the work (an aborted call), which can then fail before the deadline
    // does: the caller is told of the deadline, not of the stop it caused.
    throw expired ?? err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Cosmos DB calls of one request, within `ms` in all. Cosmos DB that throttles (429) does answer,
 * and the SDK waits out each 429 and tries again, up to 20 s per call, so the request timeout alone
 * does not bound a request. Past `ms` the caller gets `timedOut()`'s error, or when it gives none
 * a TransientError (503), the call under way is told (by `signal`) to stop retrying, and a step that checks
 * `stillWaited` starts nothing after. `late` hears how the steps ended after that.
 */
export function withinStoreWait<T>(
  wait: number | StoreWait,
  steps: (signal: AbortSignal) => Promise<T>,
  options: { late?: (outcome: LateOutcome) => void; timedOut?: () => Error | undefined } = {},
): Promise<T> {
  const { ms, named } = typeof wait === 'number' ? { ms: wait, named: wait } : { ms: wait.leftMs(), named: wait.totalMs };
  const stop = new AbortController();
  // The SDK listens on the signal once per call in flight, and the intake reads an order's SKUs
  // side by side (up to 50): past Node's default of 10 listeners it would warn of a leak.
  setMaxListeners(STORE_WAIT_LISTENERS, stop.signal);
  return withinDeadline(
    steps(stop.signal),
    ms,
    () => {
      stop.abort();
      return options.timedOut?.() ?? new TransientError(`Cosmos DB did not answer within ${named} ms`);
    },
    options.late,
  );
}

/** One wait for Cosmos DB that several steps of a request share, one after another. */
export interface StoreWait {
  /** The whole wait, which an answer past it names. */
  totalMs: number;
  /** What is left of it now: at least 1 ms (a step given none would time out before it starts). */
  leftMs(): number;
}

/** A shared wait of `totalMs` that starts now. */
export function storeWaitFrom(totalMs: number): StoreWait {
  const until = performance.now() + totalMs;
  return { totalMs, leftMs: () => Math.max(1, Math.round(until - performance.now())) };
}

/** Calls that may listen on one wait's signal at once: an order's SKUs (at most 50), and a few more. */
const STORE_WAIT_LISTENERS = 64;

/** Throws once the request has stopped waiting for Cosmos DB: a step after that must not start. */
export function stillWaited(signal: AbortSignal): void {
  if (signal.aborted) throw new TransientError('the request stopped waiting for Cosmos DB');
}
