/**
 * One registration shape for the three consumers: a topic trigger on the service's subscription
 * that adapts the message and calls `consumeDelivery`.
 */
import { app, type InvocationContext } from '@azure/functions';
import { createLogger } from '../log';
import { consumeDelivery } from '../services/consumers';
import { appDependencies } from '../services/dependencies';
import { ORDERS_TOPIC, SUBSCRIPTIONS, type ServiceName } from '../topology';
import { durableClientInput, monitorClientFor } from './durableBinding';
import { deliveryFrom } from './serviceBusDelivery';

/** Connection setting name (connection string, or `__fullyQualifiedNamespace` with identity). */
export const SERVICE_BUS_CONNECTION = 'ServiceBusConnection';

export function registerOrderConsumer(functionName: string, service: ServiceName): void {
  app.serviceBusTopic(functionName, {
    connection: SERVICE_BUS_CONNECTION,
    topicName: ORDERS_TOPIC,
    subscriptionName: SUBSCRIPTIONS[service],
    extraInputs: [durableClientInput],
    handler: async (message: unknown, context: InvocationContext): Promise<void> => {
      const log = createLogger(context).with({ invocationId: context.invocationId });
      await consumeDelivery(service, deliveryFrom(message, context), {
        deps: appDependencies(),
        monitor: monitorClientFor(context, log),
        log,
      });
    },
  });
}
