/**
 * What each Service Bus consumer does with one OrderCreated delivery. The triggers only adapt the
 * host's message to a `Delivery` and call `consumeDelivery`, which runs `consumeOrderCreated` and,
 * when the last delivery Service Bus allows fails, records the coming dead-letter.
 *
 * Per delivery: claim (`pending|processing -> processing`, conditional, with a timeline entry),
 * simulated work, then `processing -> done|failed` (conditional; the last `done` also completes the
 * order, see domain/orderState.ts). A duplicate or late delivery finds its status already moved
 * and changes nothing. A business failure (out of stock) is recorded as `failed`; a system failure
 * (and a simulated billing failure) is thrown so Service Bus redelivers and, after
 * maxDeliveryCount, dead-letters.
 */
import { randomUUID } from 'node:crypto';
import { isStoreUnavailable } from '../azure/cosmosErrors';
import { parseOrderCreatedEvent } from '../domain/orderCreatedEvent';
import type { NotificationKind, OrderDocument, ServiceStatus } from '../domain/order';
import { ACTIVE_STATES, ALL_DONE, billingMustFail, CLAIMABLE_FROM, isReadyToComplete, othersDone } from '../domain/orderState';
import { ensureError, PoisonMessageError, TransientError } from '../errors';
import type { Logger } from '../log';
import { recordDeadLetter } from '../support/deadLetters';
import { MAX_DELIVERY_COUNT, MAX_DELIVERY_COUNT_EXCEEDED, type ServiceName } from '../topology';
import { consumerOutageWaitMs, type OrderSagaDependencies } from './dependencies';
import { recordSentConfirmation, sendConfirmation } from './notices';
import { chargePayment } from './payment';
import type { MonitorClient, StatusTransition } from './ports';
import { reconcileHolds, reserveStock, settleStock } from './stock';

export interface Delivery {
  /** The message body as the host hands it over (object, string or bytes). */
  body: unknown;
  messageId?: string;
  /** 1 on the first delivery (the Functions host's numbering). */
  deliveryCount: number;
  /** `correlation_id` application property, when present (used for logs before parsing). */
  correlationId?: string;
  /** `order_id` application property, when present. */
  orderId?: string;
}

export type ConsumerOutcome =
  /** This delivery recorded success. */
  | 'done'
  /** This delivery recorded a business failure. */
  | 'failed'
  /** Status had already moved on (duplicate, late redelivery, compensated order): nothing done. */
  | 'duplicate'
  /** Another delivery or compensation overtook this one during the work; its effects were undone. */
  | 'superseded';

export interface ConsumerEnvironment {
  deps: OrderSagaDependencies;
  monitor: MonitorClient;
  log: Logger;
}

type WorkResult =
  | {
      status: Extract<ServiceStatus, 'done' | 'failed'>;
      reason?: string;
      detail?: string;
      charged?: number;
      /** A notice sent by this work, for the order's `notifications` (recorded with `done`). */
      notice?: { kind: NotificationKind; at: string };
      /** The deliveries whose stock holds this work relies on, per SKU (recorded with `done`). */
      heldBy?: Record<string, string>;
    }
  | { status: 'superseded' };

async function doWork(service: ServiceName, order: OrderDocument, deps: OrderSagaDependencies): Promise<WorkResult> {
  switch (service) {
    case 'inventory': {
      // Holds name the delivery that took them, so one that loses a race can tell its own apart.
      const reservation = await reserveStock(order, randomUUID(), deps);
      return reservation.ok ? { status: 'done', detail: 'stock reserved', heldBy: reservation.heldBy } : { status: 'failed', reason: reservation.reason };
    }
    case 'billing': {
      const attempt = order.billingAttempts;
      const faults = await deps.control.faults();
      if (billingMustFail(attempt, order, faults.billingFails)) {
        const reason = faults.billingFails
          ? 'payment gateway unavailable (billing fault switch on)'
          : `payment gateway unavailable (simulated failure ${attempt} of ${order.simulate?.billingFailures ?? 0})`;
        throw new TransientError(reason);
      }
      const charge = await chargePayment(order, deps);
      if (charge.voided) return { status: 'superseded' };
      return { status: 'done', detail: `charged ${charge.charged.toFixed(2)} ${order.currency} (attempt ${attempt})`, charged: charge.charged };
    }
    case 'notification': {
      const { at, voided } = await sendConfirmation(order, deps, { mirror: false });
      // Compensation began while this delivery worked, and took the confirmation's slot: nothing went out.
      if (voided) return { status: 'superseded' };
      return { status: 'done', detail: 'confirmation sent', notice: { kind: 'confirmation', at } };
    }
  }
}

