import { buildOrderCreatedEvent } from '../../src/domain/orderCreatedEvent';
import { newOrder } from '../../src/domain/orderState';
import { PoisonMessageError, TransientError } from '../../src/errors';
import { createLogger } from '../../src/log';
import { consumeDelivery, consumeOrderCreated, markCompleted, type Delivery } from '../../src/services/consumers';
import { beginCompensationRun } from '../../src/services/compensationOutcome';
import { sendCancellation, voidUnsentConfirmation } from '../../src/services/notices';
import { orderSupportView } from '../../src/services/queries';
import { recordDeadLetter } from '../../src/support/deadLetters';
import { monitorSnapshotOf } from '../../src/domain/monitorPolicy';
import { chargePayment, refundPayment } from '../../src/services/payment';
import { releaseStock } from '../../src/services/stock';
import { planCompensation } from '../../src/domain/saga';
import type { ServiceName } from '../../src/topology';
import { memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const log = createLogger(quiet);

let deps: MemoryDependencies;
let monitor: RecordingMonitor;
let seq = 0;

beforeEach(() => {
  deps = memoryDependencies();
  monitor = new RecordingMonitor();
});

async function placeOrder(items: { sku: string; quantity: number; unitPrice: number }[], simulate?: { billingFailures: number }) {
  const id = `00000000-0000-4000-8000-${String(++seq).padStart(12, '0')}`;
  const total = items.reduce((t, i) => t + i.quantity * i.unitPrice * 100, 0) / 100;
  const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `corr-${id}`, customerId: 'c-1', items, total, now: deps.now(), ...(simulate ? { simulate } : {}) });
  await deps.orders.create({ ...order, published: true });
  return order;
}

function deliver(service: ServiceName, order: ReturnType<typeof newOrder>, deliveryCount = 1, body: unknown = buildOrderCreatedEvent(order)) {
  const delivery: Delivery = { body, messageId: `${order.eventId}`, deliveryCount };
  return consumeOrderCreated(service, delivery, { deps, monitor, log });
}

const mouse = { sku: 'MOUSE-01', quantity: 2, unitPrice: 24.5 };

/** A SKU's stock and its holds, compared whole (toMatchObject would accept any holds for `{}`). */
async function stockOf(sku: string) {
  const { available, reserved, holds } = (await deps.inventory.get(sku))!;
  return { available, reserved, holds };
}

