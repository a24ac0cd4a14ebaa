/**
 * How a compensation run begins, is taken up and ends on the order: `cancelled`, or `attention`
 * with what kept failing; and the monitor's `attention` when compensation runs are used up. Each
 * may run again after a host restart (an activity the engine had not heard finish), so each first
 * checks that its outcome still stands.
 */
import {
  compensationAskedSinceLastRun,
  compensationRunsStarted,
  latestRunNeverUnderway,
  MONITOR_ACTOR,
  monitorSnapshotOf,
  sinceLastCompensationRun,
  TIMELINE,
  underwayDetail,
} from '../domain/monitorPolicy';
import type { OrderDocument } from '../domain/order';
import { isReadyToComplete } from '../domain/orderState';
import type { CompensationOutcome } from '../domain/saga';
import { ORDER_NEEDS_ATTENTION_EVENT, type Logger } from '../log';
import type { OrderSagaDependencies } from './dependencies';
import { voidUnsentConfirmation } from './notices';
import { CHANGED, onOrderAsRead } from './orderAsRead';

export interface RunStart {
  reason: string;
  requestedBy?: string;
  /** The monitor's step that begins the run: the same on every replay of that step. */
  step?: string;
  /**
   * The monitor found the latest run begun and never carried out: the run is that one, carried out
   * now, and not counted again. Only while the order as read still says so; else a run is begun.
   */
  resume?: boolean;
}

/** States a compensation run may begin from, and the monitor's `attention` be recorded from: not finished. */
const UNFINISHED: readonly OrderDocument['state'][] = ['accepted', 'processing', 'compensating'];
/**
 * Moves the order to `compensating` and counts the run; null when the order finished meanwhile, or
 * is about to: its three services are all done (the monitor decided from an order read before the
 * last of them finished), and it is completed, not cancelled.
 * `run` counts the runs since compensation was last asked for (a person asking again after
 * `attention` gets fresh runs); `attempt` counts every run the order ever had, and names the run's
 * sub-orchestration, so a later run never reuses (and replaces) an earlier run's instance.
 *
 * A step begins one run however often it is run: again after the host died between the write and
 * the engine hearing it finish, again when the monitor tries the same step after every retry of
 * it failed (the write may have landed all the same), or twice at once. The run is counted from
 * the order as read, and written only if nothing was written since (the timeline's length): a
 * copy that finds the order changed reads it again, and finds the run its twin began.
 *
 * A run resumed (`resume`: begun, and its sub-orchestration never took it up) keeps its count and
 * gets the next `attempt`, so its sub-orchestration is a new instance: the earlier run's instance
 * may exist after all (started just before its monitor was terminated, not yet underway), and
 * starting an instance that is running is refused by the local engine and, on Azure, dropped as a
 * duplicate start that never answers. The earlier one, if it runs, is superseded by the number.
 */
export async function beginCompensationRun(
  order: OrderDocument,
  start: RunStart,
  deps: OrderSagaDependencies,
  log: Logger,
): Promise<{ run: number; attempt: number } | null> {
  return onOrderAsRead(order, deps, 'the compensation run did not begin', null, async (current) => {
    if (!UNFINISHED.includes(current.state)) return null;
    if (isReadyToComplete(current)) {
      log.info('compensation-not-begun-order-done', { reason: start.reason });
      return null;
    }
    const latest = [...current.timeline].reverse().find((e) => e.kind === TIMELINE.compensationStarted);
    // A person who asked to compensate since that run began (after it ended in attention) is owed
    // a run of their own: the step's run is past, and its outcome would be set aside as superseded.
    const superseded = compensationAskedSinceLastRun(current) !== undefined;
    if (start.step !== undefined && latest?.step === start.step && current.state === 'compensating' && !superseded) {
      const begun = { run: monitorSnapshotOf(current).compensationRuns, attempt: compensationRunsStarted(current) };
      log.info('compensation-already-started', { reason: start.reason, ...begun });
      return begun;
    }
    const resumes = start.resume === true && latest !== undefined && current.state === 'compensating' && !superseded && latestRunNeverUnderway(current);
    const run = monitorSnapshotOf(current).compensationRuns + (resumes ? 0 : 1);
    const attempt = compensationRunsStarted(current) + 1;
    const updated = await deps.orders.transitionState(current.id, {
      from: UNFINISHED,
      to: 'compensating',
      whenTimelineLength: current.timeline.length,
      timeline: {
        at: deps.now(),
        kind: TIMELINE.compensationStarted,
        reason: start.reason,
        // Numbered as the order had them, like the runs' sub-orchestrations: support reads run 2
        // after asking again, not a second run 1.
        detail: resumes ? `run ${attempt}, resuming run ${attempt - 1}` : `run ${attempt}`,
        actor: start.requestedBy ?? MONITOR_ACTOR,
        ...(start.step !== undefined ? { step: start.step } : {}),
        notesUnderway: true,
        ...(resumes ? { resumes: attempt - 1 } : {}),
      },
    });
    if (!updated) return CHANGED;
    // Compensating from here on, so never completed: a notification delivery claimed before and
    // still at work must not confirm the order while the run is on its way to its first step.
    await voidUnsentConfirmation(updated, deps);
    log.warn(resumes ? 'compensation-resumed' : 'compensation-started', { reason: start.reason, run, attempt });
    return { run, attempt };
  });
}

