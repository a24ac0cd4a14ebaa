/**
 * Publishing OrderCreated: once at intake (messageId = eventId, so duplicate detection drops a
 * repeat of the same publish) and as a targeted republish to one consumer (fresh messageId per
 * attempt, application property `target`, original event id and correlation id kept).
 */
import { buildOrderCreatedEvent, CLOUDEVENTS_CONTENT_TYPE, ORDER_CREATED, orderCreatedProperties } from '../domain/orderCreatedEvent';
import { MONITOR_ACTOR, republishedDetail, republishedMessageId, TIMELINE } from '../domain/monitorPolicy';
import type { OrderDocument } from '../domain/order';
import { TARGET_PROPERTY, type ServiceName } from '../topology';
import { appDependencies, type OrderSagaDependencies } from './dependencies';
import { CHANGED, onOrderAsRead, OrderKeptChangingError } from './orderAsRead';

/**
 * Publishes the order's OrderCreated event. Nothing is written to the order here: the first
 * consumer to receive the event records `published` in its claim, which costs no extra write.
 */
export async function publishOrderCreated(order: OrderDocument, deps: OrderSagaDependencies = appDependencies()): Promise<void> {
  await deps.publisher.publish({
    messageId: order.eventId,
    body: buildOrderCreatedEvent(order),
    contentType: CLOUDEVENTS_CONTENT_TYPE,
    correlationId: order.correlationId,
    subject: ORDER_CREATED,
    applicationProperties: orderCreatedProperties(order),
  });
}

export function republishMessageId(order: Pick<OrderDocument, 'eventId'>, service: ServiceName, attempt: number): string {
  return `${order.eventId}:${service}:${attempt}`;
}

/** Which send of the order's event to `service` a message is: 0 the event itself, n `republishMessageId`'s n-th; undefined for any other id. */
export function sendNumber(order: Pick<OrderDocument, 'eventId'>, service: ServiceName, messageId: string | undefined): number | undefined {
  if (messageId === order.eventId) return 0;
  const prefix = `${order.eventId}:${service}:`;
  const n = messageId?.startsWith(prefix) ? messageId.slice(prefix.length) : undefined;
  return n !== undefined && /^[1-9][0-9]*$/.test(n) ? Number(n) : undefined;
}

/**
 * Sends the order's event again to ONE consumer (subscription filters route on `target`). Each
 * attempt has its own messageId so duplicate detection does not drop it; the same attempt number
 * twice is dropped, which makes a retried requeue step harmless. Records a `republished` timeline
 * entry once per message: two copies of one step may both send it (one read the order between the
 * other's send and its record), and the copy whose record finds the order changed reads it again
 * and finds its twin's entry.
 */
export async function republishToService(
  order: OrderDocument,
  service: ServiceName,
  attempt: number,
  reason: string,
  deps: OrderSagaDependencies = appDependencies(),
): Promise<{ messageId: string }> {
  const messageId = republishMessageId(order, service, attempt);
  await deps.publisher.publish({
    messageId,
    body: buildOrderCreatedEvent(order),
    contentType: CLOUDEVENTS_CONTENT_TYPE,
    correlationId: order.correlationId,
    subject: ORDER_CREATED,
    applicationProperties: {
      ...orderCreatedProperties(order),
      [TARGET_PROPERTY]: service,
      original_event_id: order.eventId,
      attempt,
      reason: reason.slice(0, 200),
    },
  });
  const entry = { at: deps.now(), kind: TIMELINE.republished, service, reason, detail: republishedDetail(attempt, messageId), actor: MONITOR_ACTOR };
  try {
    await onOrderAsRead(order, deps, `the send of ${messageId} was not recorded`, undefined, async (current) => {
      if (current.timeline.some((e) => e.kind === TIMELINE.republished && e.service === service && republishedMessageId(e.detail) === messageId)) return undefined;
      return (await deps.orders.appendTimeline(current.id, entry, { whenTimelineLength: current.timeline.length })) ? undefined : CHANGED;
    });
  } catch (err) {
    if (!(err instanceof OrderKeptChangingError)) throw err;
    // Others kept writing the order (its deliveries): recorded regardless, at worst as a second
    // entry of this one message, which counts once. Given up, the record would be missing, and
    // the next send, numbered from the sends recorded, would reuse this message id and be dropped.
    await deps.orders.appendTimeline(order.id, entry);
  }
  return { messageId };
}
