/**
 * Surfaces a billing message that Service Bus dead-lettered: the order shows `status.billing =
 * deadlettered` with the reason and delivery count, the timeline says so, and the monitor is
 * woken to requeue or compensate. The trigger completes the dead-letter message only after this
 * returns; anything thrown leaves it in the dead-letter queue for another try.
 */
import { TIMELINE } from '../domain/monitorPolicy';
import { parseOrderCreatedEvent } from '../domain/orderCreatedEvent';
import { isOrderId } from '../domain/orderId';
import type { Logger } from '../log';
import type { OrderSagaDependencies } from '../services/dependencies';
import type { MonitorClient } from '../services/ports';
import { deadLetterPath, ORDERS_TOPIC, SUBSCRIPTIONS } from '../topology';

export interface DeadLetteredMessage {
  body: unknown;
  messageId?: string;
  /** Deliveries before the message was dead-lettered, when the broker says. */
  deliveryCount?: number;
  deadLetterReason?: string;
  deadLetterDescription?: string;
  /** `order_id` application property. */
  orderId?: string;
  correlationId?: string;
}

export type DeadLetterOutcome =
  /** The order now shows its billing dead-lettered. */
  | 'recorded'
  /** This message was already recorded (a repeat delivery from the dead-letter queue). */
  | 'duplicate'
  /** Billing had already finished (done/compensated/failed): noted on the timeline only. */
  | 'noted'
  /** Not an order event, or its order does not exist: kept in the dead-letter archive and logged. */
  | 'unknown-order';

export async function recordBillingDeadLetter(
  message: DeadLetteredMessage,
  env: { deps: OrderSagaDependencies; monitor: MonitorClient; log: Logger },
): Promise<DeadLetterOutcome> {
  const { deps } = env;
  const parsed = parseOrderCreatedEvent(message.body);
  const named = parsed.ok ? parsed.event.data.orderId : message.orderId;
  // A property written by anyone may name no possible order: that is poison, not an outage.
  const orderId = named !== undefined && isOrderId(named) ? named : undefined;
  const log = env.log.with({
    messageId: message.messageId,
    ...(named ? { orderId: named } : {}),
    correlationId: parsed.ok ? parsed.event.data.correlationId : message.correlationId,
    deadLetterReason: message.deadLetterReason,
    deliveryCount: message.deliveryCount,
  });

  const order = orderId ? await deps.orders.get(orderId) : undefined;
  if (!order) {
    // Poison input (no order behind it) has nothing to surface on an order, but the message is
    // never lost: it is kept before the dead-letter queue lets it go (a failure here throws, and
    // the message stays in the queue).
    await deps.deadLetters.park({
      source: deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS.billing),
      messageId: message.messageId,
      deadLetterReason: message.deadLetterReason,
      deadLetterDescription: message.deadLetterDescription,
      correlationId: message.correlationId,
      orderId: named,
      body: message.body,
      parkedAt: deps.now(),
    });
    log.error('billing-deadletter-without-order', new Error(parsed.ok ? 'order not found' : parsed.reason), {
      body: typeof message.body === 'string' ? message.body.slice(0, 2000) : message.body,
    });
    return 'unknown-order';
  }

  const marker = `message ${message.messageId ?? 'without id'}`;
  if (order.timeline.some((e) => e.kind === TIMELINE.deadLettered && e.detail?.startsWith(marker))) {
    log.info('billing-deadletter-duplicate');
    return 'duplicate';
  }

  const reason = [message.deadLetterReason, message.deadLetterDescription].filter(Boolean).join(': ') || 'dead-lettered';
  const entry = {
    at: deps.now(),
    kind: TIMELINE.deadLettered,
    service: 'billing' as const,
    ...(message.deliveryCount !== undefined ? { deliveryCount: message.deliveryCount } : {}),
    reason,
    detail: marker,
  };
  const updated = await deps.orders.transitionStatus(order.id, {
    service: 'billing',
    from: ['pending', 'processing'],
    to: 'deadlettered',
    reason,
    timeline: entry,
  });
  if (!updated) {
    // Billing finished meanwhile (a requeue succeeded) or was compensated: keep the record only.
    await deps.orders.appendTimeline(order.id, { ...entry, detail: `${marker}; billing already ${order.status.billing}` });
    log.info('billing-deadletter-noted', { status: order.status.billing });
    return 'noted';
  }
  log.warn('billing-deadlettered', { reason });
  await env.monitor.notifyOrderChanged(order.id, { source: 'deadletter', service: 'billing', status: 'deadlettered', reason });
  return 'recorded';
}
