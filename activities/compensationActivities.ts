/**
 * Activities of saga compensation: plan, the three compensations, and the outcome. The
 * compensations are thin calls into src/services, where each is idempotent (refund once per
 * order, release per hold, one cancellation notice) and records its own timeline entry.
 *
 * Each fails with STORE_OUTAGE_MARK when Cosmos DB did not serve it (throttled past the SDK's
 * retries, unavailable, no answer): the orchestration waits that out rather than count it as the
 * step failing, so a busy or unreachable database does not end orders in `attention`.
 */
import * as df from 'durable-functions';
import type { ActivityHandler } from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { activityLogger, orderOrThrow, outageMarked } from '../src/bindings/orderActivity';
import { MONITOR_ACTOR } from '../src/domain/monitorPolicy';
import { planCompensation, type CompensationOutcome, type CompensationStep } from '../src/domain/saga';
import { finishCompensationRun, noteRunUnderway } from '../src/services/compensationOutcome';
import { appDependencies } from '../src/services/dependencies';
import { sendCancellation, voidUnsentConfirmation } from '../src/services/notices';
import { refundPayment } from '../src/services/payment';
import { releaseStock } from '../src/services/stock';
import { appCompensationFaults, assertRefundsWork } from '../src/support/faults';
import { ACTIVITY, STORE_OUTAGE_MARK, type OrderActivityInput } from '../orchestrators/names';

type CompensationActivityInput = OrderActivityInput & { reason: string };

/** `work`, whose failure to be served by Cosmos DB is marked as such (STORE_OUTAGE_MARK). */
function compensationStep<I extends OrderActivityInput, T>(work: (context: InvocationContext, input: I) => Promise<T>): ActivityHandler {
  return outageMarked(STORE_OUTAGE_MARK, 'compensation-store-outage', work);
}

/**
 * The run's first activity: notes the run under way on the order (`noteRunUnderway`), then plans it.
 * One activity, not two, so a run's history keeps the shape it had before runs noted themselves.
 */
const planOrderCompensation = async (_context: InvocationContext, input: OrderActivityInput & { attempt?: number }): Promise<CompensationStep[]> => {
  const order = await orderOrThrow(input.orderId);
  // Runs begun before their number was handed down have none, and were never waited for.
  if (input.attempt !== undefined) await noteRunUnderway(order, input.attempt, appDependencies());
  // From here the order is never completed: no confirmation may go out after the run began.
  await voidUnsentConfirmation(order, appDependencies());
  return planCompensation(order);
};

const refundOrderPayment = async (context: InvocationContext, input: CompensationActivityInput) => {
  const deps = appDependencies();
  // The refund switch fails refunds, not compensations: an order never charged, or refunded by an
  // earlier run, has nothing to ask of the gateway.
  const refunded = async () => (await deps.payments.entries(input.orderId)).some((e) => e.kind === 'refund');
  const result = await refundPayment(await orderOrThrow(input.orderId), deps, MONITOR_ACTOR, () => assertRefundsWork(deps, appCompensationFaults(), refunded));
  activityLogger(context, input).info('payment-compensated', result);
  return result;
};

const releaseOrderStock = async (context: InvocationContext, input: CompensationActivityInput) => {
  const result = await releaseStock(await orderOrThrow(input.orderId), appDependencies(), MONITOR_ACTOR);
  activityLogger(context, input).info('stock-compensated', result);
  return result;
};

const sendCancellationNotice = async (context: InvocationContext, input: CompensationActivityInput) => {
  const result = await sendCancellation(await orderOrThrow(input.orderId), appDependencies(), MONITOR_ACTOR, input.reason);
  activityLogger(context, input).info('cancellation-sent', result);
  return result;
};

/** Records how compensation ended (`src/services/compensationOutcome.ts`), unless a later run or request supersedes it. */
const finishCompensation = async (context: InvocationContext, input: CompensationActivityInput & CompensationOutcome & { attempt?: number }) =>
  finishCompensationRun(await orderOrThrow(input.orderId), input, appDependencies(), activityLogger(context, input));

df.app.activity(ACTIVITY.planOrderCompensation, { handler: compensationStep(planOrderCompensation) });
df.app.activity(ACTIVITY.refundOrderPayment, { handler: compensationStep(refundOrderPayment) });
df.app.activity(ACTIVITY.releaseOrderStock, { handler: compensationStep(releaseOrderStock) });
df.app.activity(ACTIVITY.sendCancellationNotice, { handler: compensationStep(sendCancellationNotice) });
df.app.activity(ACTIVITY.finishCompensation, { handler: compensationStep(finishCompensation) });