/**
 * Whether the body may be text in which bytes that were not UTF-8 were replaced: the Service Bus
 * trigger hands such a body over as a string with U+FFFD in their place, as the extension binds it.
 */
function mayHaveLostBytes(body: unknown): boolean {
  if (typeof body === 'string') return body.includes('\ufffd');
  if (body === null || typeof body !== 'object' || Buffer.isBuffer(body) || body instanceof Uint8Array) return false;
  try {
    return JSON.stringify(body).includes('\ufffd');
  } catch {
    return false;
  }
}

/**
 * `consumeOrderCreated`. A delivery that failed because Cosmos DB did not serve it (throttled past
 * the SDK's retries, unavailable, no answer) waits before it fails (`consumerOutageWaitMs`), unless
 * it is the last. When the last delivery Service Bus allows fails, the dead-letter it then makes
 * is recorded at once (on the order, or in the dead-letter archive for poison), without
 * waiting for the dead-letter sweep to find the message. The sweep still finds it, and what it
 * finds without this (a host that died during that delivery, an expired message) it records itself.
 */
export async function consumeDelivery(service: ServiceName, delivery: Delivery, env: ConsumerEnvironment): Promise<ConsumerOutcome> {
  try {
    return await consumeOrderCreated(service, delivery, env);
  } catch (err) {
    const outageWaitMs = isStoreUnavailable(err) ? consumerOutageWaitMs(env.deps.settings, delivery.deliveryCount) : 0;
    if (outageWaitMs > 0) {
      // Service Bus would deliver it again at once: the redelivery comes after the wait instead,
      // and the throttled account gets a rest from this message meanwhile.
      env.log.warn(`${service}-store-unavailable-waiting`, { messageId: delivery.messageId, deliveryCount: delivery.deliveryCount, waitMs: outageWaitMs, error: ensureError(err).message });
      await env.deps.sleep(outageWaitMs);
    }
    if (delivery.deliveryCount >= MAX_DELIVERY_COUNT) {
      const message = {
        body: delivery.body,
        messageId: delivery.messageId,
        deliveryCount: delivery.deliveryCount,
        deadLetterReason: MAX_DELIVERY_COUNT_EXCEEDED,
        deadLetterDescription: ensureError(err).message,
        orderId: delivery.orderId,
        correlationId: delivery.correlationId,
        ...(mayHaveLostBytes(delivery.body) ? { bodyInexact: true } : {}),
      };
      await recordDeadLetter(service, message, env).catch((e) => env.log.warn(`${service}-deadletter-record-failed`, { messageId: delivery.messageId, error: ensureError(e).message }));
    }
    throw err;
  }
}

