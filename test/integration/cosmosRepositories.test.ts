/**
 * The repositories against the Cosmos DB stand-in through the real @azure/cosmos SDK: conditional
 * patches, create-if-absent, and reservations under concurrency.
 */
import type { CosmosClient } from '@azure/cosmos';
import type { Agent } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos-emulator';
import { createCosmosClient, container } from '../../src/azure/clients';
import { CosmosControlRepository, CosmosIdempotencyRepository, FAULTS_CACHE_MS } from '../../src/azure/controlRepositories';
import { CosmosDeadLetterArchive } from '../../src/azure/deadLetterArchive';
import { CosmosInventoryRepository } from '../../src/azure/inventoryRepository';
import { CosmosNotificationStore, CosmosPaymentLedger } from '../../src/azure/ledgerRepositories';
import { CosmosOrderRepository } from '../../src/azure/orderRepository';
import { currentReasons, newOrder } from '../../src/domain/orderState';
import type { OrderSagaDependencies } from '../../src/services/dependencies';
import { chargePayment, refundPayment } from '../../src/services/payment';
import { reconcileHolds, reserveStock } from '../../src/services/stock';
import { RecordingPublisher } from '../unit/support/memoryStores';

let emulator: CosmosEmulator;
let client: CosmosClient;
let agent: Agent | undefined;
let certDir: string;
let deps: OrderSagaDependencies;
let orders: CosmosOrderRepository;
let inventory: CosmosInventoryRepository;
let n = 0;

const nextId = () => `0000aaaa-0000-4000-8000-${String(++n).padStart(12, '0')}`;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'cosmos-it-'));
  emulator = await startCosmosEmulator({ port: 0, certDir });
  ({ client, agent } = createCosmosClient({ endpoint: emulator.endpoint, key: emulator.key, caCertificateFile: emulator.caCertificateFile }));
  orders = new CosmosOrderRepository(container('orders', client));
  inventory = new CosmosInventoryRepository(container('inventory', client));
  deps = {
    orders,
    inventory,
    payments: new CosmosPaymentLedger(container('payments', client)),
    notifications: new CosmosNotificationStore(container('notifications', client)),
    idempotency: new CosmosIdempotencyRepository(container('idempotency', client)),
    control: new CosmosControlRepository(container('control', client)),
    deadLetters: new CosmosDeadLetterArchive(container('deadletters', client)),
    publisher: new RecordingPublisher(),
    settings: { faultInjectionEnabled: true, seedCatalog: false, latencyMs: { inventory: 0, billing: 0, notification: 0 } },
    sleep: async () => undefined,
    now: () => new Date().toISOString(),
  };
});

