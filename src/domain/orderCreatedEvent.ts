/**
 * The OrderCreated event: CloudEvents 1.0 structured JSON, one per order. Its id is the order's
 * eventId, which is also the Service Bus messageId of the first publish.
 */
import { z } from 'zod';
import type { OrderDocument } from './order';

export const ORDER_CREATED = 'OrderCreated';
export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json';
export const EVENT_SOURCE = '/order-saga/orders';

export const orderCreatedDataSchema = z.object({
  // Order ids appear in conditional patches, which only take lower-case word characters.
  orderId: z.string().regex(/^[a-z0-9-]{1,64}$/),
  customerId: z.string().min(1),
  items: z.array(z.object({ sku: z.string().min(1), quantity: z.number().int().positive(), unitPrice: z.number() })).min(1),
  total: z.number(),
  currency: z.string(),
  correlationId: z.string().min(1),
});

export const orderCreatedEventSchema = z.object({
  specversion: z.literal('1.0'),
  id: z.string().min(1),
  source: z.string().min(1),
  type: z.literal(ORDER_CREATED),
  subject: z.string().min(1),
  datacontenttype: z.literal('application/json'),
  time: z.string(),
  data: orderCreatedDataSchema,
});

export type OrderCreatedEvent = z.infer<typeof orderCreatedEventSchema>;

export function buildOrderCreatedEvent(order: OrderDocument): OrderCreatedEvent {
  return {
    specversion: '1.0',
    id: order.eventId,
    source: EVENT_SOURCE,
    type: ORDER_CREATED,
    subject: order.id,
    datacontenttype: 'application/json',
    time: order.createdAt,
    data: {
      orderId: order.id,
      customerId: order.customerId,
      items: order.items.map((i) => ({ sku: i.sku, quantity: i.quantity, unitPrice: i.unitPrice })),
      total: order.total,
      currency: order.currency,
      correlationId: order.correlationId,
    },
  };
}

/** Service Bus application properties of the contract (snake_case survives the host's camelCasing). */
export function orderCreatedProperties(order: Pick<OrderDocument, 'id' | 'correlationId'>): Record<string, string> {
  return { event_type: ORDER_CREATED, order_id: order.id, correlation_id: order.correlationId };
}

export type ParsedEvent = { ok: true; event: OrderCreatedEvent } | { ok: false; reason: string };

/** Accepts the body as the host hands it over: parsed object, JSON string or bytes. */
export function parseOrderCreatedEvent(body: unknown): ParsedEvent {
  let value: unknown = body;
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) value = Buffer.from(body).toString('utf8');
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return { ok: false, reason: 'body is not JSON' };
    }
  }
  const parsed = orderCreatedEventSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`);
    return { ok: false, reason: `not an OrderCreated CloudEvent: ${issues.join('; ')}` };
  }
  if (parsed.data.subject !== parsed.data.data.orderId) {
    return { ok: false, reason: 'subject does not match data.orderId' };
  }
  return { ok: true, event: parsed.data };
}
