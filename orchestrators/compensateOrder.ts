/**
 * Saga compensation of one order, run by the monitor as a sub-orchestration: undo the forward steps
 * that succeeded, in reverse, then send one cancellation notice. Each compensation is idempotent
 * and retried with backoff; one that still fails does not stop the others, and the order ends in
 * `attention` with the details instead of retrying forever.
 *
 * A step Cosmos DB did not serve (its activity fails with STORE_OUTAGE_MARK: throttled, unavailable,
 * no answer) has not failed: once its retries are used up it is called again after a durable timer,
 * with its own longer bound (`outage`), so an outage of the database does not send every order it
 * touched to a person.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler, Task } from 'durable-functions';
import { DEFAULT_MONITOR_POLICY, outageWaitMs, statusText, type OutagePolicy, type RetryPolicy } from '../src/domain/monitorPolicy';
import { compensationOutcome, type CompensationOutcome, type CompensationStep } from '../src/domain/saga';
import { ACTIVITY, COMPENSATE_ORDER, COMPENSATION_ACTIVITY, isStoreOutageFailure, type CompensationInput } from './names';

function retryOptions(policy: RetryPolicy): df.RetryOptions {
  const retry = new df.RetryOptions(policy.firstRetryIntervalMs, policy.maxAttempts);
  retry.backoffCoefficient = policy.backoffCoefficient;
  retry.maxRetryIntervalInMilliseconds = policy.maxRetryIntervalMs;
  return retry;
}

function failureMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // The SDK wraps the activity's error; its first line is the activity's own message.
  return message.split('\n')[0].slice(0, 500);
}

/**
 * Calls an activity with `retry`; while it still fails because Cosmos DB did not serve it, waits
 * and calls it again. Past `outage.giveUpAfterMs` since the first such failure, it fails as the
 * step would.
 */
function* callThroughOutage<T>(
  context: OrchestrationContext,
  name: string,
  input: unknown,
  retry: df.RetryOptions,
  outage: OutagePolicy,
  showWait: (wait: { until: string; why?: string } | undefined) => void,
): Generator<Task, T, unknown> {
  let since: number | undefined;
  for (let waits = 0; ; waits++) {
    let failure: unknown;
    try {
      const result = (yield context.df.callActivityWithRetry(name, retry, input)) as T;
      if (since !== undefined) showWait(undefined);
      return result;
    } catch (err) {
      if (!isStoreOutageFailure(err)) throw err;
      failure = err;
    }
    const now = context.df.currentUtcDateTime.getTime();
    since ??= now;
    const why = failureMessage(failure);
    if (now - since >= outage.giveUpAfterMs) {
      throw new Error(`${why}; still so after ${Math.round((now - since) / 1000)} s`);
    }
    const until = new Date(now + outageWaitMs(outage, waits));
    showWait({ until: until.toISOString(), why: statusText(why) });
    if (!context.df.isReplaying) {
      context.log(JSON.stringify({ level: 'warn', event: 'compensation.store-outage', activity: name, until: until.toISOString(), error: why }));
    }
    yield context.df.createTimer(until);
  }
}

const compensateOrder: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<CompensationInput>();
  if (!input?.orderId || !input.retry) {
    throw new Error(`${COMPENSATE_ORDER} needs {orderId, correlationId, reason, retry}; got ${JSON.stringify(input)}`);
  }
  const order = { orderId: input.orderId, correlationId: input.correlationId };
  const retry = retryOptions(input.retry);
  const outage = input.outage ?? DEFAULT_MONITOR_POLICY.compensationOutage;
  let status: Record<string, unknown> = { phase: 'planning', reason: statusText(input.reason) };
  const showWait = (waiting: { until: string; why?: string } | undefined) => context.df.setCustomStatus(waiting ? { ...status, waiting } : status);
  const call = <T>(name: string, activityInput: unknown) => callThroughOutage<T>(context, name, activityInput, retry, outage, showWait);

  // Notes the run under way before planning it: from then on no monitor takes it for a run never carried out.
  const plan = yield* call<CompensationStep[]>(ACTIVITY.planOrderCompensation, { ...order, attempt: input.attempt });

  const done: string[] = [];
  const failures: CompensationOutcome['failures'] = [];
  for (const step of plan) {
    status = { phase: 'compensating', reason: statusText(input.reason), current: step.name, done, failures };
    context.df.setCustomStatus(status);
    try {
      yield* call(COMPENSATION_ACTIVITY[step.name], { ...order, reason: input.reason });
      done.push(step.name);
    } catch (err) {
      failures.push({ name: step.name, error: failureMessage(err) });
    }
  }

  const outcome = compensationOutcome(failures);
  status = { phase: outcome.outcome, reason: statusText(input.reason), done, failures };
  context.df.setCustomStatus(status);
  yield* call(ACTIVITY.finishCompensation, { ...order, reason: input.reason, attempt: input.attempt, ...outcome });
  return outcome;
};

df.app.orchestration(COMPENSATE_ORDER, compensateOrder);
