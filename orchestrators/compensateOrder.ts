/**
 * Saga compensation of one order, run by the monitor as a sub-orchestration: undo the forward steps
 * that succeeded, in reverse, then send one cancellation notice. Each compensation is idempotent
 * and retried with backoff; one that still fails does not stop the others, and the order ends in
 * `attention` with the details instead of retrying forever.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { statusText, type RetryPolicy } from '../src/domain/monitorPolicy';
import { compensationOutcome, type CompensationOutcome, type CompensationStep } from '../src/domain/saga';
import { ACTIVITY, COMPENSATE_ORDER, COMPENSATION_ACTIVITY, type CompensationInput } from './names';

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

const compensateOrder: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<CompensationInput>();
  if (!input?.orderId || !input.retry) {
    throw new Error(`${COMPENSATE_ORDER} needs {orderId, correlationId, reason, retry}; got ${JSON.stringify(input)}`);
  }
  const order = { orderId: input.orderId, correlationId: input.correlationId };
  const retry = retryOptions(input.retry);

  const plan: CompensationStep[] = yield context.df.callActivityWithRetry(ACTIVITY.planOrderCompensation, retry, order);

  const done: string[] = [];
  const failures: CompensationOutcome['failures'] = [];
  for (const step of plan) {
    context.df.setCustomStatus({ phase: 'compensating', reason: statusText(input.reason), current: step.name, done, failures });
    try {
      yield context.df.callActivityWithRetry(COMPENSATION_ACTIVITY[step.name], retry, { ...order, reason: input.reason });
      done.push(step.name);
    } catch (err) {
      failures.push({ name: step.name, error: failureMessage(err) });
    }
  }

  const outcome = compensationOutcome(failures);
  context.df.setCustomStatus({ phase: outcome.outcome, reason: statusText(input.reason), done, failures });
  yield context.df.callActivityWithRetry(ACTIVITY.finishCompensation, retry, { ...order, reason: input.reason, attempt: input.attempt, ...outcome });
  return outcome;
};

df.app.orchestration(COMPENSATE_ORDER, compensateOrder);