afterAll(async () => {
  client?.dispose();
  agent?.destroy();
  await emulator?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

function anOrder(items = [{ sku: 'IT-A', quantity: 1, unitPrice: 10 }], createdAt = new Date().toISOString()) {
  const id = nextId();
  return newOrder({ id, eventId: `ev-${id}`, correlationId: `corr-${id}`, customerId: 'c-1', items, total: items.reduce((t, i) => t + i.quantity * i.unitPrice, 0), now: createdAt });
}

async function stock(sku: string, available: number) {
  await inventory.ensure({ id: sku, name: sku, price: 10, available, reserved: 0, holds: {} });
}

describe('orders repository', () => {
  it('creates once: a second create returns the stored order', async () => {
    const order = anOrder();
    expect((await orders.create(order)).created).toBe(true);
    const again = await orders.create({ ...order, customerId: 'someone-else' });
    expect(again.created).toBe(false);
    expect(again.order.customerId).toBe('c-1');
  });

  it('applies a status transition once: the duplicate and the stale one are no-ops', async () => {
    const order = anOrder();
    await orders.create(order);
    const claim = { service: 'billing' as const, from: ['pending', 'processing'] as const, to: 'processing' as const, countBillingAttempt: true };
    expect((await orders.transitionStatus(order.id, claim))!.billingAttempts).toBe(1);
    const done = await orders.transitionStatus(order.id, {
      service: 'billing',
      from: ['processing'],
      to: 'done',
      timeline: { at: new Date().toISOString(), kind: 'done', service: 'billing', deliveryCount: 1 },
    });
    expect(done!.status.billing).toBe('done');
    // Duplicate of the final patch, and a late delivery trying to claim again: both change nothing.
    expect(await orders.transitionStatus(order.id, { service: 'billing', from: ['processing'], to: 'done' })).toBeUndefined();
    expect(await orders.transitionStatus(order.id, claim)).toBeUndefined();
    const stored = (await orders.get(order.id))!;
    expect(stored.status).toEqual({ inventory: 'pending', billing: 'done', notification: 'pending' });
    expect(stored.billingAttempts).toBe(1);
    expect(stored.timeline.map((t) => t.kind)).toEqual(['accepted', 'done']);
  });

  it('appends to the timeline only while it has as many entries as when it was read, if asked to', async () => {
    const order = anOrder();
    await orders.create(order);
    const entry = (detail: string) => ({ at: new Date().toISOString(), kind: 'support-action', detail, actor: 'ana' });
    const read = (await orders.get(order.id))!;
    expect(await orders.appendTimeline(order.id, entry('first'), { whenTimelineLength: read.timeline.length })).toBe(true);
    // A second writer that read the same version loses; an unconditional append still lands.
    expect(await orders.appendTimeline(order.id, entry('second'), { whenTimelineLength: read.timeline.length })).toBe(false);
    const third = entry('third');
    expect(await orders.appendTimeline(order.id, third)).toBe(true);
    const after = (await orders.get(order.id))!;
    expect(after.timeline.map((e) => e.detail ?? e.kind)).toEqual([...read.timeline.map((e) => e.detail ?? e.kind), 'first', 'third']);
    // Each append is a change of the order: "Updated" is never older than its newest entry.
    expect(after.updatedAt >= third.at).toBe(true);
    expect(after.updatedAt > read.updatedAt).toBe(true);
    expect(await orders.appendTimeline('no-such-order', entry('x'), { whenTimelineLength: 0 })).toBe(false);
  });

  it('changes the state only while the timeline has as many entries as when it was read, if asked to', async () => {
    const order = anOrder();
    await orders.create(order);
    const read = (await orders.get(order.id))!;
    const begin = (detail: string) => ({
      from: ['accepted', 'processing', 'compensating'] as const,
      to: 'compensating' as const,
      whenTimelineLength: read.timeline.length,
      timeline: { at: new Date().toISOString(), kind: 'compensation-started', detail },
    });
    expect((await orders.transitionState(order.id, begin('run 1')))?.state).toBe('compensating');
    // A second writer that read the same version loses, although the state would allow it.
    expect(await orders.transitionState(order.id, begin('run 2'))).toBeUndefined();
    const after = (await orders.get(order.id))!;
    expect(after.timeline.filter((e) => e.kind === 'compensation-started').map((e) => e.detail)).toEqual(['run 1']);
  });

  it("changes a service's status only while the timeline has as many entries as when it was read, if asked to", async () => {
    const order = anOrder();
    await orders.create(order);
    await orders.transitionStatus(order.id, { service: 'billing', from: ['pending'], to: 'deadlettered' });
    const read = (await orders.get(order.id))!;
    const requeue = (detail: string) => ({
      service: 'billing' as const,
      from: ['deadlettered'] as const,
      to: 'pending' as const,
      whenTimelineLength: read.timeline.length,
      timeline: { at: new Date().toISOString(), kind: 'requeued', service: 'billing' as const, detail },
    });
    await orders.appendTimeline(order.id, { at: new Date().toISOString(), kind: 'delivery', service: 'inventory' });
    // The status allows it, but the timeline changed since the read.
    expect(await orders.transitionStatus(order.id, requeue('stale'))).toBeUndefined();
    const fresh = (await orders.get(order.id))!;
    expect((await orders.transitionStatus(order.id, { ...requeue('fresh'), whenTimelineLength: fresh.timeline.length }))?.status.billing).toBe('pending');
    const after = (await orders.get(order.id))!;
    expect(after.timeline.filter((e) => e.kind === 'requeued').map((e) => e.detail)).toEqual(['fresh']);
  });

  it("clears a service's reason when it moves to a status no reason describes, and keeps it through compensation", async () => {
    const order = anOrder();
    await orders.create(order);
    const deadLettered = await orders.transitionStatus(order.id, { service: 'billing', from: ['pending'], to: 'deadlettered', reason: 'MaxDeliveryCountExceeded' });
    expect(deadLettered!.statusReason).toEqual({ billing: 'MaxDeliveryCountExceeded' });
    const requeued = await orders.transitionStatus(order.id, { service: 'billing', from: ['deadlettered'], to: 'pending' });
    expect(requeued!.statusReason).toEqual({ billing: null });
    await orders.transitionStatus(order.id, { service: 'inventory', from: ['pending'], to: 'failed', reason: 'out of stock: sku-1' });
    await orders.transitionStatus(order.id, { service: 'inventory', from: ['failed'], to: 'compensated' });
    const stored = (await orders.get(order.id))!;
    expect(stored.statusReason).toEqual({ billing: null, inventory: 'out of stock: sku-1' });
    expect(currentReasons(stored.statusReason)).toEqual({ inventory: 'out of stock: sku-1' });
  });

  it('applies a claim only while the order is in an allowed state', async () => {
    const order = anOrder();
    await orders.create({ ...order, state: 'compensating' });
    const claim = {
      service: 'inventory' as const,
      from: ['pending'] as const,
      to: 'processing' as const,
      whenState: ['accepted', 'processing'] as const,
      setState: 'processing' as const,
    };
    expect(await orders.transitionStatus(order.id, claim)).toBeUndefined();
    expect((await orders.get(order.id))!.state).toBe('compensating');
    const active = anOrder();
    await orders.create(active);
    const claimed = await orders.transitionStatus(active.id, claim);
    expect(claimed).toMatchObject({ state: 'processing', status: { inventory: 'processing' } });
  });

  it('completes only when every service is done, and only once', async () => {
    const order = anOrder();
    await orders.create(order);
    const complete = { from: ['accepted', 'processing'] as const, to: 'completed' as const, when: { inventory: ['done'], billing: ['done'], notification: ['done'] } as const };
    for (const service of ['inventory', 'billing'] as const) await orders.transitionStatus(order.id, { service, from: ['pending'], to: 'done' });
    expect(await orders.transitionState(order.id, complete)).toBeUndefined();
    await orders.transitionStatus(order.id, { service: 'notification', from: ['pending'], to: 'done' });
    const results = await Promise.all([orders.transitionState(order.id, complete), orders.transitionState(order.id, complete)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await orders.get(order.id))!.state).toBe('completed');
  });

  it('completes in the last `done` patch only while the other services are done and the order is active', async () => {
    const at = new Date().toISOString();
    const lastDone = {
      service: 'notification' as const,
      from: ['processing'] as const,
      to: 'done' as const,
      timeline: { at, kind: 'done' as const, service: 'notification' as const },
      completes: { at, kind: 'completed' as const, service: 'notification' as const },
    };
    const order = anOrder();
    await orders.create({ ...order, state: 'processing', status: { inventory: 'done', billing: 'processing', notification: 'processing' } });
    // Billing is not done yet: nothing changes.
    expect(await orders.transitionStatus(order.id, lastDone)).toBeUndefined();
    await orders.transitionStatus(order.id, { service: 'billing', from: ['processing'], to: 'done' });
    const completed = await orders.transitionStatus(order.id, lastDone);
    expect(completed).toMatchObject({ state: 'completed', status: { inventory: 'done', billing: 'done', notification: 'done' } });
    expect(completed!.timeline.map((t) => t.kind)).toEqual(['accepted', 'done', 'completed']);

    const compensating = anOrder();
    await orders.create({ ...compensating, state: 'compensating', status: { inventory: 'done', billing: 'done', notification: 'processing' } });
    expect(await orders.transitionStatus(compensating.id, lastDone)).toBeUndefined();
    expect((await orders.get(compensating.id))!).toMatchObject({ state: 'compensating', status: { notification: 'processing' } });
  });

  it('records a notification once and payments as absolute amounts', async () => {
    const order = anOrder();
    await orders.create(order);
    expect(await orders.recordNotification(order.id, 'confirmation', 'now')).toBe(true);
    expect(await orders.recordNotification(order.id, 'confirmation', 'later')).toBe(false);
    await orders.recordPayment(order.id, 'charged', 10);
    await orders.recordPayment(order.id, 'charged', 10);
    const stored = (await orders.get(order.id))!;
    expect(stored.notifications).toEqual([{ kind: 'confirmation', at: 'now' }]);
    expect(stored.payment).toEqual({ charged: 10, refunded: 0 });
  });

  it('a transition carrying a notice already recorded makes the transition and leaves the notice once', async () => {
    const order = anOrder();
    await orders.create(order);
    expect(await orders.transitionStatus(order.id, { service: 'notification', from: ['pending'], to: 'processing' })).toBeDefined();
    // A redelivery recorded the confirmation the delivery under way sent, before that delivery's `done`.
    expect(await orders.recordNotification(order.id, 'confirmation', 'recorded')).toBe(true);
    const done = await orders.transitionStatus(order.id, {
      service: 'notification',
      from: ['processing'],
      to: 'done',
      notice: { kind: 'confirmation', at: 'sent' },
      timeline: { at: 'sent', kind: 'done', service: 'notification' },
    });
    expect(done?.status.notification).toBe('done');
    expect(done?.notifications).toEqual([{ kind: 'confirmation', at: 'recorded' }]);
    expect(done?.timeline.filter((e) => e.kind === 'done')).toHaveLength(1);
    // Not from `processing` any more: nothing changes, with or without the notice.
    expect(await orders.transitionStatus(order.id, { service: 'notification', from: ['processing'], to: 'done', notice: { kind: 'confirmation', at: 'again' } })).toBeUndefined();
    expect((await orders.get(order.id))?.notifications).toHaveLength(1);
  });

  it('lists newest first with a filter and continuation tokens', async () => {
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      const order = anOrder(undefined, `2030-01-0${i + 1}T00:00:00.000Z`);
      await orders.create({ ...order, state: 'attention' });
      created.push(order.id);
    }
    const first = await orders.list({ state: 'attention' }, { pageSize: 3 });
    expect(first.orders.map((o) => o.id)).toEqual([created[4], created[3], created[2]]);
    expect(first.continuationToken).toBeDefined();
    const second = await orders.list({ state: 'attention' }, { pageSize: 3, continuationToken: first.continuationToken });
    expect(second.orders.map((o) => o.id)).toEqual([created[1], created[0]]);
    expect(second.continuationToken).toBeUndefined();
  });

  it("lists one customer's orders, alone or with a state", async () => {
    const customerId = `cust-${nextId()}`;
    const theirs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const order = { ...anOrder(undefined, `2031-02-0${i + 1}T00:00:00.000Z`), customerId };
      await orders.create(i === 0 ? { ...order, state: 'cancelled' } : order);
      theirs.push(order.id);
    }
    await orders.create(anOrder(undefined, '2031-02-09T00:00:00.000Z'));
    const all = await orders.list({ customerId }, { pageSize: 10 });
    expect(all.orders.map((o) => o.id)).toEqual([theirs[2], theirs[1], theirs[0]]);
    const cancelled = await orders.list({ customerId, state: 'cancelled' }, { pageSize: 10 });
    expect(cancelled.orders.map((o) => o.id)).toEqual([theirs[0]]);
    expect((await orders.list({ customerId: 'nobody' }, { pageSize: 10 })).orders).toEqual([]);
  });

  it('lists the orders last written before an instant, and an order written since drops out', async () => {
    const customerId = `cust-${nextId()}`;
    const theirs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const order = { ...anOrder(undefined, `2021-03-0${i + 1}T00:00:00.000Z`), customerId };
      await orders.create(order);
      theirs.push(order.id);
    }
    const quiet = (updatedBefore: string) => orders.list({ customerId, updatedBefore }, { pageSize: 10 }).then((p) => p.orders.map((o) => o.id));
    expect(await quiet('2021-03-02T12:00:00.000Z')).toEqual([theirs[1], theirs[0]]);
    // A patch moves the order's `updatedAt` to now.
    await orders.appendTimeline(theirs[0]!, { at: new Date().toISOString(), kind: 'note' });
    expect(await quiet('2021-03-02T12:00:00.000Z')).toEqual([theirs[1]]);
    expect(await quiet('2021-03-01T00:00:00.000Z')).toEqual([]);
  });
});

