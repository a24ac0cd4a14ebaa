/**
 * Durable Task Framework retry backoff for callActivityWithRetry / callSubOrchestratorWithRetry:
 * delay after the n-th failed attempt = firstRetryInterval * backoffCoefficient^(n-1), capped by
 * maxRetryInterval; no further attempts once retryTimeout has passed since the first attempt.
 */
import type { RetryPolicy } from './actions';

export function retryDelayMs(policy: RetryPolicy, failedAttempt: number): number {
  const coefficient = policy.backoffCoefficient && policy.backoffCoefficient > 0 ? policy.backoffCoefficient : 1;
  const delay = policy.firstRetryIntervalInMilliseconds * Math.pow(coefficient, failedAttempt - 1);
  const cap = policy.maxRetryIntervalInMilliseconds;
  return cap && cap > 0 && delay > cap ? cap : delay;
}

/** True once the policy's retryTimeout (if any) has run out. */
export function retryExpired(policy: RetryPolicy, firstAttemptAt: number, now: number): boolean {
  const timeout = policy.retryTimeoutInMilliseconds;
  return !!timeout && timeout > 0 && timeout < Number.MAX_SAFE_INTEGER && now >= firstAttemptAt + timeout;
}