describe('consumeDelivery: the last delivery that fails', () => {
  const attempt = (service: ServiceName, order: ReturnType<typeof newOrder>, deliveryCount: number, body: unknown = buildOrderCreatedEvent(order)) =>
    consumeDelivery(service, { body, messageId: order.eventId, deliveryCount }, { deps, monitor, log });

  it('records the dead-letter Service Bus makes of it at once, with the last error, and still throws', async () => {
    const order = await placeOrder([mouse], { billingFailures: 3 });
    for (const n of [1, 2]) await expect(attempt('billing', order, n)).rejects.toThrow(TransientError);
    // Not before the last delivery: Service Bus will deliver it again.
    expect((await deps.orders.get(order.id))!.status.billing).toBe('processing');
    expect(monitor.changes.filter((c) => c.change.source === 'deadletter')).toHaveLength(0);

    await expect(attempt('billing', order, 3)).rejects.toThrow('simulated failure 3 of 3');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.status.billing).toBe('deadlettered');
    expect(stored.statusReason.billing).toBe('MaxDeliveryCountExceeded: payment gateway unavailable (simulated failure 3 of 3)');
    expect(stored.timeline.filter((e) => e.kind === 'deadlettered')).toEqual([expect.objectContaining({ service: 'billing', deliveryCount: 3, detail: `message ${order.eventId}` })]);
    expect(monitor.changes.filter((c) => c.change.source === 'deadletter')).toHaveLength(1);
    // The sweep that later finds the message in the dead-letter queue records nothing new.
    const found = { body: buildOrderCreatedEvent(order), messageId: order.eventId, deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' };
    expect(await recordDeadLetter('billing', found, { deps, monitor, log })).toEqual({ outcome: 'duplicate', orderId: order.id });
  });

  it('keeps poison in the dead-letter archive on its last delivery', async () => {
    const order = await placeOrder([mouse]);
    await expect(attempt('notification', order, 3, '{"cut":')).rejects.toThrow(PoisonMessageError);
    expect([...deps.deadLetters.parked.values()]).toEqual([
      expect.objectContaining({ source: 'orders/Subscriptions/notification-sub/$DeadLetterQueue', messageId: order.eventId, problem: 'body is not JSON', deadLetterReason: 'MaxDeliveryCountExceeded' }),
    ]);
  });

  it('leaves a body whose bytes were not UTF-8 to the sweep, which keeps the bytes, and still puts it on its order', async () => {
    // The trigger hands such a body over as text with U+FFFD for the bad bytes: kept, the bytes
    // support would need to find the sender would be gone for good.
    const order = await placeOrder([mouse]);
    const bytes = Buffer.concat([Buffer.from('{"specversion":"1.0","id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"')]);
    const delivery: Delivery = { body: bytes.toString('utf8'), messageId: 'm-bytes', deliveryCount: 3, orderId: order.id };
    await expect(consumeDelivery('notification', delivery, { deps, monitor, log })).rejects.toThrow(PoisonMessageError);
    expect(deps.deadLetters.parked.size).toBe(0);
    expect((await deps.orders.get(order.id))!.timeline.filter((e) => e.kind === 'deadlettered')).toEqual([expect.objectContaining({ service: 'notification', detail: 'message m-bytes' })]);

    // The sweep reads the message from its dead-letter queue, bytes and all.
    const found = { body: bytes, messageId: 'm-bytes', deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded', orderId: order.id };
    expect(await recordDeadLetter('notification', found, { deps, monitor, log })).toEqual({ outcome: 'duplicate' });
    const kept = [...deps.deadLetters.parked.values()];
    expect(kept).toHaveLength(1);
    expect(Buffer.from(kept[0]!.body as Uint8Array).equals(bytes)).toBe(true);
  });

  it('a failure to record leaves the error of the delivery, which is what decides the dead-letter', async () => {
    const warnings: string[] = [];
    const watched = createLogger({ info: () => undefined, warn: (line: unknown) => warnings.push(String(line)), error: () => undefined });
    deps.deadLetters.park = async () => {
      throw new Error('archive down');
    };
    await expect(consumeDelivery('billing', { body: '{"cut":', messageId: 'm-1', deliveryCount: 3 }, { deps, monitor, log: watched })).rejects.toThrow(PoisonMessageError);
    expect(warnings.join()).toContain('billing-deadletter-record-failed');
  });
});

describe('consumeDelivery: Cosmos DB that does not serve it', () => {
  /** What @azure/cosmos throws once its own retries of a 429 are used up. */
  const throttled = () => Object.assign(new Error('Request rate is large'), { code: 429, retryAfterInMs: 50 });

  async function waitsOf(order: ReturnType<typeof newOrder>, deliveryCount: number, settings: { consumerOutageWaitMs?: number } = {}) {
    const waits: number[] = [];
    deps.sleep = async (ms) => {
      waits.push(ms);
    };
    Object.assign(deps.settings, settings);
    const delivery = { body: buildOrderCreatedEvent(order), messageId: order.eventId, deliveryCount };
    const error = await consumeDelivery('inventory', delivery, { deps, monitor, log }).catch((e: unknown) => e);
    return { waits, error };
  }

  it('waits before failing, so Service Bus redelivers later rather than at once: 10 s, then 20 s, none on the last delivery', async () => {
    const order = await placeOrder([mouse]);
    deps.orders.failWith = throttled();
    expect(await waitsOf(order, 1)).toEqual({ waits: [10_000], error: deps.orders.failWith });
    expect((await waitsOf(order, 2)).waits).toEqual([20_000]);
    // The last delivery is dead-lettered whether it waits or not; its dead-letter is recorded at once.
    expect((await waitsOf(order, 3)).waits).toEqual([]);
    // A connection that was refused or reset, and a 503, are waited out too.
    deps.orders.failWith = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8081'), { code: 'ECONNREFUSED' });
    expect((await waitsOf(order, 1, { consumerOutageWaitMs: 3_000 })).waits).toEqual([3_000]);
    deps.orders.failWith = Object.assign(new Error('Service Unavailable'), { code: 503 });
    expect((await waitsOf(order, 2, { consumerOutageWaitMs: 3_000 })).waits).toEqual([6_000]);
  });

  it('fails at once when the failure is not the store: a simulated billing failure, an order that is not there, poison', async () => {
    const order = await placeOrder([mouse], { billingFailures: 1 });
    const waits: number[] = [];
    deps.sleep = async (ms) => {
      // The simulated work's own sleep is 0 here.
      if (ms > 0) waits.push(ms);
    };
    const env = { deps, monitor, log };
    await expect(consumeDelivery('billing', { body: buildOrderCreatedEvent(order), messageId: order.eventId, deliveryCount: 1 }, env)).rejects.toThrow(TransientError);
    const missing = { ...order, id: '00000000-0000-4000-8000-999999999999' };
    await expect(consumeDelivery('inventory', { body: buildOrderCreatedEvent(missing), messageId: 'm-missing', deliveryCount: 1 }, env)).rejects.toThrow('not found');
    await expect(consumeDelivery('inventory', { body: '{"cut":', messageId: 'm-poison', deliveryCount: 1 }, env)).rejects.toThrow(PoisonMessageError);
    // A conflict or a refused condition is an answer about the request, not an outage.
    deps.orders.failWith = Object.assign(new Error('Conflict'), { code: 409 });
    await expect(consumeDelivery('inventory', { body: buildOrderCreatedEvent(order), messageId: order.eventId, deliveryCount: 1 }, env)).rejects.toThrow('Conflict');
    expect(waits).toEqual([]);
  });
});

describe('consumeOrderCreated', () => {
  it('completes the order when the last of the three services is done, whatever the order of arrival', async () => {
    const order = await placeOrder([mouse]);
    expect(await deliver('notification', order)).toBe('done');
    expect((await deps.orders.get(order.id))!.state).toBe('processing');
    expect(await deliver('billing', order)).toBe('done');
    expect((await deps.orders.get(order.id))!.state).toBe('processing');
    expect(await deliver('inventory', order)).toBe('done');

    const stored = (await deps.orders.get(order.id))!;
    expect(stored.state).toBe('completed');
    expect(stored.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
    expect(stored.payment).toEqual({ charged: 49, refunded: 0 });
    expect(stored.notifications.map((n) => n.kind)).toEqual(['confirmation']);
    // Sold for good: the stock stays reserved, the per-order hold is gone (documents stay small).
    expect(await stockOf('MOUSE-01')).toEqual({ available: 998, reserved: 2, holds: {} });
    expect(stored.timeline.filter((t) => t.kind === 'delivery').map((t) => [t.service, t.deliveryCount])).toEqual([
      ['notification', 1],
      ['billing', 1],
      ['inventory', 1],
    ]);
    // The monitor is woken once, by the delivery that completed the order, and told so.
    expect(monitor.changes.map((c) => c.change)).toEqual([{ source: 'consumer', service: 'inventory', status: 'done', state: 'completed' }]);
  });

  it('records on its claim that the event was published (the outbox marker costs no write of its own)', async () => {
    const id = '00000000-0000-4000-8000-00000000ffff';
    const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `corr-${id}`, customerId: 'c-1', items: [mouse], total: 49, now: deps.now() });
    await deps.orders.create(order); // as the intake writes it
    expect((await deps.orders.get(id))!.published).toBe(false);
    expect(await deliver('billing', order)).toBe('done');
    expect((await deps.orders.get(id))!.published).toBe(true);
  });

  it('records the confirmation on the order in the same patch as the notification `done`', async () => {
    const order = await placeOrder([mouse]);
    const before = deps.orders.transitions;
    const record = jest.spyOn(deps.orders, 'recordNotification');
    expect(await deliver('notification', order)).toBe('done');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.notifications).toEqual([{ kind: 'confirmation', at: expect.any(String) }]);
    expect(stored.notified.confirmation).toBe(true);
    expect(deps.orders.transitions - before).toBe(2); // the claim and the `done`, nothing else
    expect(record).not.toHaveBeenCalled();
    // A redelivery changes nothing.
    expect(await deliver('notification', order, 2)).toBe('duplicate');
    expect((await deps.orders.get(order.id))!.notifications).toHaveLength(1);
  });

  /** Compensation as a run carries it out: the order compensating, then the cancellation notice from the order as read then. */
  async function compensate(order: ReturnType<typeof newOrder>) {
    await deps.orders.transitionState(order.id, { from: ['accepted', 'processing'], to: 'compensating' });
    await sendCancellation((await deps.orders.get(order.id))!, deps);
  }

  /** The confirmation goes out, then compensation runs before the delivery records its `done`. */
  function compensateOnceConfirmed(order: ReturnType<typeof newOrder>) {
    const send = deps.notifications.send.bind(deps.notifications);
    deps.notifications.send = async (record) => {
      const sent = await send(record);
      if (record.kind === 'confirmation' && !record.voided) await compensate(order);
      return sent;
    };
  }

  it('sends no confirmation from a delivery that compensation overtook before it sent one: the cancellation is the only notice', async () => {
    const order = await placeOrder([mouse]);
    // Compensation runs while the notification delivery sleeps in its simulated work.
    deps.sleep = async () => compensate(order);
    expect(await deliver('notification', order)).toBe('superseded');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.status.notification).toBe('compensated');
    expect(stored.notifications.map((n) => n.kind)).toEqual(['cancellation']);
    expect((await deps.notifications.list(order.id)).map((n) => [n.kind, n.voided === true])).toEqual([
      ['confirmation', true],
      ['cancellation', false],
    ]);
    deps.sleep = async () => undefined;
    expect(await deliver('notification', order, 2)).toBe('duplicate');
    expect((await deps.orders.get(order.id))!.notifications.map((n) => n.kind)).toEqual(['cancellation']);
  });

  it('sends no confirmation once a compensation run began, before its cancellation notice goes out', async () => {
    const order = await placeOrder([mouse]);
    // The run's first step takes the slot; its notice comes after the refund and the stock.
    deps.sleep = async () => {
      await deps.orders.transitionState(order.id, { from: ['accepted', 'processing'], to: 'compensating' });
      expect(await voidUnsentConfirmation((await deps.orders.get(order.id))!, deps)).toEqual({ voided: true });
    };
    expect(await deliver('notification', order)).toBe('superseded');
    expect((await deps.orders.get(order.id))!.status.notification).toBe('processing');
    await sendCancellation((await deps.orders.get(order.id))!, deps);
    expect((await deps.orders.get(order.id))!.notifications.map((n) => n.kind)).toEqual(['cancellation']);
  });

  it('sends no confirmation once the monitor has begun compensation, before the run takes its first step', async () => {
    const order = await placeOrder([mouse]);
    // The monitor's begin moves the order to `compensating` while the delivery sleeps; the run's
    // own steps come later (the engine starts the sub-orchestration, then its first activity).
    deps.sleep = async () => {
      expect(await beginCompensationRun((await deps.orders.get(order.id))!, { reason: 'inventory failed: out of stock', step: 's-1' }, deps, log)).toEqual({ run: 1, attempt: 1 });
    };
    expect(await deliver('notification', order)).toBe('superseded');
    expect((await deps.notifications.list(order.id)).map((n) => [n.kind, n.voided === true])).toEqual([['confirmation', true]]);
    deps.sleep = async () => undefined;
    await sendCancellation((await deps.orders.get(order.id))!, deps);
    expect((await deps.orders.get(order.id))!.notifications.map((n) => n.kind)).toEqual(['cancellation']);
  });

  it('leaves the confirmation of an order still active, or completed, as it is', async () => {
    const active = await placeOrder([mouse]);
    expect(await voidUnsentConfirmation((await deps.orders.get(active.id))!, deps)).toEqual({ voided: false });
    expect(await deliver('notification', active)).toBe('done');
    expect((await deps.orders.get(active.id))!.notifications.map((n) => n.kind)).toEqual(['confirmation']);
  });

  it('still records a confirmation sent by a delivery that compensation overtook after it sent it, once', async () => {
    const order = await placeOrder([mouse]);
    compensateOnceConfirmed(order);
    expect(await deliver('notification', order)).toBe('superseded');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.status.notification).toBe('compensated');
    // The confirmation did go out (the sender's record says so): the order shows it, next to the cancellation.
    expect(stored.notifications.map((n) => n.kind).sort()).toEqual(['cancellation', 'confirmation']);
    expect(await deliver('notification', order, 2)).toBe('duplicate');
    expect((await deps.orders.get(order.id))!.notifications).toHaveLength(2);
  });

  it('records a confirmation sent by an overtaken delivery whose record of it failed (Cosmos DB throttling), on the redelivery', async () => {
    const order = await placeOrder([mouse]);
    compensateOnceConfirmed(order);
    const recordNotification = deps.orders.recordNotification.bind(deps.orders);
    deps.orders.recordNotification = async (id, kind, at) => {
      if (kind === 'confirmation') throw Object.assign(new Error('Request rate is large'), { code: 429 });
      return recordNotification(id, kind, at);
    };
    await expect(deliver('notification', order)).rejects.toThrow('Request rate is large');
    deps.orders.recordNotification = recordNotification;
    // Service Bus delivers it again: the status moved on, but the confirmation went out.
    expect(await deliver('notification', order, 2)).toBe('duplicate');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.notifications.map((n) => n.kind).sort()).toEqual(['cancellation', 'confirmation']);
    expect(await deliver('notification', order, 3)).toBe('duplicate');
    expect((await deps.orders.get(order.id))!.notifications).toHaveLength(2);
  });

  it('records a confirmation whose sender died before recording it, on a redelivery that comes while compensation runs', async () => {
    const order = await placeOrder([mouse]);
    // Delivery 1 sends the confirmation, and the host dies before its `done` patch.
    const transition = deps.orders.transitionStatus.bind(deps.orders);
    jest.spyOn(deps.orders, 'transitionStatus').mockImplementation(async (id, change) => {
      if (change.service === 'notification' && change.to === 'done') throw new Error('host killed');
      return transition(id, change);
    });
    await expect(deliver('notification', order)).rejects.toThrow('host killed');
    jest.restoreAllMocks();
    // Compensation begins (a person asked) before Service Bus delivers the message again, and the
    // cancellation notice has not gone out yet: the status still reads `processing`.
    await deps.orders.transitionState(order.id, { from: ['accepted', 'processing'], to: 'compensating' });
    expect(await deliver('notification', order, 2)).toBe('duplicate');
    // That redelivery settles the message: nothing else comes back for the confirmation.
    await sendCancellation((await deps.orders.get(order.id))!, deps);
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.notifications.map((n) => n.kind).sort()).toEqual(['cancellation', 'confirmation']);
  });

  it('records one confirmation when a duplicate arrives while compensation runs and the delivery that sent it is still recording it', async () => {
    const order = await placeOrder([mouse]);
    // Delivery 1 has sent the confirmation and is about to record `done` (a throttled patch, say).
    let release!: () => void;
    const sentAndWaiting = new Promise<void>((resolve) => {
      const send = deps.notifications.send.bind(deps.notifications);
      deps.notifications.send = async (record) => {
        const sent = await send(record);
        resolve();
        await new Promise<void>((r) => (release = r));
        return sent;
      };
    });
    const first = deliver('notification', order);
    await sentAndWaiting;
    // Compensation begins (stock ran out), and a duplicate of the event comes in meanwhile.
    await deps.orders.transitionState(order.id, { from: ['accepted', 'processing'], to: 'compensating' });
    expect(await deliver('notification', order, 2)).toBe('duplicate');
    release();
    await first;
    const confirmations = (await deps.orders.get(order.id))!.notifications.filter((n) => n.kind === 'confirmation');
    expect(confirmations).toHaveLength(1);
  });

  it('treats a redelivery after success as a no-op: one charge, one confirmation, one reservation', async () => {
    const order = await placeOrder([mouse]);
    for (const service of ['inventory', 'billing', 'notification'] as const) {
      expect(await deliver(service, order, 1)).toBe('done');
      expect(await deliver(service, order, 2)).toBe('duplicate');
    }
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.state).toBe('completed');
    expect((await deps.payments.entries(order.id)).filter((e) => e.kind === 'charge')).toHaveLength(1);
    expect(await deps.notifications.list(order.id)).toHaveLength(1);
    expect(stored.notifications).toHaveLength(1);
    expect((await deps.inventory.get('MOUSE-01'))!.available).toBe(998);
    expect(stored.timeline.filter((t) => t.kind === 'duplicate-ignored')).toHaveLength(3);
  });

  it('records out of stock as a business failure with a reason, reserving nothing of a multi-item order', async () => {
    const order = await placeOrder([mouse, { sku: 'LIMITED-EDITION', quantity: 4, unitPrice: 19.99 }]);
    expect(await deliver('inventory', order)).toBe('failed');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.status.inventory).toBe('failed');
    expect(stored.statusReason.inventory).toContain('out of stock: LIMITED-EDITION');
    expect((await deps.inventory.get('MOUSE-01'))!).toMatchObject({ available: 1000, reserved: 0 });
    expect((await deps.inventory.get('LIMITED-EDITION'))!).toMatchObject({ available: 3, reserved: 0 });
    expect(monitor.changes.at(-1)!.change).toMatchObject({ service: 'inventory', status: 'failed' });
  });

  it('a reason lasts as long as the status it explains: gone once a dead-lettered billing is done, kept by a failed service through compensation', async () => {
    const order = await placeOrder([mouse, { sku: 'LIMITED-EDITION', quantity: 4, unitPrice: 19.99 }], { billingFailures: 3 });
    for (let attempt = 1; attempt <= 3; attempt++) await expect(deliver('billing', order, attempt)).rejects.toThrow(TransientError);
    const deadLetter = { body: buildOrderCreatedEvent(order), messageId: order.eventId, deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' };
    expect((await recordDeadLetter('billing', deadLetter, { deps, monitor, log })).outcome).toBe('recorded');
    expect((await deps.orders.get(order.id))!.statusReason.billing).toBe('MaxDeliveryCountExceeded');
    // The requeued message's delivery claims from `deadlettered` and records `done`.
    expect(await deliver('billing', order)).toBe('done');
    expect(await deliver('inventory', order)).toBe('failed');
    await releaseStock((await deps.orders.get(order.id))!, deps);

    const stored = (await deps.orders.get(order.id))!;
    // Compensation gives back what the failing delivery may have left held, and `failed` stays what support reads.
    expect(stored.status).toMatchObject({ billing: 'done', inventory: 'failed' });
    expect(stored.statusReason.billing).toBeNull();
    const view = orderSupportView(stored, null);
    expect(view.statusReason).toEqual({ inventory: expect.stringContaining('out of stock: LIMITED-EDITION') });
    expect(monitorSnapshotOf(stored).statusReason).toEqual(view.statusReason);
  });

  it('throws for the first N billing attempts of simulate.billingFailures, counting across deliveries, then charges once', async () => {
    const order = await placeOrder([mouse], { billingFailures: 2 });
    await expect(deliver('billing', order, 1)).rejects.toBeInstanceOf(TransientError);
    await expect(deliver('billing', order, 2)).rejects.toBeInstanceOf(TransientError);
    expect(await deps.payments.entries(order.id)).toHaveLength(0);
    expect(await deliver('billing', order, 3)).toBe('done');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.billingAttempts).toBe(3);
    expect(stored.payment.charged).toBe(49);
    expect(stored.timeline.filter((t) => t.kind === 'attempt-failed').map((t) => t.deliveryCount)).toEqual([1, 2]);
  });

  it('keeps failing while the global billing-fault switch is on', async () => {
    const order = await placeOrder([mouse]);
    await deps.control.setFaults({ billingFails: true });
    await expect(deliver('billing', order, 1)).rejects.toThrow(/fault switch/);
    await deps.control.setFaults({ billingFails: false });
    expect(await deliver('billing', order, 2)).toBe('done');
  });

  it('throws a poison error for a malformed message so it is dead-lettered, without touching any order', async () => {
    const order = await placeOrder([mouse]);
    await expect(deliver('inventory', order, 3, '{"specversion":"1.0"')).rejects.toBeInstanceOf(PoisonMessageError);
    await expect(deliver('billing', order, 1, { ...buildOrderCreatedEvent(order), type: 'Unknown' })).rejects.toBeInstanceOf(PoisonMessageError);
    expect((await deps.orders.get(order.id))!.status).toEqual({ inventory: 'pending', billing: 'pending', notification: 'pending' });
  });

  it('retries (throws) when the event names an order that is not there', async () => {
    const order = newOrder({ id: 'ffffffff-0000-4000-8000-000000000000', eventId: 'e', correlationId: 'c', customerId: 'c', items: [{ ...mouse }], total: 49, now: deps.now() });
    await expect(deliver('inventory', order)).rejects.toBeInstanceOf(TransientError);
  });

  it('does nothing for a late delivery to a compensated order, and never charges it', async () => {
    const order = await placeOrder([mouse]);
    await refundPayment(order, deps);
    await releaseStock(order, deps);
    await sendCancellation(order, deps);
    for (const service of ['inventory', 'billing', 'notification'] as const) expect(await deliver(service, order)).toBe('duplicate');
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.payment).toEqual({ charged: 0, refunded: 0 });
    expect(stored.notifications.map((n) => n.kind)).toEqual(['cancellation']);
    expect((await deps.inventory.get('MOUSE-01'))!.available).toBe(1000);
  });

  it('gives back stock reserved by a delivery that was overtaken by compensation', async () => {
    const order = await placeOrder([mouse]);
    // Compensation runs while the inventory delivery sleeps in its simulated work.
    deps.sleep = async () => {
      await releaseStock(order, deps);
    };
    expect(await deliver('inventory', order)).toBe('superseded');
    expect((await deps.inventory.get('MOUSE-01'))!).toMatchObject({ available: 1000, reserved: 0 });
    expect((await deps.orders.get(order.id))!.status.inventory).toBe('compensated');
  });
});

