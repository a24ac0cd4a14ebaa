/**
 * Surfaces a message that Service Bus dead-lettered from a consumer's subscription (recorded by the
 * consumer whose last delivery failed, or found by the dead-letter sweep, `deadLetterSweep.ts`), on
 * its order's timeline with the reason and delivery count, and wakes the monitor:
 * - billing shows `status.billing = deadlettered`; the monitor requeues it after a backoff, then
 *   compensates;
 * - inventory and notification keep their status (`pending`/`processing`, so the next delivery
 *   claims as usual); the monitor republishes to that service after the requeue backoff instead of
 *   waiting for it to look stuck, and compensates when its republishes are used up.
 * A message the app cannot read (its body is not an order event) is kept in the dead-letter
 * archive with why; when its `order_id` property names an order, it is also surfaced on that order
 * as above (it may have been the order's own event, corrupted). Recording is idempotent: the sweep
 * finds what the consumer recorded, and sees it again after a restart. Anything thrown leaves the
 * message unrecorded for the next sweep; the message itself stays in its dead-letter queue.
 */
import { writeOutcomeUnknown } from '../azure/cosmosErrors';
import {
  deadLetterMarker,
  isDeadLetterOf,
  notedDeadLetterDetail,
  republishedMessageId,
  sendInTheMaking,
  targetedSends,
  TIMELINE,
  unrecordedSends,
} from '../domain/monitorPolicy';
import { parseOrderCreatedEvent } from '../domain/orderCreatedEvent';
import { isOrderId } from '../domain/orderId';
import type { OrderDocument } from '../domain/order';
import { ACTIVE_STATES, IN_FLIGHT, notedWhy } from '../domain/orderState';
import { DEAD_LETTER_WITHOUT_ORDER_EVENT, type Logger } from '../log';
import type { OrderSagaDependencies } from '../services/dependencies';
import { recordSentConfirmation } from '../services/notices';
import { CHANGED, onOrderAsRead } from '../services/orderAsRead';
import type { MonitorClient } from '../services/ports';
import { republishMessageId, sendNumber } from '../services/publishing';
import { reconcileHolds } from '../services/stock';
import { deadLetterPath, ORDERS_TOPIC, SUBSCRIPTIONS, type ServiceName } from '../topology';

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
  /**
   * The body is the trigger's text, in which bytes that were not UTF-8 became U+FFFD: the bytes
   * themselves are lost, so it is not kept. The dead-letter sweep reads the message from its queue,
   * bytes and all, and keeps that.
   */
  bodyInexact?: boolean;
}

export type DeadLetterOutcome =
  /** The order now shows the service's message dead-lettered, and its monitor was woken. */
  | 'recorded'
  /** This message was already recorded (a repeat delivery from the dead-letter queue). */
  | 'duplicate'
  /** The service had already finished (done/compensated/failed), or the order, or a later send to it is in play: noted on the timeline only. */
  | 'noted'
  /** Not an order event, or its order does not exist: kept in the dead-letter archive and logged. */
  | 'unknown-order';

export interface DeadLetterRecord {
  outcome: DeadLetterOutcome;
  /**
   * The order whose readable event this is. Such a message may leave its dead-letter queue once
   * the order is completed or cancelled; poison (unreadable, or for no order) has none and stays.
   */
  orderId?: string;
}

/**
 * The number of a send of the order's event to `service` later than this message's (`sendNumber`)
 * that is still in play: made (or being made by a requeue), and not found dead-lettered itself.
 * Undefined when there is none, or when this message is not one of the sends. A later send
 * already dead-lettered does not count: an older message's delivery may have claimed the service
 * again after it (the status reads `processing` again), and once that older message dead-letters
 * too, nothing is left to move the service until the monitor finds it stuck.
 */
