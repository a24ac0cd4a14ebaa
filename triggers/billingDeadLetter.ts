/**
 * Billing's dead-letter queue (`orders/Subscriptions/billing-sub/$DeadLetterQueue`): surfaces each
 * dead-lettered billing on its order and wakes the monitor. The message is completed only when
 * this returns; a failure to record it leaves it in the dead-letter queue.
 */
import { app, type InvocationContext } from '@azure/functions';
import { durableClientInput, monitorClientFor } from '../src/bindings/durableBinding';
import { SERVICE_BUS_CONNECTION } from '../src/bindings/orderConsumer';
import { serviceBusMetadata } from '../src/bindings/serviceBusDelivery';
import { createLogger } from '../src/log';
import { appDependencies } from '../src/services/dependencies';
import { recordBillingDeadLetter, type DeadLetteredMessage } from '../src/support/billingDeadLetter';
import { DEAD_LETTER_SUFFIX, ORDERS_TOPIC, SUBSCRIPTIONS } from '../src/topology';

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

app.serviceBusTopic('billingDeadLetter', {
  connection: SERVICE_BUS_CONNECTION,
  topicName: ORDERS_TOPIC,
  subscriptionName: `${SUBSCRIPTIONS.billing}/${DEAD_LETTER_SUFFIX}`,
  extraInputs: [durableClientInput],
  handler: async (message: unknown, context: InvocationContext): Promise<void> => {
    const log = createLogger(context).with({ invocationId: context.invocationId });
    await recordBillingDeadLetter(deadLetterFrom(message, context), { deps: appDependencies(), monitor: monitorClientFor(context, log), log });
  },
});