describe('compensation operations', () => {
  it('refunds exactly what was charged, once, and keeps money conserved', async () => {
    const order = await placeOrder([mouse]);
    await deliver('billing', order);
    expect((await refundPayment(order, deps)).refunded).toBe(49);
    expect((await refundPayment(order, deps)).refunded).toBe(49);
    const entries = await deps.payments.entries(order.id);
    const net = entries.reduce((sum, e) => sum + (e.kind === 'charge' ? e.amount : -e.amount), 0);
    expect(net).toBe(0);
    expect(entries.filter((e) => e.kind === 'refund')).toHaveLength(1);
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.payment).toEqual({ charged: 49, refunded: 49 });
    expect(stored.status.billing).toBe('compensated');
  });

  it('a refund the gateway refuses leaves the charge on the order, and the cancellation notice says a refund is coming', async () => {
    const order = await placeOrder([mouse]);
    // A billing delivery charged, then died before recording `done`; compensation began meanwhile,
    // so its redelivery is not claimed and nothing else puts the charge on the order.
    await deps.orders.transitionStatus(order.id, { service: 'billing', from: ['pending'], to: 'processing' });
    await chargePayment(order, deps);
    deps.orders.docs.get(order.id)!.state = 'compensating';
    const refused = async () => {
      throw new TransientError('payment gateway rejected the refund');
    };
    await expect(refundPayment(order, deps, 'monitor', refused)).rejects.toThrow('rejected the refund');
    const stored = (await deps.orders.get(order.id))!;
    // What support reads: a charge still to refund, not "charged 0".
    expect(stored.payment).toEqual({ charged: 49, refunded: 0 });
    await sendCancellation(stored, deps, 'monitor', 'inventory failed: out of stock: MOUSE-01 (requested 2)');
    const notice = (await deps.notifications.list(order.id)).find((n) => n.kind === 'cancellation');
    // Not "You have not been charged.": the customer was.
    expect(notice?.message).toContain('A refund of 49.00 EUR is on its way');
  });

  it('releases stock once and sends one cancellation notice however often it is asked', async () => {
    const order = await placeOrder([mouse]);
    await deliver('inventory', order);
    expect(await releaseStock(order, deps)).toEqual({ compensated: true, itemsReleased: 1 });
    expect(await releaseStock(order, deps)).toEqual({ compensated: false, itemsReleased: 0 });
    expect((await deps.inventory.get('MOUSE-01'))!).toMatchObject({ available: 1000, reserved: 0 });
    expect((await sendCancellation(order, deps)).sent).toBe(true);
    expect((await sendCancellation(order, deps)).sent).toBe(false);
    expect((await deps.orders.get(order.id))!.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
  });

  it('a release whose first run died after marking inventory compensated still gives the holds back', async () => {
    const order = await placeOrder([mouse]);
    await deliver('inventory', order);
    // The first run: the status patch went through, then the host died before the holds were returned.
    const release = deps.inventory.release.bind(deps.inventory);
    deps.inventory.release = async () => {
      throw new Error('host killed');
    };
    await expect(releaseStock(order, deps)).rejects.toThrow('host killed');
    deps.inventory.release = release;
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.status.inventory).toBe('compensated');
    expect((await deps.inventory.get('MOUSE-01'))!).toMatchObject({ reserved: mouse.quantity });
    // The next run plans the release again and returns the hold; the status is left as it is.
    expect(planCompensation(stored).map((s) => s.name)).toContain('releaseStock');
    expect(await releaseStock(stored, deps)).toEqual({ compensated: false, itemsReleased: 1 });
    expect((await deps.inventory.get('MOUSE-01'))!).toMatchObject({ available: 1000, reserved: 0 });
    expect((await deps.orders.get(order.id))!.timeline.filter((e) => e.kind === 'compensation').map((e) => e.detail)).toEqual([
      'stock released',
      'stock released: 1 hold still held, given back',
    ]);
  });

  it('an out-of-stock order keeps inventory failed when compensation gives back what a dying delivery left held', async () => {
    const order = await placeOrder([mouse]);
    await deliver('inventory', order);
    await deps.orders.transitionStatus(order.id, { service: 'inventory', from: ['done'], to: 'failed' });
    const stored = (await deps.orders.get(order.id))!;
    expect(planCompensation(stored).map((s) => s.name)).toContain('releaseStock');
    expect(await releaseStock(stored, deps)).toEqual({ compensated: false, itemsReleased: 1 });
    expect((await deps.orders.get(order.id))!.status.inventory).toBe('failed');
    expect((await deps.inventory.get('MOUSE-01'))!).toMatchObject({ available: 1000, reserved: 0 });
  });
});

