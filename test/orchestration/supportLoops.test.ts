/**
 * Support actions repeated for as long as someone (or something) keeps asking: a requeue of a
 * billing that dead-letters every time, a compensation of an order whose refund fails every time.
 * Each cycle appends to the order's timeline, and Cosmos DB refuses an item over 2 MB: the order
 * document must stay bounded however long the loop goes on. The virtual clock stands still, so the
 * monitor's own backoff never fires: the loop is the support requests' alone.
 */
import { LOW_STOCK_SKU } from '../../src/domain/catalog';
import { MAX_SUPPORT_COMPENSATIONS, MAX_SUPPORT_REQUEUES } from '../../src/domain/orderState';
import { startMonitorWorld, writeOrderWithMonitor, type MonitorWorld, type OrderView } from './monitorSystem';

jest.setTimeout(300_000);

let world: MonitorWorld;

beforeAll(async () => {
  // One attempt per compensation step: a failing refund ends its run at once.
  world = await startMonitorWorld({ MONITOR_COMPENSATION_MAX_ATTEMPTS: '1' });
});

afterAll(async () => {
  await world?.stop();
});

const bytes = (o: OrderView) => Buffer.byteLength(JSON.stringify({ ...o, monitor: undefined }));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Real time only (the virtual clock stands still): until `done`, or fails after 30 s. */
async function until(id: string, done: (o: OrderView) => boolean, what: string): Promise<OrderView> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const o = await world.order(id);
    if (done(o)) return o;
    if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify({ state: o.state, status: o.status, monitor: o.monitor?.customStatus })}`);
    await pause(100);
  }
}

const figures: Record<string, unknown> = {};
afterAll(() => {
  // eslint-disable-next-line no-console
  if (Object.keys(figures).length) console.log(`support loop figures:\n${JSON.stringify(figures, null, 2)}`);
});

it(`a billing that dead-letters every time, requeued on request again and again: refused after ${MAX_SUPPORT_REQUEUES} requeues, the order stays small`, async () => {
  await world.setFaults({ billingFails: true });
  try {
    const placed = await world.request('POST', '/api/orders', { customerId: 'c-requeue-loop', items: [{ sku: 'MOUSE-01', quantity: 1 }] });
    expect(placed.status).toBe(202);
    const id = placed.body.orderId as string;
    const deadLetters = (o: OrderView) => o.timeline.filter((e) => e.kind === 'deadlettered' && e.service === 'billing').length;
    const waiting = (n: number) => (o: OrderView) => deadLetters(o) >= n && o.status.billing === 'deadlettered' && o.monitor?.customStatus?.phase === 'awaiting-requeue';
    await world.runUntil(id, waiting(1), { stepMs: 250 });

    const sizes: number[] = [bytes(await world.order(id))];
    const histories: number[] = [];
    for (let cycle = 1; cycle <= MAX_SUPPORT_REQUEUES; cycle++) {
      const asked = await world.request('POST', `/api/orders/${id}/requeue`, {});
      expect({ cycle, status: asked.status, alreadyRequested: asked.body.alreadyRequested }).toEqual({ cycle, status: 202, alreadyRequested: false });
      const o = await until(id, waiting(cycle + 1), `cycle ${cycle}`);
      sizes.push(bytes(o));
      histories.push(await world.historyLength(id));
    }
    const perCycle = sizes.slice(1).map((s, i) => s - sizes[i]!);
    figures['requeue loop: order bytes after each cycle'] = sizes;
    figures['requeue loop: bytes per cycle'] = perCycle;
    figures['requeue loop: monitor history events after each cycle'] = histories;

    const refused = await world.request('POST', `/api/orders/${id}/requeue`, {});
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain(`requeued ${MAX_SUPPORT_REQUEUES} times on request`);
    const after = await world.order(id);
    expect(after.timeline.filter((e) => e.kind === 'support-action' && e.detail === 'requeue')).toHaveLength(MAX_SUPPORT_REQUEUES);
    // Compensation is still there for the person: it ends the loop.
    const compensate = await world.request('POST', `/api/orders/${id}/compensate`, {});
    expect(compensate.status).toBe(202);
    const { order } = await world.runUntil(id, (o) => o.state === 'cancelled' && o.monitor?.runtimeStatus === 'Completed', { stepMs: 1_000 });
    expect(order.payment).toEqual({ charged: 0, refunded: 0 });
    // The monitor's history is cut at every continue-as-new, however many wake-ups the requests made.
    expect(Math.max(...histories)).toBeLessThan(200);
    expect(bytes(order)).toBeLessThan(64 * 1024);
  } finally {
    await world.setFaults({ billingFails: false });
  }
});

it(`an order in attention compensated on request again and again while its refund keeps failing: refused after ${MAX_SUPPORT_COMPENSATIONS} requests`, async () => {
  await world.setFaults({ refundFails: true });
  try {
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: LOW_STOCK_SKU, quantity: 1_000 }], 'c-compensate-loop');
    // Charged, then out of stock: compensation must refund, and the refund keeps failing.
    await deliver('billing');
    await world.runUntil(id, (o) => o.status.billing === 'done', { stepMs: 250 });
    await deliver('inventory', 'notification');
    const inAttention = (o: OrderView) => o.state === 'attention' && o.monitor?.runtimeStatus === 'Completed';
    await world.runUntil(id, inAttention, { stepMs: 1_000 });

    const sizes: number[] = [bytes(await world.order(id))];
    for (let cycle = 1; cycle <= MAX_SUPPORT_COMPENSATIONS; cycle++) {
      const asked = await world.request('POST', `/api/orders/${id}/compensate`, {});
      expect({ cycle, status: asked.status, alreadyRequested: asked.body.alreadyRequested }).toEqual({ cycle, status: 202, alreadyRequested: false });
      const { order: o } = await world.runUntil(id, (v) => inAttention(v) && v.timeline.filter((e) => e.kind === 'attention').length > cycle, { stepMs: 1_000 });
      sizes.push(bytes(o));
    }
    figures['compensate loop: order bytes after each cycle'] = sizes;
    figures['compensate loop: bytes per cycle'] = sizes.slice(1).map((s, i) => s - sizes[i]!);

    const refused = await world.request('POST', `/api/orders/${id}/compensate`, {});
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain(`asked for ${MAX_SUPPORT_COMPENSATIONS} times`);
    expect(refused.body.state).toBe('attention');
    const after = await world.order(id);
    expect(after.timeline.filter((e) => e.kind === 'compensation-started')).toHaveLength(MAX_SUPPORT_COMPENSATIONS + 1);
    expect(bytes(after)).toBeLessThan(64 * 1024);
  } finally {
    await world.setFaults({ refundFails: false });
  }
});