describe('inventory repository', () => {
  it('reserves exactly the stock under 50 concurrent reservations, never below zero', async () => {
    await stock('IT-RACE', 10);
    const results = await Promise.all(Array.from({ length: 50 }, () => inventory.reserve('IT-RACE', nextId(), 1, 'delivery-1')));
    expect(results.filter((r) => r === 'reserved')).toHaveLength(10);
    expect(results.filter((r) => r === 'insufficient')).toHaveLength(40);
    expect(await inventory.get('IT-RACE')).toMatchObject({ available: 0, reserved: 10 });
  });

  it('reserves and releases once per order', async () => {
    await stock('IT-ONCE', 5);
    const orderId = nextId();
    expect(await inventory.reserve('IT-ONCE', orderId, 2, 'delivery-1')).toBe('reserved');
    expect(await inventory.reserve('IT-ONCE', orderId, 2, 'delivery-2')).toBe('alreadyReserved');
    expect(await inventory.hold('IT-ONCE', orderId)).toEqual({ quantity: 2, delivery: 'delivery-1' });
    expect(await inventory.get('IT-ONCE')).toMatchObject({ available: 3, reserved: 2 });
    expect(await inventory.release('IT-ONCE', orderId, 2)).toBe(true);
    expect(await inventory.release('IT-ONCE', orderId, 2)).toBe(false);
    expect(await inventory.get('IT-ONCE')).toMatchObject({ available: 5, reserved: 0 });
    expect(await inventory.reserve('IT-NOPE', orderId, 1, 'delivery-1')).toBe('unknownSku');
  });

  it('settles a completed order: the stock stays reserved, the hold is dropped once', async () => {
    await stock('IT-SETTLE', 5);
    const orderId = nextId();
    expect(await inventory.reserve('IT-SETTLE', orderId, 2, 'delivery-1')).toBe('reserved');
    expect(await inventory.settle('IT-SETTLE', orderId)).toBe(true);
    expect(await inventory.settle('IT-SETTLE', orderId)).toBe(false);
    const item = await inventory.get('IT-SETTLE');
    expect(item).toMatchObject({ available: 3, reserved: 2 });
    expect(item!.holds[orderId]).toBeUndefined();
  });

  it("releases or settles a delivery's hold only for that delivery when one is named", async () => {
    await stock('IT-OWNER', 5);
    const orderId = nextId();
    expect(await inventory.reserve('IT-OWNER', orderId, 2, 'delivery-1')).toBe('reserved');
    expect(await inventory.release('IT-OWNER', orderId, 2, 'delivery-2')).toBe(false);
    expect(await inventory.settle('IT-OWNER', orderId, 'delivery-2')).toBe(false);
    expect(await inventory.get('IT-OWNER')).toMatchObject({ available: 3, reserved: 2 });
    expect(await inventory.release('IT-OWNER', orderId, 2, 'delivery-1')).toBe(true);
    expect(await inventory.get('IT-OWNER')).toMatchObject({ available: 5, reserved: 0, holds: {} });
    expect(await inventory.hold('IT-OWNER', orderId)).toBeUndefined();
    expect(await inventory.reserve('IT-OWNER', orderId, 1, 'delivery-3')).toBe('reserved');
    expect(await inventory.settle('IT-OWNER', orderId, 'delivery-3')).toBe(true);
    expect(await inventory.get('IT-OWNER')).toMatchObject({ available: 4, reserved: 1 });
    expect(await inventory.hold('IT-OWNER', orderId)).toBeUndefined();
  });

  it('reads and releases a hold written as a plain quantity, as holds were before they named a delivery', async () => {
    const orderId = nextId();
    await inventory.ensure({ id: 'IT-LEGACY', name: 'IT-LEGACY', price: 10, available: 3, reserved: 2, holds: { [orderId]: 2 } });
    expect(await inventory.hold('IT-LEGACY', orderId)).toEqual({ quantity: 2 });
    expect(await inventory.reserve('IT-LEGACY', orderId, 2, 'delivery-1')).toBe('alreadyReserved');
    expect(await inventory.release('IT-LEGACY', orderId, 2, 'delivery-1')).toBe(false);
    expect(await inventory.release('IT-LEGACY', orderId, 2)).toBe(true);
    expect(await inventory.get('IT-LEGACY')).toMatchObject({ available: 5, reserved: 0 });
  });

  it('reserves a multi-item order all or none (the rest goes back once the failure is recorded)', async () => {
    await stock('IT-M1', 10);
    await stock('IT-M2', 1);
    const tooMuch = anOrder([
      { sku: 'IT-M1', quantity: 3, unitPrice: 10 },
      { sku: 'IT-M2', quantity: 2, unitPrice: 10 },
    ]);
    expect(await reserveStock(tooMuch, 'delivery-1', deps)).toEqual({ ok: false, reason: 'out of stock: IT-M2 (requested 2)' });
    // Held until the failure is recorded; then everything the order holds goes back.
    expect(await inventory.get('IT-M1')).toMatchObject({ available: 7, reserved: 3 });
    const failed = { ...tooMuch, status: { ...tooMuch.status, inventory: 'failed' as const } };
    expect(await reconcileHolds(failed, deps)).toEqual({ released: 1, settled: 0 });
    expect(await inventory.get('IT-M1')).toMatchObject({ available: 10, reserved: 0, holds: {} });
    const fits = anOrder([
      { sku: 'IT-M1', quantity: 3, unitPrice: 10 },
      { sku: 'IT-M2', quantity: 1, unitPrice: 10 },
    ]);
    expect(await reserveStock(fits, 'delivery-1', deps)).toEqual({ ok: true, heldBy: { 'IT-M1': 'delivery-1', 'IT-M2': 'delivery-1' } });
    // A second delivery uses the holds the first one took.
    expect(await reserveStock(fits, 'delivery-2', deps)).toEqual({ ok: true, heldBy: { 'IT-M1': 'delivery-1', 'IT-M2': 'delivery-1' } });
    expect(await inventory.get('IT-M1')).toMatchObject({ available: 7, reserved: 3 });
    expect(await inventory.get('IT-M2')).toMatchObject({ available: 0, reserved: 1 });
  });
});