describe('claims on orders that are no longer active', () => {
  it.each(['compensating', 'attention', 'cancelled'] as const)('ignores a billing delivery while the order is %s, charging nothing', async (state) => {
    const order = await placeOrder([mouse]);
    deps.orders.docs.get(order.id)!.state = state;
    expect(await deliver('billing', order)).toBe('duplicate');
    expect(await deps.payments.entries(order.id)).toHaveLength(0);
    expect((await deps.orders.get(order.id))!.status.billing).toBe('pending');
  });
});

describe('a delivery that died after its done-patch', () => {
  it('completes the order when the message comes back', async () => {
    const order = await placeOrder([mouse]);
    await deliver('inventory', order);
    await deliver('notification', order);
    // Billing recorded done, then the host died before the completion patch.
    await deps.orders.transitionStatus(order.id, { service: 'billing', from: ['pending'], to: 'done' });
    expect((await deps.orders.get(order.id))!.state).toBe('processing');
    expect(await deliver('billing', order, 2)).toBe('duplicate');
    expect((await deps.orders.get(order.id))!.state).toBe('completed');
  });

  it('an inventory redelivery that completes the order settles its stock without reading its holds again', async () => {
    const order = await placeOrder([mouse]);
    await deliver('billing', order);
    await deliver('notification', order);
    // Inventory reserved and recorded done (with its hold), then the host died before completing.
    const claimed = (await deps.orders.transitionStatus(order.id, { service: 'inventory', from: ['pending'], to: 'processing' }))!;
    await deps.inventory.reserve(mouse.sku, order.id, mouse.quantity, 'first');
    await deps.orders.transitionStatus(claimed.id, { service: 'inventory', from: ['processing'], to: 'done', stockHeldBy: { [mouse.sku]: 'first' } });
    const holdReads = jest.spyOn(deps.inventory, 'hold');

    expect(await deliver('inventory', order, 2)).toBe('duplicate');
    expect((await deps.orders.get(order.id))!.state).toBe('completed');
    expect(await stockOf(mouse.sku)).toEqual({ available: 998, reserved: 2, holds: {} });
    // Completing settled the hold; the order read before completing has nothing more to put right.
    expect(holdReads).toHaveBeenCalledTimes(0);
  });
});

