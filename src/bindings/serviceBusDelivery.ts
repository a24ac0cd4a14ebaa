/** Reads what a Service Bus trigger receives (body + trigger metadata); adapts it to a consumer's `Delivery`. */
import type { InvocationContext } from '@azure/functions';
import type { Delivery } from '../services/consumers';

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** The trigger metadata this app reads, from a consumer's subscription or from a dead-letter queue. */
export interface ServiceBusMetadata {
  messageId?: string;
  /** The host's count (1 on the first delivery); undefined when it is missing or not positive. */
  deliveryCount?: number;
  /** `correlation_id` application property, else the message's own correlation id. */
  correlationId?: string;
  /** `order_id` application property. */
  orderId?: string;
  /** Set by the broker on a dead-lettered message. */
  deadLetterReason?: string;
  deadLetterDescription?: string;
}

export function serviceBusMetadata(context: InvocationContext): ServiceBusMetadata {
  const meta = (context.triggerMetadata ?? {}) as Record<string, unknown>;
  // The host camel-cases the first letter of every key (`DeadLetterReason` arrives as
  // `deadLetterReason`); snake_case property names survive as-is.
  const props = (meta.applicationProperties ?? meta.userProperties ?? {}) as Record<string, unknown>;
  const count = Number(meta.deliveryCount);
  return {
    messageId: text(meta.messageId),
    deliveryCount: Number.isFinite(count) && count > 0 ? count : undefined,
    correlationId: text(props.correlation_id) ?? text(meta.correlationId),
    orderId: text(props.order_id),
    deadLetterReason: text(props.deadLetterReason) ?? text(meta.deadLetterReason),
    deadLetterDescription: text(props.deadLetterErrorDescription) ?? text(meta.deadLetterErrorDescription),
  };
}

export function deliveryFrom(message: unknown, context: InvocationContext): Delivery {
  const meta = serviceBusMetadata(context);
  return {
    body: message,
    messageId: meta.messageId,
    deliveryCount: meta.deliveryCount ?? 1,
    correlationId: meta.correlationId,
    orderId: meta.orderId,
  };
}
