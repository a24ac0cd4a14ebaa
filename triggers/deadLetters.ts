/**
 * The consumers' dead-letter queues (`orders/Subscriptions/<service>-sub/$DeadLetterQueue`): each
 * dead-lettered message is surfaced on its order and wakes the monitor (or, with no order behind
 * it, is kept in the dead-letter archive). The message is completed only when this returns; a
 * failure to record it leaves it in the dead-letter queue.
 */
import { app, type InvocationContext } from '@azure/functions';
import { durableClientInput, monitorClientFor } from '../src/bindings/durableBinding';
import { SERVICE_BUS_CONNECTION } from '../src/bindings/orderConsumer';
import { serviceBusMetadata } from '../src/bindings/serviceBusDelivery';
import { createLogger } from '../src/log';
import { appDependencies } from '../src/services/dependencies';
import { recordDeadLetter, type DeadLetteredMessage } from '../src/support/deadLetters';
import { DEAD_LETTER_SUFFIX, ORDERS_TOPIC, SERVICES, SUBSCRIPTIONS } from '../src/topology';

function deadLetterFrom(message: unknown, context: InvocationContext): DeadLetteredMessage {
  const { messageId, deliveryCount, deadLetterReason, deadLetterDescription, orderId, correlationId } = serviceBusMetadata(context);
  return {
    body: message,
    messageId,
    // Counts this dead-letter delivery too; the deliveries before dead-lettering are one fewer.
    deliveryCount: deliveryCount !== undefined && deliveryCount > 1 ? deliveryCount - 1 : undefined,
    deadLetterReason,
    deadLetterDescription,
    orderId,
    correlationId,
  };
}

for (const service of SERVICES) {
  app.serviceBusTopic(`${service}DeadLetter`, {
    connection: SERVICE_BUS_CONNECTION,
    topicName: ORDERS_TOPIC,
    subscriptionName: `${SUBSCRIPTIONS[service]}/${DEAD_LETTER_SUFFIX}`,
    extraInputs: [durableClientInput],
    handler: async (message: unknown, context: InvocationContext): Promise<void> => {
      const log = createLogger(context).with({ invocationId: context.invocationId });
      await recordDeadLetter(service, deadLetterFrom(message, context), { deps: appDependencies(), monitor: monitorClientFor(context, log), log });
    },
  });
}
