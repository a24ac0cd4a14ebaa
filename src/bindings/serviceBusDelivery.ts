/** Adapts what the Service Bus trigger receives (body + trigger metadata) to a `Delivery`. */
import type { InvocationContext } from '@azure/functions';
import type { Delivery } from '../services/consumers';

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

export function deliveryFrom(message: unknown, context: InvocationContext): Delivery {
  const meta = (context.triggerMetadata ?? {}) as Record<string, unknown>;
  // The host camel-cases the first letter of every key; snake_case property names survive as-is.
  const props = (meta.applicationProperties ?? meta.userProperties ?? {}) as Record<string, unknown>;
  const count = Number(meta.deliveryCount);
  return {
    body: message,
    messageId: text(meta.messageId),
    deliveryCount: Number.isFinite(count) && count > 0 ? count : 1,
    correlationId: text(props.correlation_id) ?? text(meta.correlationId),
    orderId: text(props.order_id),
  };
}
