/**
 * Activities of saga compensation: plan, the three compensations, and the outcome. The
 * compensations are thin calls into src/services, where each is idempotent (refund once per
 * order, release per hold, one cancellation notice) and records its own timeline entry.
 */
import * as df from 'durable-functions';
import type { ActivityHandler } from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { activityLogger, orderOrThrow } from '../src/bindings/orderActivity';
import { compensationAskedSinceLastRun, compensationRunsStarted, MONITOR_ACTOR, TIMELINE } from '../src/domain/monitorPolicy';
import type { OrderDocument } from '../src/domain/order';
import { planCompensation, type CompensationOutcome, type CompensationStep } from '../src/domain/saga';
import { ORDER_NEEDS_ATTENTION_EVENT } from '../src/log';
import { appDependencies } from '../src/services/dependencies';
import { sendCancellation } from '../src/services/notices';
import { refundPayment } from '../src/services/payment';
import { releaseStock } from '../src/services/stock';
import { appCompensationFaults, assertRefundsWork } from '../src/support/faults';
import { ACTIVITY, type OrderActivityInput } from '../orchestrators/names';

type CompensationActivityInput = OrderActivityInput & { reason: string };

const planOrderCompensation: ActivityHandler = async (input: OrderActivityInput): Promise<CompensationStep[]> =>
  planCompensation(await orderOrThrow(input.orderId));

const refundOrderPayment: ActivityHandler = async (input: CompensationActivityInput, context: InvocationContext) => {
  const deps = appDependencies();
  // The refund switch fails refunds, not compensations: an order never charged, or refunded by an
  // earlier run, has nothing to ask of the gateway.
  const refunded = async () => (await deps.payments.entries(input.orderId)).some((e) => e.kind === 'refund');
  const result = await refundPayment(await orderOrThrow(input.orderId), deps, MONITOR_ACTOR, () => assertRefundsWork(deps, appCompensationFaults(), refunded));
  activityLogger(context, input).info('payment-compensated', result);
  return result;
};

const releaseOrderStock: ActivityHandler = async (input: CompensationActivityInput, context: InvocationContext) => {
  const result = await releaseStock(await orderOrThrow(input.orderId), appDependencies(), MONITOR_ACTOR);
  activityLogger(context, input).info('stock-compensated', result);
  return result;
};

const sendCancellationNotice: ActivityHandler = async (input: CompensationActivityInput, context: InvocationContext) => {
  const result = await sendCancellation(await orderOrThrow(input.orderId), appDependencies(), MONITOR_ACTOR, input.reason);
  activityLogger(context, input).info('cancellation-sent', result);
  return result;
};

/**
 * Records how compensation ended: `cancelled`, or `attention` with what kept failing. Only the
 * order's latest run records: an earlier one still running when a restarted monitor began the
 * next (each step is idempotent, so both may work at once) must not end the order in `attention`
 * while the later run can still finish it. Nor may a run whose outcome a person has since answered:
 * an `attention` recorded, the host killed before the engine heard of it, support asking to
 * compensate again, and this activity run once more would put the order back in `attention`
 * before the next run has begun, and the person's request would never be carried out.
 */
const finishCompensation: ActivityHandler = async (
  input: CompensationActivityInput & CompensationOutcome & { attempt?: number },
  context: InvocationContext,
) => {
  const deps = appDependencies();
  const order = await orderOrThrow(input.orderId);
  const log = activityLogger(context, input);
  const runs = compensationRunsStarted(order);
  const askedSince = compensationAskedSinceLastRun(order);
  if ((input.attempt !== undefined && input.attempt < runs) || askedSince !== undefined) {
    log.info('compensation-superseded', { attempt: input.attempt, latest: runs, outcome: input.outcome, askedBy: askedSince?.by });
    return { recorded: false, superseded: true };
  }
  const at = deps.now();
  for (const failure of input.failures) {
    const detail = `${failure.name} failed after retries`;
    if (order.state === 'compensating' && order.timeline.some((e) => e.kind === TIMELINE.compensationFailed && e.detail === detail && e.at >= lastStart(order))) continue;
    await deps.orders.appendTimeline(order.id, { at, kind: TIMELINE.compensationFailed, detail, reason: failure.error, actor: MONITOR_ACTOR });
  }
  const updated = await deps.orders.transitionState(order.id, {
    from: ['compensating'],
    to: input.outcome,
    timeline: {
      at,
      kind: input.outcome === 'cancelled' ? TIMELINE.cancelled : TIMELINE.attention,
      reason: input.outcome === 'cancelled' ? input.reason : `compensation could not finish: ${input.failures.map((f) => f.name).join(', ')}`,
      actor: MONITOR_ACTOR,
    },
  });
  if (input.outcome === 'cancelled') log.info('order-cancelled', { reason: input.reason });
  else log.warn(ORDER_NEEDS_ATTENTION_EVENT, { failures: input.failures });
  return { recorded: updated !== undefined };
};

function lastStart(order: OrderDocument): string {
  const starts = order.timeline.filter((e) => e.kind === TIMELINE.compensationStarted).map((e) => e.at);
  return starts.length ? starts.sort()[starts.length - 1] : '';
}

df.app.activity(ACTIVITY.planOrderCompensation, { handler: planOrderCompensation });
df.app.activity(ACTIVITY.refundOrderPayment, { handler: refundOrderPayment });
df.app.activity(ACTIVITY.releaseOrderStock, { handler: releaseOrderStock });
df.app.activity(ACTIVITY.sendCancellationNotice, { handler: sendCancellationNotice });
df.app.activity(ACTIVITY.finishCompensation, { handler: finishCompensation });