function laterSendInPlay(order: OrderDocument, service: ServiceName, messageId: string | undefined): number | undefined {
  const own = sendNumber(order, service, messageId);
  if (own === undefined) return undefined;
  const latest = targetedSends(order.timeline, service);
  // A requeue writes its `requeued` entry (marking a dead-lettered billing `pending` again), and a
  // stuck republish its `republishing` one, then sends, then records the send: until then its send
  // is in play, even when every send before it has dead-lettered (which is why billing was
  // requeued). The entry names the message; a `requeued` entry written before requeues named their
  // message names none.
  const making = sendInTheMaking(order.timeline, service);
  const makingId = republishedMessageId(making?.detail);
  if (making && makingId === undefined && latest + 1 > own) return latest + 1;
  // A named message never recorded sent, once a later send was recorded, may never have gone out:
  // it is not counted in play, or an older message's dead-letter would wait for it forever.
  const unrecorded = unrecordedSends(order.timeline, service);
  for (let n = latest; n > own; n--) {
    const id = republishMessageId(order, service, n);
    if (unrecorded.has(id) && id !== makingId) continue;
    if (!deadLetterOnOrder(order, service, id)) return n;
  }
  return undefined;
}

/** Whether the order already shows this message dead-lettered from `service`'s subscription, recorded or noted. */
function deadLetterOnOrder(order: OrderDocument, service: ServiceName, messageId: string | undefined): boolean {
  return order.timeline.some((e) => e.kind === TIMELINE.deadLettered && e.service === service && isDeadLetterOf(e.detail, messageId));
}