describe('payment ledger', () => {
  it('charges once however often billing runs, and refunds exactly the charge once', async () => {
    const order = anOrder([{ sku: 'IT-A', quantity: 3, unitPrice: 12.5 }]);
    await orders.create(order);
    const charges = await Promise.all([chargePayment(order, deps), chargePayment(order, deps), chargePayment(order, deps)]);
    expect(charges.filter((c) => c.created)).toHaveLength(1);
    expect(charges.every((c) => c.charged === 37.5)).toBe(true);
    await refundPayment(order, deps);
    await refundPayment(order, deps);
    const entries = await deps.payments.entries(order.id);
    expect(entries.map((e) => [e.kind, e.amount]).sort()).toEqual([
      ['charge', 37.5],
      ['refund', 37.5],
    ]);
    expect((await orders.get(order.id))!.payment).toEqual({ charged: 37.5, refunded: 37.5 });
  });

  it('voids the charge slot when compensating an order never charged, so a late charge cannot happen', async () => {
    const order = anOrder();
    await orders.create(order);
    expect((await refundPayment(order, deps)).refunded).toBe(0);
    expect(await chargePayment(order, deps)).toEqual({ charged: 0, created: false, voided: true });
    expect((await orders.get(order.id))!.payment).toEqual({ charged: 0, refunded: 0 });
  });
});