/**
 * Notes on the order that run number `attempt` is under way: its sub-orchestration has taken it up.
 * Until then the order says the run was begun and never carried out, and a monitor started afresh
 * (which knows nothing of what its predecessor did) carries it out instead of counting it as tried.
 * Once per run; nothing for a run superseded meanwhile, nor for an order no longer compensating.
 */
export async function noteRunUnderway(order: OrderDocument, attempt: number, deps: OrderSagaDependencies): Promise<{ noted: boolean }> {
  return onOrderAsRead(order, deps, 'the run was not noted under way', { noted: false }, async (current) => {
    if (current.state !== 'compensating' || compensationRunsStarted(current) !== attempt) return { noted: false };
    const detail = underwayDetail(attempt);
    if (sinceLastCompensationRun(current).some((e) => e.kind === TIMELINE.compensationUnderway && e.detail === detail)) return { noted: false };
    const entry = { at: deps.now(), kind: TIMELINE.compensationUnderway, detail, actor: MONITOR_ACTOR };
    if (!(await deps.orders.appendTimeline(current.id, entry, { whenTimelineLength: current.timeline.length }))) return CHANGED;
    return { noted: true };
  });
}

export interface FinishedRun extends CompensationOutcome {
  /** Why compensation began, for the `cancelled` entry. */
  reason: string;
  /** The run's number among all the order's runs (its sub-orchestration's). */
  attempt?: number;
}

/**
 * Records the run's outcome, unless a later run or a person's newer request supersedes it: an
 * earlier run still going when a restarted monitor began the next (each step is idempotent, so
 * both may work at once) must not end the order in `attention` while the later run can still
 * finish it; nor may a run whose `attention` a person has since answered by asking to compensate
 * again, which this run, recorded once more, would otherwise undo.
 */
export async function finishCompensationRun(
  order: OrderDocument,
  run: FinishedRun,
  deps: OrderSagaDependencies,
  log: Logger,
): Promise<{ recorded: boolean; superseded?: true }> {
  const at = deps.now();
  return onOrderAsRead(order, deps, "the run's outcome was not recorded", { recorded: false }, async (current) => {
    const runs = compensationRunsStarted(current);
    const askedSince = compensationAskedSinceLastRun(current);
    if ((run.attempt !== undefined && run.attempt < runs) || askedSince !== undefined) {
      log.info('compensation-superseded', { attempt: run.attempt, latest: runs, outcome: run.outcome, askedBy: askedSince?.by });
      return { recorded: false, superseded: true };
    }
    if (current.state !== 'compensating') return { recorded: false };
    const sinceStart = sinceLastCompensationRun(current);
    let length = current.timeline.length;
    for (const failure of run.failures) {
      const detail = `${failure.name} failed after retries`;
      // Once per run, whatever the order's state: run once more after it recorded `attention` (the
      // host died before the engine heard it finish), it finds its failures there already.
      if (sinceStart.some((e) => e.kind === TIMELINE.compensationFailed && e.detail === detail)) continue;
      const entry = { at, kind: TIMELINE.compensationFailed, detail, reason: failure.error, actor: MONITOR_ACTOR };
      if (await deps.orders.appendTimeline(current.id, entry, { whenTimelineLength: length })) length += 1;
    }
    // Written only onto the order as read: a copy of this activity that read the order before a
    // twin recorded `attention`, and a person then asked to compensate again (which moves the order
    // back to `compensating`), would otherwise put the order back in `attention` and drop the
    // person's request. A copy that finds the order changed reads it again and decides anew.
    const updated = await deps.orders.transitionState(current.id, {
      from: ['compensating'],
      to: run.outcome,
      whenTimelineLength: length,
      timeline: {
        at,
        kind: run.outcome === 'cancelled' ? TIMELINE.cancelled : TIMELINE.attention,
        reason: run.outcome === 'cancelled' ? run.reason : `compensation could not finish: ${run.failures.map((f) => f.name).join(', ')}`,
        actor: MONITOR_ACTOR,
      },
    });
    if (!updated) return CHANGED;
    // The alert goes with the outcome it announces: a run again after recording it raises none.
    if (run.outcome === 'cancelled') log.info('order-cancelled', { reason: run.reason });
    else log.warn(ORDER_NEEDS_ATTENTION_EVENT, { failures: run.failures });
    return { recorded: true };
  });
}

/**
 * The monitor's `attention` (compensation runs used up), unless a person has asked to compensate
 * since the last run began. Written only onto the order as read, for the same reason as a run's
 * outcome: a stale copy must not undo a person's request made after a twin recorded `attention`.
 */
export async function markAttention(order: OrderDocument, reason: string, deps: OrderSagaDependencies, log: Logger): Promise<{ attention: boolean }> {
  return onOrderAsRead(order, deps, 'attention was not recorded', { attention: false }, async (current) => {
    if (!UNFINISHED.includes(current.state)) return { attention: false };
    const askedSince = compensationAskedSinceLastRun(current);
    if (askedSince) {
      log.info('attention-superseded', { askedBy: askedSince.by });
      return { attention: false };
    }
    const updated = await deps.orders.transitionState(current.id, {
      from: UNFINISHED,
      to: 'attention',
      whenTimelineLength: current.timeline.length,
      timeline: { at: deps.now(), kind: TIMELINE.attention, reason, actor: MONITOR_ACTOR },
    });
    if (!updated) return CHANGED;
    log.warn(ORDER_NEEDS_ATTENTION_EVENT, { reason });
    return { attention: true };
  });
}
