/** Bounded waits for calls whose client has no timeout of its own (or one longer than a caller can wait). */
import { ensureError } from './errors';

export type LateOutcome = { ok: true } | { ok: false; error: Error };

/**
 * `work`'s outcome, or the error `timedOut()` makes once `ms` have passed. `work` is not cancelled:
 * `late` hears how it ended after the deadline, so nothing it does goes unseen.
 */
export async function withinDeadline<T>(work: Promise<T>, ms: number, timedOut: () => Error, late?: (outcome: LateOutcome) => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      work.then(
        () => late?.({ ok: true }),
        (err: unknown) => late?.({ ok: false, error: ensureError(err) }),
      );
      reject(timedOut());
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
