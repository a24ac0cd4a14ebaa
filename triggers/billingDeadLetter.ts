/**
 * Billing's dead-letter queue (`orders/Subscriptions/billing-sub/$DeadLetterQueue`): surfaces each
 * dead-lettered billing on its order and wakes the monitor. The message is completed only when
 * this returns; a failure to record it leaves it in the dead-letter queue.
 */
import { app, type InvocationContext } from '@azure/functions';
import { durableClientInput, monitorClientFor } from '../src/bindings/durableBinding';
import { SERVICE_BUS_CONNECTION } from '../src/bindings/orderConsumer';
import { createLogger } from '../src/log';
import { appDependencies } from '../src/services/dependencies';
import { recordBillingDeadLetter, type DeadLetteredMessage } from '../src/support/billingDeadLetter';
import { DEAD_LETTER_SUFFIX, ORDERS_TOPIC, SUBSCRIPTIONS } from '../src/topology';

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/** The host camel-cases the first letter of metadata keys: `DeadLetterReason` arrives as `deadLetterReason`. */
function deadLetterFrom(message: unknown, context: InvocationContext): DeadLetteredMessage {
  const meta = (context.triggerMetadata ?? {}) as Record<string, unknown>;
  const props = (meta.applicationProperties ?? meta.userProperties ?? {}) as Record<string, unknown>;
  const count = Number(meta.deliveryCount);
  return {
    body: message,
    messageId: text(meta.messageId),
    // Counts this dead-letter delivery too; the deliveries before dead-lettering are one fewer.
    deliveryCount: Number.isFinite(count) && count > 1 ? count - 1 : undefined,
    deadLetterReason: text(props.deadLetterReason) ?? text(meta.deadLetterReason),
    deadLetterDescription: text(props.deadLetterErrorDescription) ?? text(meta.deadLetterErrorDescription),
    orderId: text(props.order_id),
    correlationId: text(props.correlation_id) ?? text(meta.correlationId),
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