describe('idempotency keys and fault switches', () => {
  it('keeps the first record for a key, whatever characters the key has', async () => {
    const record = { key: 'a/b?c#d', orderId: 'o-1', eventId: 'e-1', correlationId: 'c-1', fingerprint: 'f', strictBody: true as const, createdAt: 'now' };
    expect(await deps.idempotency.claim(record)).toEqual({ created: true, record });
    expect(await deps.idempotency.claim({ ...record, orderId: 'o-2' })).toEqual({ created: false, record });
    // Found without claiming; a key never claimed is not found, and stays unclaimed.
    expect(await deps.idempotency.find('a/b?c#d')).toEqual(record);
    expect(await deps.idempotency.find('never-used')).toBeUndefined();
    expect((await deps.idempotency.claim({ ...record, key: 'never-used' })).created).toBe(true);
  });

  it('keeps a dead-lettered message once per source and message id, bytes included', async () => {
    const parked = { source: 'orders/Subscriptions/billing-sub/$DeadLetterQueue', messageId: 'm/1?#', body: Buffer.from([0, 255, 7]), parkedAt: 'now' };
    expect(await deps.deadLetters.park(parked)).toBe(true);
    expect(await deps.deadLetters.park(parked)).toBe(false);
    const { resources } = await container('deadletters', client).items.query('SELECT * FROM c').fetchAll();
    expect(resources).toEqual([expect.objectContaining({ messageId: 'm/1?#', body: { base64: 'AP8H' } })]);
  });

  it('lists the kept dead letters newest first, a page at a time, and refuses a token it did not issue', async () => {
    const source = 'orders/Subscriptions/notification-sub/$DeadLetterQueue';
    for (let i = 1; i <= 5; i++) await deps.deadLetters.park({ source, messageId: `listed-${i}`, body: `{${i}`, parkedAt: `2030-01-01T00:00:0${i}.000Z` });
    const seen: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await deps.deadLetters.list({ pageSize: 2, ...(continuationToken ? { continuationToken } : {}) });
      expect(page.deadLetters.length).toBeLessThanOrEqual(2);
      seen.push(...page.deadLetters.map((d) => d.messageId ?? ''));
      continuationToken = page.continuationToken;
    } while (continuationToken && seen.length < 20);
    // Newest first; the earlier test's message (parkedAt "now", after every date) comes first.
    expect(seen).toEqual(['m/1?#', 'listed-5', 'listed-4', 'listed-3', 'listed-2', 'listed-1']);
    const [first] = (await deps.deadLetters.list({ pageSize: 1 })).deadLetters;
    expect(first).toEqual({ id: expect.stringMatching(/^dl-/), source: 'orders/Subscriptions/billing-sub/$DeadLetterQueue', messageId: 'm/1?#', body: { base64: 'AP8H' }, parkedAt: 'now' });
    await expect(deps.deadLetters.list({ pageSize: 2, continuationToken: 'garbage' })).rejects.toMatchObject({ kind: 'validation' });
  });

  it('reads the billing fault switch as off until set', async () => {
    expect(await deps.control.faults()).toEqual({ billingFails: false });
    await deps.control.setFaults({ billingFails: true });
    expect(await deps.control.faults()).toEqual({ billingFails: true });
    await deps.control.setFaults({ billingFails: false });
  });

  it('keeps the switches it read for FAULTS_CACHE_MS: a flip through another instance shows after that, through this one at once', async () => {
    const here = new CosmosControlRepository(container('control', client));
    const there = new CosmosControlRepository(container('control', client));
    const start = Date.now();
    const clock = jest.spyOn(Date, 'now').mockReturnValue(start);
    try {
      expect(await here.faults()).toEqual({ billingFails: false });
      await there.setFaults({ billingFails: true });
      expect(await there.faults()).toEqual({ billingFails: true });
      // Still within the window: `here` answers from what it read, without asking Cosmos again.
      const [a, b] = await Promise.all([here.faults(), here.faults()]);
      expect([a, b]).toEqual([{ billingFails: false }, { billingFails: false }]);
      clock.mockReturnValue(start + FAULTS_CACHE_MS + 1);
      expect(await here.faults()).toEqual({ billingFails: true });
    } finally {
      clock.mockRestore();
      await there.setFaults({ billingFails: false });
    }
  });
});
