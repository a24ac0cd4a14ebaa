/** What every activity that acts on one order starts from: a logger that names the order, and the order. */
import type { InvocationContext } from '@azure/functions';
import { isStoreUnavailable } from '../azure/cosmosErrors';
import type { OrderDocument } from '../domain/order';
import { ensureError, NotFoundError, TransientError } from '../errors';
import { createLogger, type Logger } from '../log';
import { appDependencies } from '../services/dependencies';

export function activityLogger(context: InvocationContext, input: { orderId: string; correlationId: string }): Logger {
  return createLogger(context).with({ orderId: input.orderId, correlationId: input.correlationId, activity: context.functionName });
}

export async function orderOrThrow(orderId: string): Promise<OrderDocument> {
  const order = await appDependencies().orders.get(orderId);
  if (!order) throw new NotFoundError(`order ${orderId} not found`);
  return order;
}

/**
 * `work`, whose failure to be served by Cosmos DB (throttled past the SDK's retries, unavailable, no
 * answer) is thrown with its message begun by `mark`, for the orchestration to tell such an outage
 * from the step failing. Any other failure is thrown as it is.
 */
export function outageMarked<I extends { orderId: string; correlationId: string }, T>(
  mark: string,
  event: string,
  work: (context: InvocationContext, input: I) => Promise<T>,
): (input: I, context: InvocationContext) => Promise<T> {
  return async (input: I, context: InvocationContext): Promise<T> => {
    try {
      return await work(context, input);
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err;
      const outage = new TransientError(`${mark}: ${ensureError(err).message.split('\n')[0]!.slice(0, 300)}`, { cause: err });
      activityLogger(context, input).warn(event, { error: outage.message });
      throw outage;
    }
  };
}
