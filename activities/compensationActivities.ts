/**
 * Activities of saga compensation: plan, the three compensations, and the outcome. The
 * compensations are thin calls into src/services, where each is idempotent (refund once per
 * order, release per hold, one cancellation notice) and records its own timeline entry.
 */
import * as df from 'durable-functions';
import type { ActivityHandler } from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { activityLogger, orderOrThrow } from '../src/bindings/orderActivity';
import { MONITOR_ACTOR } from '../src/domain/monitorPolicy';
import { planCompensation, type CompensationOutcome, type CompensationStep } from '../src/domain/saga';
import { finishCompensationRun } from '../src/services/compensationOutcome';
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

/** Records how compensation ended (`src/services/compensationOutcome.ts`), unless a later run or request supersedes it. */
const finishCompensation: ActivityHandler = async (
  input: CompensationActivityInput & CompensationOutcome & { attempt?: number },
  context: InvocationContext,
) => finishCompensationRun(await orderOrThrow(input.orderId), input, appDependencies(), activityLogger(context, input));

df.app.activity(ACTIVITY.planOrderCompensation, { handler: planOrderCompensation });
df.app.activity(ACTIVITY.refundOrderPayment, { handler: refundOrderPayment });
df.app.activity(ACTIVITY.releaseOrderStock, { handler: releaseOrderStock });
df.app.activity(ACTIVITY.sendCancellationNotice, { handler: sendCancellationNotice });
df.app.activity(ACTIVITY.finishCompensation, { handler: finishCompensation });