describe('the last `done`', () => {
  it('completes the order in its own patch when the claim already showed the other two done', async () => {
    const order = await placeOrder([mouse]);
    await deliver('inventory', order);
    await deliver('billing', order);
    const before = deps.orders.transitions;
    expect(await deliver('notification', order)).toBe('done');

    // The claim and the completing `done`: two round trips to the order, not three.
    expect(deps.orders.transitions - before).toBe(2);
    const stored = (await deps.orders.get(order.id))!;
    expect(stored.state).toBe('completed');
    expect(stored.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
    expect(stored.notifications.map((n) => n.kind)).toEqual(['confirmation']);
    expect(stored.timeline.slice(-2).map((t) => [t.kind, t.service])).toEqual([
      ['done', 'notification'],
      ['completed', 'notification'],
    ]);
    expect(await stockOf('MOUSE-01')).toEqual({ available: 998, reserved: 2, holds: {} });
    expect(monitor.changes.map((c) => c.change)).toEqual([{ source: 'consumer', service: 'notification', status: 'done', state: 'completed' }]);
  });

  it('records a plain `done` when compensation began between its claim and its `done`', async () => {
    const order = await placeOrder([mouse]);
    await deliver('inventory', order);
    await deliver('notification', order);
    // The monitor starts compensating while billing works: the order is no longer active.
    deps.sleep = async () => {
      deps.orders.docs.get(order.id)!.state = 'compensating';
    };
    expect(await deliver('billing', order)).toBe('done');

    const stored = (await deps.orders.get(order.id))!;
    expect(stored.state).toBe('compensating');
    expect(stored.status.billing).toBe('done');
    expect(stored.payment.charged).toBe(49);
    expect(stored.timeline.map((t) => t.kind)).not.toContain('completed');
    // Still held: compensation, not settlement, decides what happens to the stock.
    expect(Object.keys((await deps.inventory.get('MOUSE-01'))!.holds ?? {})).toEqual([order.id]);
    expect(monitor.changes).toEqual([]);
  });
});

describe('stock held by inventory deliveries that lost a race', () => {
  it('a delivery that reserved after compensation and died before giving it back: its redelivery gives it back', async () => {
    const order = await placeOrder([mouse]);
    // Compensation runs while the first delivery sleeps in its simulated work...
    deps.sleep = async () => {
      deps.sleep = async () => undefined;
      await releaseStock(order, deps);
    };
    // ...which then reserves, and the host dies before its `done` patch.
    const transition = deps.orders.transitionStatus.bind(deps.orders);
    jest.spyOn(deps.orders, 'transitionStatus').mockImplementation(async (id, change) => {
      if (change.service === 'inventory' && change.to === 'done') throw new Error('host killed');
      return transition(id, change);
    });
    await expect(deliver('inventory', order)).rejects.toThrow('host killed');
    expect((await deps.inventory.get('MOUSE-01'))!).toMatchObject({ available: 998, reserved: 2 });
    jest.restoreAllMocks();

    expect(await deliver('inventory', order, 2)).toBe('duplicate');
    expect(await stockOf('MOUSE-01')).toEqual({ available: 1000, reserved: 0, holds: {} });
  });

  it('a duplicate delivery that reserves after the order completed and its stock was settled takes nothing', async () => {
    const order = await placeOrder([mouse]);
    await deliver('billing', order);
    await deliver('notification', order);
    // A second delivery of the event claims first; while it sleeps, the first one does everything.
    deps.sleep = async () => {
      deps.sleep = async () => undefined;
      expect(await deliver('inventory', order)).toBe('done');
      expect((await deps.orders.get(order.id))!.state).toBe('completed');
    };
    expect(await deliver('inventory', order)).toBe('superseded');
    expect(await stockOf('MOUSE-01')).toEqual({ available: 998, reserved: 2, holds: {} });
  });

  it('records with `done` whose holds the order relies on, and a redelivery leaves them alone', async () => {
    const order = await placeOrder([mouse]);
    expect(await deliver('inventory', order)).toBe('done');
    const { holds } = await stockOf('MOUSE-01');
    const delivery = (holds[order.id] as { delivery: string }).delivery;
    expect(holds).toEqual({ [order.id]: { quantity: 2, delivery } });
    expect((await deps.orders.get(order.id))!.stockHeldBy).toEqual({ 'MOUSE-01': delivery });
    expect(await deliver('inventory', order, 2)).toBe('duplicate');
    expect(await stockOf('MOUSE-01')).toEqual({ available: 998, reserved: 2, holds: { [order.id]: { quantity: 2, delivery } } });
  });

  /** An order the `last` delivery completed, whose host died before it settled the stock. */
  async function completedButNotSettled(last: ServiceName = 'inventory') {
    const order = await placeOrder([mouse]);
    for (const service of (['inventory', 'billing', 'notification'] as const).filter((s) => s !== last)) await deliver(service, order);
    const settle = jest.spyOn(deps.inventory, 'settle').mockRejectedValueOnce(new Error('host killed'));
    await expect(deliver(last, order)).rejects.toThrow('host killed');
    settle.mockRestore();
    expect((await deps.orders.get(order.id))!.state).toBe('completed');
    expect(Object.keys((await stockOf('MOUSE-01')).holds)).toEqual([order.id]);
    return order;
  }

  it.each(['inventory', 'billing'] as const)('a %s delivery that completed the order and died before settling its stock: its redelivery settles it', async (last) => {
    const order = await completedButNotSettled(last);
    expect(await deliver(last, order, 2)).toBe('duplicate');
    expect(await stockOf('MOUSE-01')).toEqual({ available: 998, reserved: 2, holds: {} });
  });

  it('the monitor completing an order whose completer died before settling settles its stock', async () => {
    const order = await completedButNotSettled();
    expect(await markCompleted(order.id, { actor: 'monitor' }, deps, log)).toBe(false);
    expect(await stockOf('MOUSE-01')).toEqual({ available: 998, reserved: 2, holds: {} });
  });

  it('an out-of-stock delivery that used the hold of a predecessor that died gives it back once `failed` is recorded', async () => {
    const order = await placeOrder([mouse, { sku: 'LIMITED-EDITION', quantity: 5, unitPrice: 19.99 }]);
    // The first delivery reserved the mouse, and the host died before it got to the desk mat.
    expect(await deps.inventory.reserve('MOUSE-01', order.id, 2, 'dead-delivery')).toBe('reserved');
    await deps.orders.transitionStatus(order.id, { service: 'inventory', from: ['pending'], to: 'processing' });
    // Its redelivery uses that hold, finds the desk mat short, records `failed` and gives back all.
    expect(await deliver('inventory', order, 2)).toBe('failed');
    expect(await stockOf('MOUSE-01')).toEqual({ available: 1000, reserved: 0, holds: {} });
    expect(await stockOf('LIMITED-EDITION')).toEqual({ available: 3, reserved: 0, holds: {} });
  });
});