export async function recordDeadLetter(
  service: ServiceName,
  message: DeadLetteredMessage,
  env: { deps: OrderSagaDependencies; monitor: MonitorClient; log: Logger },
): Promise<DeadLetterRecord> {
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
  // Poison input: nothing to surface on an order. Alerted on once, when it is first kept.
  const alertWithoutOrder = () =>
    log.error(`${service}-${DEAD_LETTER_WITHOUT_ORDER_EVENT}`, new Error(parsed.ok ? 'order not found' : parsed.reason), {
      body: typeof message.body === 'string' ? message.body.slice(0, 2000) : message.body,
    });
  let parkedNow = false;
  if ((!order || !parsed.ok) && message.bodyInexact !== true) {
    // Kept where support reads it (the portal, the API), with why it could not be read.
    try {
      parkedNow = await deps.deadLetters.park({
        source: deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS[service]),
        messageId: message.messageId,
        deadLetterReason: message.deadLetterReason,
        deadLetterDescription: message.deadLetterDescription,
        correlationId: message.correlationId,
        orderId: named,
        problem: parsed.ok ? `order ${named} does not exist` : parsed.reason,
        kind: parsed.ok ? 'no-such-order' : 'unreadable',
        ...(named !== undefined && !order ? { orderMissing: true as const } : {}),
        body: message.body,
        parkedAt: deps.now(),
      });
    } catch (err) {
      // Sent, and no answer came: it may be kept already, and the next attempt, finding it kept,
      // would stay quiet. Alerted on now (a second time should it not have been kept after all).
      if (!order && writeOutcomeUnknown(err)) alertWithoutOrder();
      throw err;
    }
  }
  if (!order) {
    if (parkedNow) alertWithoutOrder();
    return { outcome: 'unknown-order' };
  }
  const belongs = parsed.ok ? { orderId: order.id } : {};

  const marker = deadLetterMarker(message.messageId);
  const broker = [message.deadLetterReason, message.deadLetterDescription].filter(Boolean).join(': ') || 'dead-lettered';
  // Why no delivery could go through, when it was the body (kept under the unreadable messages).
  const reason = parsed.ok ? broker : `${broker} (unreadable: ${parsed.reason})`;
  const entry = {
    at: deps.now(),
    kind: TIMELINE.deadLettered,
    service,
    ...(message.deliveryCount !== undefined ? { deliveryCount: message.deliveryCount } : {}),
    reason,
    detail: marker,
  };
  // A notification delivery may have sent the confirmation and died before recording it; the
  // redelivery that would have put it on the order never comes now. Nor may a send to the service
  // again: the monitor may compensate the order instead. Safe while another delivery may be about
  // to record it: its `done` patch leaves out a notice already on the order.
  if (service === 'notification' && !order.notified.confirmation && !deadLetterOnOrder(order, service, message.messageId)) {
    await recordSentConfirmation(order.id, deps);
  }
  // Recorded only onto the order as read (its timeline's length), as whether a later send is in
  // play is read from it: a requeue or a stuck republish names its message on the timeline before
  // sending it, and one named after the read would be on its way to a service marked dead-lettered.
  // The order read again decides anew.
  const decided = await onOrderAsRead(order, deps, `the dead-letter of ${marker} was not recorded`, undefined, async (read) => {
    if (deadLetterOnOrder(read, service, message.messageId)) return { kind: 'duplicate' } as const;
    const status = read.status[service];
    // An older send of the order's event to this service, found dead-lettered after the monitor sent
    // a newer one (the sweep records late): the newer message is in play, and marking the service
    // dead-lettered would have the monitor requeue or republish again for nothing, using up its bound.
    const later = parsed.ok ? laterSendInPlay(read, service, message.messageId) : undefined;
    // The monitor's republish to inventory or notification is claimed like any delivery, so their
    // status stays; only while the order is active, as for the deliveries.
    const records = IN_FLIGHT.includes(status) && later === undefined && (service === 'billing' || ACTIVE_STATES.includes(read.state));
    if (!records) return { kind: 'noted', read, status, later } as const;
    const updated = await deps.orders.transitionStatus(read.id, {
      service,
      from: [status],
      to: service === 'billing' ? 'deadlettered' : status,
      ...(service === 'billing' ? { reason } : { whenState: ACTIVE_STATES }),
      timeline: entry,
      whenTimelineLength: read.timeline.length,
    });
    return updated ? ({ kind: 'recorded', updated } as const) : CHANGED;
  });
  if (!decided) return { outcome: 'unknown-order' };
  if (decided.kind === 'duplicate') return { outcome: 'duplicate', ...belongs };
  if (decided.kind === 'noted') {
    const { read, status, later } = decided;
    // The service finished meanwhile (a requeue or a republish succeeded), or the order was
    // compensated, or a later send is in play: keep the record only.
    // A finished order's message that dead-lettered may be its completer's, which failed after
    // completing the order and before settling its stock (Cosmos DB throttling), or a late
    // delivery's that could not give back the hold it took: nothing else comes back for those.
    // So may an inventory message of an order still being compensated: a hold its last delivery
    // took after the run's release gave the stock back; the run does not release again, and once
    // the order is cancelled the sweep only takes the message out of the queue. (While inventory
    // is still in flight, the holds are left to the release still to come.)
    // Before the note: a noted message is a duplicate to every later sweep, so holds put right
    // after it would never be tried again if that failed (throttled as the completer was).
    const finished = read.state === 'completed' || read.state === 'cancelled';
    const holds = finished || service === 'inventory' ? await reconcileHolds(read, deps) : undefined;
    const why = later !== undefined && IN_FLIGHT.includes(status) ? notedWhy.inPlay(later, service) : notedWhy.finished(service, status, read.state);
    await deps.orders.appendTimeline(read.id, { ...entry, detail: notedDeadLetterDetail(message.messageId, why) });
    log.info(`${service}-deadletter-noted`, { status, state: read.state, ...(holds ? { holds } : {}) });
    return { outcome: 'noted', ...belongs };
  }
  const { updated } = decided;
  log.warn(`${service}-deadlettered`, { reason });
  await env.monitor.notifyOrderChanged(order.id, { source: 'deadletter', service, status: updated.status[service], reason });
  return { outcome: 'recorded', ...belongs };
}