export async function consumeOrderCreated(service: ServiceName, delivery: Delivery, env: ConsumerEnvironment): Promise<ConsumerOutcome> {
  const { deps, monitor } = env;
  let log = env.log.with({
    service,
    messageId: delivery.messageId,
    deliveryCount: delivery.deliveryCount,
    ...(delivery.orderId ? { orderId: delivery.orderId } : {}),
    ...(delivery.correlationId ? { correlationId: delivery.correlationId } : {}),
  });

  const parsed = parseOrderCreatedEvent(delivery.body);
  if (!parsed.ok) {
    const final = delivery.deliveryCount >= MAX_DELIVERY_COUNT;
    log.error(final ? 'poison-message-dead-lettering' : 'poison-message', new PoisonMessageError(parsed.reason), { reason: parsed.reason });
    // Thrown on every delivery: Service Bus dead-letters it after maxDeliveryCount.
    throw new PoisonMessageError(`${parsed.reason} (message ${delivery.messageId ?? 'without id'})`);
  }
  const event = parsed.event;
  const orderId = event.data.orderId;
  log = log.with({ orderId, correlationId: event.data.correlationId, eventId: event.id });

  const now = deps.now();
  const claimed = await deps.orders.transitionStatus(orderId, {
    service,
    from: CLAIMABLE_FROM[service],
    to: 'processing',
    countBillingAttempt: service === 'billing',
    // An order being compensated, cancelled, completed or left for a person takes no new work;
    // an accepted one is now processing (same patch, so no extra write).
    whenState: ACTIVE_STATES,
    setState: 'processing',
    // The event evidently went out: the outbox marker rides on the claim.
    published: true,
    timeline: { at: now, kind: 'delivery', service, deliveryCount: delivery.deliveryCount },
  });
  if (!claimed) {
    const order = await deps.orders.get(orderId);
    if (!order) {
      // The event can only exist after its order was written; keep retrying, then dead-letter.
      log.warn('order-not-found');
      throw new TransientError(`order ${orderId} not found`);
    }
    log.info('delivery-ignored', { status: order.status[service] });
    // A delivery that recorded the last `done` and then died before completing the order comes
    // back here: finish its job (completing settles the holds; losing that race puts them right
    // from the order as it is then, so the order read here has nothing left to do).
    if (isReadyToComplete(order)) await markCompleted(orderId, { service }, deps, log);
    // So does one whose predecessor died after reserving stock that compensation or completion had
    // already dealt with (that hold goes back), or after completing the order but before settling
    // its stock (whichever service completed it: the holds are settled).
    else if (service === 'inventory' || order.state === 'completed') await reconcileHolds(order, deps);
    // A notification delivery that compensation overtook sent its confirmation, and then could not
    // record it on the order (Cosmos DB throttling, 429, or the host died): its redelivery does.
    // Also while the status still reads `processing` (compensation began, and has not sent its
    // notice yet): the delivery that sent it may be alive and about to record it with its `done`,
    // or may have died, and nothing but this redelivery comes back for it then. The two cannot
    // record it twice: the `done` patch leaves out a notice already on the order.
    if (service === 'notification' && !order.notified.confirmation) {
      await recordSentConfirmation(orderId, deps);
    }
    await deps.orders
      .appendTimeline(orderId, {
        at: now,
        kind: 'duplicate-ignored',
        service,
        deliveryCount: delivery.deliveryCount,
        detail: `status already ${order.status[service]}`,
      })
      .catch((err) => log.warn('timeline-append-failed', { error: ensureError(err).message }));
    return 'duplicate';
  }

  await deps.sleep(deps.settings.latencyMs[service]);

  let result: WorkResult;
  try {
    result = await doWork(service, claimed, deps);
  } catch (err) {
    const error = ensureError(err);
    log.warn('delivery-failed', { error: error.message, willDeadLetter: delivery.deliveryCount >= MAX_DELIVERY_COUNT });
    await deps.orders
      .appendTimeline(orderId, {
        at: deps.now(),
        kind: 'attempt-failed',
        service,
        deliveryCount: delivery.deliveryCount,
        reason: error.message,
        ...(service === 'billing' ? { detail: `attempt ${claimed.billingAttempts}` } : {}),
      })
      .catch((e) => log.warn('timeline-append-failed', { error: ensureError(e).message }));
    throw error;
  }

  if (result.status === 'superseded') {
    log.info('delivery-superseded');
    return 'superseded';
  }

  const recording: StatusTransition = {
    service,
    from: ['processing'],
    to: result.status,
    ...(result.reason !== undefined ? { reason: result.reason } : {}),
    // The charge's mirror on the order rides on the same patch as `done`.
    ...(result.charged !== undefined ? { payment: { charged: result.charged } } : {}),
    // So does the confirmation's: `processing -> done` happens once, so it is recorded once.
    ...(result.notice ? { notice: result.notice } : {}),
    ...(result.heldBy ? { stockHeldBy: result.heldBy } : {}),
    timeline: {
      at: deps.now(),
      kind: result.status,
      service,
      deliveryCount: delivery.deliveryCount,
      ...(result.reason !== undefined ? { reason: result.reason } : {}),
      ...(result.detail !== undefined ? { detail: result.detail } : {}),
    },
  };
  // When the claim already showed the other two services done, this `done` is the last one: the
  // same patch completes the order (one write instead of two). Its condition also requires them
  // still done and the order still active; if that no longer holds (compensation began), the
  // plain `done` below is recorded as it would have been without it.
  let completedByDone = false;
  let recorded: OrderDocument | undefined;
  if (result.status === 'done' && othersDone(claimed, service)) {
    recorded = await deps.orders.transitionStatus(orderId, { ...recording, completes: { at: deps.now(), kind: 'completed', service } });
    completedByDone = recorded !== undefined;
  }
  recorded ??= await deps.orders.transitionStatus(orderId, recording);
  if (!recorded) {
    // The status moved while we worked: a parallel duplicate finished first, or the order was
    // compensated. Stock this delivery reserved that the recorded outcome does not rely on (taken
    // after compensation released the order's holds, or after the order completed and settled
    // them) goes back.
    const current = await deps.orders.get(orderId);
    if (service === 'inventory' && current) await reconcileHolds(current, deps);
    // A notice this delivery sent is on the order all the same (once: the flag guards the append).
    if (result.notice) await deps.orders.recordNotification(orderId, result.notice.kind, result.notice.at);
    log.info('delivery-superseded', { status: current?.status[service] });
    return 'superseded';
  }
  log.info('delivery-recorded', { status: result.status, ...(result.reason ? { reason: result.reason } : {}) });
  // Out of stock: with `failed` recorded, no delivery can record `done` any more, so whatever
  // the order holds goes back (its own holds and any another delivery took).
  if (service === 'inventory' && result.status === 'failed') await reconcileHolds(recorded, deps);

  // The patch returns the order as it is now: only a writer that sees all three done needs to
  // try completing it. The last `done` writer always sees that, so one of them completes it.
  let completed = completedByDone;
  if (completedByDone) await settleCompleted(recorded, { service }, deps, log);
  else if (result.status === 'done' && isReadyToComplete(recorded)) completed = await markCompleted(orderId, { service }, deps, log);
  // The monitor is woken only when it has something to do: a business failure to compensate, or
  // an order to finish watching. A `done` with other services still working changes none of its
  // decisions; its next poll sees it (each nudge costs the monitor a replay and an order read).
  if (result.status === 'failed' || completed) {
    await monitor.notifyOrderChanged(orderId, {
      source: 'consumer',
      service,
      status: result.status,
      ...(completed ? { state: 'completed' as const } : {}),
      ...(result.reason ? { reason: result.reason } : {}),
    });
  }
  return result.status;
}

/**
 * Moves an order whose three services are done to `completed` (one conditional patch: the last
 * consumer and the monitor may both try; one wins) and settles its stock holds.
 * True when this call completed it.
 */
export async function markCompleted(
  orderId: string,
  by: { service: ServiceName } | { actor: string },
  deps: OrderSagaDependencies,
  log: Logger,
): Promise<boolean> {
  const completed = await deps.orders.transitionState(orderId, {
    from: ACTIVE_STATES,
    to: 'completed',
    when: ALL_DONE,
    timeline: { at: deps.now(), kind: 'completed', ...by },
  });
  if (!completed) {
    // Completed already: by a writer that settled its stock, or one that died before it did (an
    // activity retried after a crash comes back here). Settling again is a no-op.
    const current = await deps.orders.get(orderId);
    if (current?.state === 'completed') await reconcileHolds(current, deps);
    return false;
  }
  await settleCompleted(completed, by, deps, log);
  return true;
}

/** What follows an order's move to `completed`, whichever patch made it. */
async function settleCompleted(
  order: OrderDocument,
  by: { service: ServiceName } | { actor: string },
  deps: OrderSagaDependencies,
  log: Logger,
): Promise<void> {
  log.info('order-completed', by);
  await settleStock(order, deps);
}
