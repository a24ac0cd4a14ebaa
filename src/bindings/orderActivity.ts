/** What every activity that acts on one order starts from: a logger that names the order, and the order. */
import type { InvocationContext } from '@azure/functions';
import type { OrderDocument } from '../domain/order';
import { NotFoundError } from '../errors';
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
