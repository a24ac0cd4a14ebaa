/**
 * The order monitor on the durable engine with virtual time, through the real Functions host, the
 * Service Bus emulator and the Cosmos DB stand-in: dead-letter and requeue, compensation, stuck
 * consumers, a compensation that keeps failing, and a host killed mid-compensation.
 */
import { CLOUDEVENTS_CONTENT_TYPE, orderCreatedProperties } from '../../src/domain/orderCreatedEvent';
import { LOW_STOCK_SKU } from '../../src/domain/catalog';
import { cosmosTopology, MAX_DELIVERY_COUNT, ORDERS_TOPIC, TARGET_PROPERTY, type ServiceName } from '../../src/topology';
import { ordersContainer, startMonitorWorld, writeOrderWithMonitor, type MonitorWorld, type OrderView } from './monitorSystem';

jest.setTimeout(180_000);

let world: MonitorWorld;

beforeAll(async () => {
  world = await startMonitorWorld();
});

afterAll(async () => {
  await world?.stop();
});

const terminal = (o: OrderView) => ['completed', 'cancelled', 'attention'].includes(o.state) && o.monitor?.runtimeStatus === 'Completed';
const kinds = (o: OrderView) => o.timeline.map((e) => e.kind);
const stock = async (sku: string) => (await world.request('GET', `/api/inventory/${sku}`)).body as { available: number; reserved: number };

async function placeOrder(body: unknown): Promise<string> {
  const res = await world.request('POST', '/api/orders', body);
  expect(res.status).toBe(202);
  return res.body.orderId as string;
}

/** Per order: charges - refunds is the total when completed and 0 when cancelled. */
function expectMoneyConserved(o: OrderView) {
  const net = Math.round((o.payment.charged - o.payment.refunded) * 100) / 100;
  expect(net).toBe(o.state === 'completed' ? o.total : 0);
}

const figures: Record<string, unknown> = {};
afterAll(() => {
  if (Object.keys(figures).length === 0) return;
  // eslint-disable-next-line no-console
  console.log(`order monitor figures (virtual time; default policy except 4 turns per execution):\n${JSON.stringify(figures, null, 2)}`);
});

describe('happy path', () => {
  it('decides its first turn from the order the intake handed over and ends on the consumer\'s completion report, without reading the order', async () => {
    const id = await placeOrder({ customerId: 'c-happy', items: [{ sku: 'MOUSE-01', quantity: 1 }] });
    const { order } = await world.runUntil(id, terminal, { stepMs: 250 });
    expect(order.state).toBe('completed');
    expect(order.notifications.map((n) => n.kind)).toEqual(['confirmation']);
    expect(order.monitor?.customStatus).toMatchObject({ phase: 'done', orderState: 'completed', detail: expect.stringMatching(/^completed \(reported by (inventory|billing|notification)\)$/) });

    const res = await world.request('GET', `/runtime/webhooks/durabletask/instances/${id}?showHistory=true&showHistoryOutput=true`);
    const history = res.body.historyEvents as { EventType: string; FunctionName?: string; Input?: unknown }[];
    expect(history[0]).toMatchObject({ EventType: 'ExecutionStarted', Input: expect.objectContaining({ snapshot: expect.objectContaining({ orderId: id, state: 'accepted' }) }) });
    // No activity at all: no read at the start (the intake's snapshot), none at the end (the report).
    expect(history.filter((e) => e.EventType === 'TaskCompleted' || e.EventType === 'TaskFailed')).toEqual([]);
    expect(history.filter((e) => e.EventType === 'EventRaised')).toHaveLength(1);
    expect(res.body.output).toEqual({ orderId: id, outcome: 'completed' });
  });

  it('a monitor started without a snapshot (the sweeper, a retried intake) reads the order first', async () => {
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: 'MOUSE-01', quantity: 1 }]);
    await deliver('inventory', 'billing', 'notification');
    const { order } = await world.runUntil(id, terminal, { stepMs: 250 });
    expect(order.state).toBe('completed');
    const res = await world.request('GET', `/runtime/webhooks/durabletask/instances/${id}?showHistory=true`);
    const reads = (res.body.historyEvents as { EventType: string; FunctionName?: string }[]).filter(
      (e) => e.EventType === 'TaskCompleted' && e.FunctionName === 'readMonitorSnapshot',
    );
    expect(reads.length).toBeGreaterThanOrEqual(1);
  });
});

describe('dead-lettered billing', () => {
  it(`billingFailures = maxDeliveryCount (${MAX_DELIVERY_COUNT}): dead-lettered, requeued after the backoff, completed`, async () => {
    const id = await placeOrder({ customerId: 'c-dl', items: [{ sku: 'MOUSE-01', quantity: 1 }], simulate: { billingFailures: MAX_DELIVERY_COUNT } });

    // The dead-letter handler records it and wakes the monitor, which then waits out the backoff.
    const deadLettered = await world.runUntil(
      id,
      (o) => o.status.billing === 'deadlettered' && o.monitor?.customStatus?.phase === 'awaiting-requeue',
      { stepMs: 250 },
    );
    expect(deadLettered.virtualMs).toBeLessThan(5_000);
    expect(deadLettered.order.timeline).toContainEqual(
      expect.objectContaining({ kind: 'deadlettered', service: 'billing', deliveryCount: MAX_DELIVERY_COUNT, reason: expect.stringContaining('MaxDeliveryCount') }),
    );
    expect(deadLettered.order.monitor?.customStatus).toMatchObject({ detail: 'requeue 1 of 3 after backoff', billingRequeues: 0 });

    const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 500 });
    expect(order.state).toBe('completed');
    expect(order.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
    expect(order.payment).toEqual({ charged: order.total, refunded: 0 });
    expect(order.notifications.map((n) => n.kind)).toEqual(['confirmation']);
    const requeues = order.timeline.filter((e) => e.kind === 'requeued');
    expect(requeues).toEqual([expect.objectContaining({ service: 'billing', actor: 'monitor', detail: `attempt 1, message ${order.eventId}:billing:1` })]);
    // Only billing got the requeue: inventory and notification saw one delivery each.
    expect(order.timeline.filter((e) => e.kind === 'delivery' && e.service !== 'billing')).toHaveLength(2);
    expect(order.timeline.filter((e) => e.kind === 'delivery' && e.service === 'billing')).toHaveLength(MAX_DELIVERY_COUNT + 1);
    expect(virtualMs).toBeGreaterThanOrEqual(4_000);
    figures['dead-letter -> requeue -> completed (virtual ms)'] = virtualMs;
    figures['monitor history events of the last execution, requeued order'] = await world.historyLength(id);
  });

  it('billing never succeeds (fault switch on): requeues used up, cancelled, stock back, net charge 0, one cancellation', async () => {
    const before = await Promise.all([stock('MOUSE-01'), stock('CABLE-USB-C')]);
    await world.setFaults({ billingFails: true });
    let id: string;
    try {
      id = await placeOrder({ customerId: 'c-never', items: [{ sku: 'MOUSE-01', quantity: 2 }, { sku: 'CABLE-USB-C', quantity: 1 }] });
      const dl = await world.runUntil(id, (o) => o.status.billing === 'deadlettered', { stepMs: 250 });
      const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 1_000 });
      figures['first billing dead-letter -> cancelled (virtual ms)'] = virtualMs + dl.virtualMs;
      figures['monitor history events of the last execution, cancelled order'] = await world.historyLength(id);

      expect(order.state).toBe('cancelled');
      expect(order.status).toEqual({ inventory: 'compensated', billing: 'compensated', notification: 'compensated' });
      expect(order.timeline.filter((e) => e.kind === 'requeued')).toHaveLength(3);
      expect(order.timeline.filter((e) => e.kind === 'deadlettered')).toHaveLength(4);
      expect(order.timeline).toContainEqual(expect.objectContaining({ kind: 'compensation-started', reason: 'billing dead-lettered after 3 requeues' }));
      expect(order.payment).toEqual({ charged: 0, refunded: 0 });
      expectMoneyConserved(order);
      expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
      // Requeues are spaced by the backoff: 5 s, 10 s, 20 s after each dead-letter.
      expect(virtualMs).toBeGreaterThanOrEqual(35_000);
      // Four turns per execution here: the monitor continued as new and kept its bounds across it.
      expect(order.monitor?.customStatus?.execution).toBeGreaterThan(0);
    } finally {
      await world.setFaults({ billingFails: false });
    }
    expect(await Promise.all([stock('MOUSE-01'), stock('CABLE-USB-C')])).toEqual(before);
  });

  it('billingFailures past every requeue (1,000): the same end without the fault switch, cancelled with net charge 0', async () => {
    const id = await placeOrder({ customerId: 'c-many', items: [{ sku: 'KEYBOARD-01', quantity: 1 }], simulate: { billingFailures: 1_000 } });
    const { order } = await world.runUntil(id, terminal, { stepMs: 1_000 });
    expect(order.state).toBe('cancelled');
    expect(order.timeline.filter((e) => e.kind === 'requeued')).toHaveLength(3);
    expect(order.timeline.filter((e) => e.kind === 'deadlettered' && e.service === 'billing')).toHaveLength(4);
    expect(order.payment).toEqual({ charged: 0, refunded: 0 });
    expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
  });
});

describe('support requeue', () => {
  it('requeues a dead-lettered billing at once, recorded with who asked; a second requeue of the completed order is refused', async () => {
    const id = await placeOrder({ customerId: 'c-support', items: [{ sku: 'MONITOR-27', quantity: 1 }], simulate: { billingFailures: MAX_DELIVERY_COUNT } });
    await world.runUntil(id, (o) => o.monitor?.customStatus?.phase === 'awaiting-requeue', { stepMs: 250 });
    const asked = await world.clock();

    const action = await world.request('POST', `/api/orders/${id}/requeue`, {});
    expect(action.status).toBe(202);
    expect(action.body).toMatchObject({ orderId: id, action: 'requeue', accepted: true, alreadyRequested: false, monitor: 'woken' });
    const { order } = await world.runUntil(id, terminal, { stepMs: 250 });

    expect(order.state).toBe('completed');
    expect(order.timeline.filter((e) => e.kind === 'requeued')).toEqual([expect.objectContaining({ actor: 'support@localhost', service: 'billing' })]);
    expect(order.timeline).toContainEqual(expect.objectContaining({ kind: 'support-action', detail: 'requeue', actor: 'support@localhost' }));
    // Without waiting for the 5 s backoff.
    expect((await world.clock()).getTime() - asked.getTime()).toBeLessThan(5_000);

    const again = await world.request('POST', `/api/orders/${id}/requeue`, {});
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ status: 409, state: 'completed' });
  });

  it('a person asking again after their requeue dead-lettered again is carried out once more, and then the backoff resumes', async () => {
    await world.setFaults({ billingFails: true });
    let id = '';
    const requeues = (o: OrderView) => o.timeline.filter((e) => e.kind === 'requeued');
    const billingSends = (o: OrderView) => o.timeline.filter((e) => e.kind === 'republished' && e.service === 'billing');
    const deadLetters = (o: OrderView) => o.timeline.filter((e) => e.kind === 'deadlettered' && e.service === 'billing');
    /** Real time only: the virtual clock stands still, so no backoff or poll timer fires meanwhile. */
    const settled = async (count: number) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const o = await world.order(id);
        if (deadLetters(o).length >= count && o.status.billing === 'deadlettered' && o.monitor?.customStatus?.phase === 'awaiting-requeue') return o;
        if (Date.now() > deadline) throw new Error(`billing did not dead-letter ${count} times: ${JSON.stringify(o.monitor?.customStatus)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      id = await placeOrder({ customerId: 'c-support-twice', items: [{ sku: 'MOUSE-01', quantity: 1 }] });
      await world.runUntil(id, (o) => o.status.billing === 'deadlettered' && o.monitor?.customStatus?.phase === 'awaiting-requeue', { stepMs: 250 });
      expect((await world.request('POST', `/api/orders/${id}/requeue`, {})).body).toMatchObject({ alreadyRequested: false });
      await settled(2);
      // The gateway is still down; the same person asks again before the monitor's backoff is over.
      expect((await world.request('POST', `/api/orders/${id}/requeue`, {})).body).toMatchObject({ alreadyRequested: false, monitor: 'woken' });
      const after = await settled(3);
      // Before: the second request matched the first one's record, was never recorded, and its
      // message was sent again on every turn (about 20 a second) until billing got through.
      expect(requeues(after).map((e) => [e.actor, e.detail])).toEqual([
        ['support@localhost', `attempt 1, message ${after.eventId}:billing:1`],
        ['support@localhost', `attempt 2, message ${after.eventId}:billing:2`],
      ]);
      expect(billingSends(after)).toHaveLength(2);
      expect(after.monitor?.customStatus).toMatchObject({ detail: 'requeue 1 of 3 after backoff', billingRequeues: 0 });
    } finally {
      await world.setFaults({ billingFails: false });
    }
    const { order } = await world.runUntil(id, terminal, { stepMs: 1_000 });
    expect(order.state).toBe('completed');
    expect(order.payment).toEqual({ charged: order.total, refunded: 0 });
    expect(requeues(order).map((e) => [e.actor, e.detail])).toEqual([
      ['support@localhost', `attempt 1, message ${order.eventId}:billing:1`],
      ['support@localhost', `attempt 2, message ${order.eventId}:billing:2`],
      ['monitor', `attempt 3, message ${order.eventId}:billing:3`],
    ]);
  });
});

describe('saga compensation', () => {
  it('out of stock after billing charged: compensated at once with a refund, nothing to release', async () => {
    const before = await stock(LOW_STOCK_SKU);
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: LOW_STOCK_SKU, quantity: before.available + 1 }]);
    await deliver('billing');
    await world.runUntil(id, (o) => o.status.billing === 'done', { stepMs: 250 });
    await deliver('inventory', 'notification');
    const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 1_000 });

    expect(order.state).toBe('cancelled');
    expect(order.status.inventory).toBe('failed');
    expect(order.status.billing).toBe('compensated');
    expect(order.payment).toEqual({ charged: order.total, refunded: order.total });
    expectMoneyConserved(order);
    expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
    expect(order.timeline).toContainEqual(expect.objectContaining({ kind: 'compensation-started', reason: expect.stringContaining('inventory failed: out of stock') }));
    // "At once": no poll or stuck timer had to pass.
    expect(virtualMs).toBeLessThan(2_000);
    expect(await stock(LOW_STOCK_SKU)).toEqual(before);
  });

  it('with refunds failing, an order that was never charged still ends cancelled: there is nothing to refund', async () => {
    await world.setFaults({ refundFails: true });
    try {
      const before = await stock(LOW_STOCK_SKU);
      const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: LOW_STOCK_SKU, quantity: before.available + 1 }]);
      await deliver('inventory', 'notification');
      const { order } = await world.runUntil(id, terminal, { stepMs: 1_000 });

      expect(order.state).toBe('cancelled');
      expect(order.status.billing).toBe('compensated');
      expect(order.payment).toEqual({ charged: 0, refunded: 0 });
      expect(order.timeline).toContainEqual(expect.objectContaining({ kind: 'compensation', service: 'billing', detail: 'nothing charged; charge voided' }));
      expect(order.timeline.filter((e) => e.kind === 'compensation-failed' || e.kind === 'attention')).toEqual([]);
    } finally {
      await world.setFaults({ refundFails: false });
    }
  });

  it('a refund that keeps failing ends in attention with the details, not an endless loop; support compensates after the fix', async () => {
    await world.setFaults({ refundFails: true });
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: LOW_STOCK_SKU, quantity: 1_000 }]);
    try {
      await deliver('billing');
      await world.runUntil(id, (o) => o.status.billing === 'done', { stepMs: 250 });
      await deliver('inventory', 'notification');
      const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 2_000 });
      figures['refund always failing -> attention (virtual ms)'] = virtualMs;

      expect(order.state).toBe('attention');
      expect(order.timeline).toContainEqual(
        expect.objectContaining({ kind: 'compensation-failed', detail: 'refundPayment failed after retries', reason: expect.stringContaining('refund fault switch on') }),
      );
      expect(order.timeline).toContainEqual(expect.objectContaining({ kind: 'attention', reason: expect.stringContaining('refundPayment') }));
      expect(order.payment.refunded).toBe(0);
      // The other compensations still ran: the customer is told once.
      expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
      expect(order.monitor?.runtimeStatus).toBe('Completed');
    } finally {
      await world.setFaults({ refundFails: false });
    }

    const action = await world.request('POST', `/api/orders/${id}/compensate`, {});
    expect(action.status).toBe(202);
    expect(action.body).toMatchObject({ orderId: id, action: 'compensate', accepted: true, requestedBy: 'support@localhost', monitor: 'started' });
    const { order } = await world.runUntil(id, (o) => o.state === 'cancelled' && o.monitor?.runtimeStatus === 'Completed', { stepMs: 1_000 });
    expect(order.payment).toEqual({ charged: order.total, refunded: order.total });
    expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
    expect(order.timeline).toContainEqual(expect.objectContaining({ kind: 'support-action', detail: 'compensate', actor: 'support@localhost' }));
    // The timeline numbers the runs as the order had them, as their sub-orchestrations are named.
    expect(order.timeline.filter((e) => e.kind === 'compensation-started').map((e) => e.detail)).toEqual(['run 1', 'run 2']);
    // The second run is the person's, and says so.
    expect(order.timeline.filter((e) => e.kind === 'compensation-started').map((e) => [e.actor, e.reason])).toEqual([
      ['monitor', expect.stringContaining('inventory failed')],
      ['support@localhost', 'requested again by support@localhost'],
    ]);
    // Each run has a sub-orchestration of its own: the failed run's record is kept, not replaced.
    const runs = [];
    for (const n of [1, 2]) {
      const res = await world.request('GET', `/runtime/webhooks/durabletask/instances/${encodeURIComponent(`${id}:compensation:${n}`)}`);
      runs.push({ status: res.status, runtimeStatus: res.body?.runtimeStatus, output: res.body?.output });
    }
    expect(runs).toEqual([
      { status: 200, runtimeStatus: 'Completed', output: { outcome: 'attention', failures: [expect.objectContaining({ name: 'refundPayment' })] } },
      { status: 200, runtimeStatus: 'Completed', output: { outcome: 'cancelled', failures: [] } },
    ]);
  });

  it('a monitor restarted while its compensation runs: the earlier run, superseded, does not end the order in attention', async () => {
    await world.setFaults({ refundFails: true });
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: LOW_STOCK_SKU, quantity: 1_000 }]);
    const run = async (n: number) =>
      (await world.request('GET', `/runtime/webhooks/durabletask/instances/${encodeURIComponent(`${id}:compensation:${n}`)}`)).body?.runtimeStatus as string | undefined;
    try {
      await deliver('billing');
      await world.runUntil(id, (o) => o.status.billing === 'done', { stepMs: 250 });
      await deliver('inventory', 'notification');
      await world.runUntil(id, (o) => o.state === 'compensating' && o.monitor?.customStatus?.phase === 'compensating', { stepMs: 250 });
      // Past run 1's fifth and last refund attempt (2+4+8+16 s of backoff), into the 30 s that
      // DTFx still waits after it before the step fails: run 2, started now, has every attempt
      // left when run 1 ends.
      await world.advance(45_000);
      expect(await run(1)).toBe('Running');

      // An operator terminates the monitor; its compensation run goes on, and the sweeper restarts
      // the monitor, which begins run 2 beside it.
      expect((await world.request('POST', `/runtime/webhooks/durabletask/instances/${id}/terminate?reason=operator`)).status).toBe(202);
      const deadline = Date.now() + 30_000;
      // (Scheduled, a sub-orchestration reads Pending until its first episode has run.)
      while ((await run(2)) !== 'Running' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await run(2)).toBe('Running');

      // Run 1 uses up its refund retries first (the switch is still on).
      while ((await run(1)) === 'Running' && (await run(2)) === 'Running') {
        await world.advance(250);
        await world.request('POST', '/admin/durable/idle');
      }
      expect([await run(1), await run(2)]).toEqual(['Completed', 'Running']);
      const meanwhile = await world.order(id);
      // Before: run 1 recorded `attention` here, and run 2's `cancelled` was then thrown away.
      expect(meanwhile.state).toBe('compensating');
      expect(meanwhile.timeline.filter((e) => e.kind === 'attention' || e.kind === 'compensation-failed')).toEqual([]);
    } finally {
      await world.setFaults({ refundFails: false });
    }
    const { order } = await world.runUntil(id, terminal, { stepMs: 1_000 });
    expect(order.state).toBe('cancelled');
    expect(order.payment).toEqual({ charged: order.total, refunded: order.total });
    expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
    expect(order.timeline.filter((e) => e.kind === 'attention')).toEqual([]);
  });
});

describe('compensation while Cosmos DB throttles', () => {
  const compensationRun = async (id: string) =>
    (await world.request('GET', `/runtime/webhooks/durabletask/instances/${encodeURIComponent(`${id}:compensation:1`)}`)).body as
      | { runtimeStatus?: string; customStatus?: { current?: string; waiting?: { until: string; why?: string } } }
      | undefined;

  /** An order charged, then out of stock, whose refund meets a payments ledger Cosmos DB throttles every time. */
  async function compensatingWithRefundThrottled() {
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: LOW_STOCK_SKU, quantity: 1_000 }]);
    await deliver('billing');
    await world.runUntil(id, (o) => o.status.billing === 'done', { stepMs: 250 });
    await world.throttle({ share: 1, retryAfterMs: 1, containers: ['payments'] });
    await deliver('inventory', 'notification');
    const deadline = Date.now() + 60_000;
    let run = await compensationRun(id);
    while (!run?.customStatus?.waiting && Date.now() < deadline) {
      await world.advance(1_000);
      await world.request('POST', '/admin/durable/idle');
      run = await compensationRun(id);
    }
    return { id, run };
  }

  afterEach(async () => {
    await world.throttle({ share: 0, containers: null });
  });

  it('a refund Cosmos DB keeps throttling is waited out, not counted as failing: cancelled with the refund once it stops', async () => {
    const { id, run } = await compensatingWithRefundThrottled();
    expect(run).toMatchObject({ runtimeStatus: 'Running', customStatus: { current: 'refundPayment', waiting: { why: expect.stringContaining('Cosmos DB did not serve it') } } });

    // Ten virtual minutes of throttling: the five tries of a failing step take 60 s (30 s of backoff
    // between them, then DTFx's 30 s after the last), and before this the order was in `attention`
    // by now.
    for (let i = 0; i < 20; i++) {
      await world.advance(30_000);
      await world.request('POST', '/admin/durable/idle');
    }
    const meanwhile = await world.order(id);
    expect(meanwhile.state).toBe('compensating');
    expect(meanwhile.timeline.filter((e) => e.kind === 'attention' || e.kind === 'compensation-failed')).toEqual([]);
    expect((await compensationRun(id))?.customStatus).toMatchObject({ current: 'refundPayment', waiting: expect.any(Object) });

    await world.throttle({ share: 0 });
    const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 30_000, maxVirtualMs: 10 * 60_000 });
    figures['refund throttled for 10 min, then served -> cancelled (virtual ms after throttling stopped)'] = virtualMs;
    expect(order.state).toBe('cancelled');
    expect(order.payment).toEqual({ charged: order.total, refunded: order.total });
    expectMoneyConserved(order);
    expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
    expect(order.timeline.filter((e) => e.kind === 'attention' || e.kind === 'compensation-failed')).toEqual([]);
    expect(order.timeline.filter((e) => e.kind === 'compensation-started')).toHaveLength(1);
    // The wait is shown while it lasts, and gone once the step went through.
    expect((await compensationRun(id))?.customStatus).not.toHaveProperty('waiting');
  });

  it('throttling that outlasts the outage bound (an hour) ends in attention naming it, with the other compensations done', async () => {
    const { id } = await compensatingWithRefundThrottled();
    const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 60_000, maxVirtualMs: 2 * 60 * 60_000, realTimeoutMs: 120_000 });
    figures['refund throttled throughout -> attention (virtual ms)'] = virtualMs;
    expect(order.state).toBe('attention');
    expect(virtualMs).toBeGreaterThanOrEqual(60 * 60_000);
    expect(order.timeline).toContainEqual(
      expect.objectContaining({
        kind: 'compensation-failed',
        detail: 'refundPayment failed after retries',
        reason: expect.stringMatching(/Cosmos DB did not serve it: .*still so after \d+ s/),
      }),
    );
    expect(order.payment.refunded).toBe(0);
    expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
    expect(order.status.inventory).not.toBe('processing');
  });
});

describe('the monitor while Cosmos DB throttles', () => {
  afterEach(async () => {
    await world.throttle({ share: 0, containers: null });
  });

  it('keeps watching an order it cannot read, and settles it once it can: it does not fail and leave the order to the sweeper', async () => {
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: 'MOUSE-01', quantity: 1 }]);
    const runtimeStatus = async () => (await world.request('GET', `/runtime/webhooks/durabletask/instances/${id}`)).body?.runtimeStatus as string | undefined;
    await world.advance(1_000);
    await world.request('POST', '/admin/durable/idle');
    // Every read of an order fails, past the read's retries (1 + 2 + 4 s), for two virtual minutes.
    await world.throttle({ share: 1, retryAfterMs: 1, containers: ['orders'] });
    for (let i = 0; i < 24; i++) {
      await world.advance(5_000);
      await world.request('POST', '/admin/durable/idle');
    }
    // Before, the monitor had failed here; the sweeper restarts only an active order's monitor,
    // and only once it can read the order itself.
    expect(await runtimeStatus()).toBe('Running');
    expect(world.hostOutput()).toContain('"event":"monitor.read-failed"');

    await world.throttle({ share: 0 });
    await deliver('inventory', 'billing', 'notification');
    const { order } = await world.runUntil(id, terminal, { stepMs: 5_000 });
    expect(order.state).toBe('completed');
    const holds = (await world.request('GET', '/api/inventory/MOUSE-01')).body.holds as { orderId: string }[];
    expect(holds.filter((h) => h.orderId === id)).toEqual([]);
  });
});

describe('stuck consumers', () => {
  it('a notification that never arrives: republished to notification only after the threshold, then completed', async () => {
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: 'WEBCAM-01', quantity: 1 }]);
    await deliver('inventory', 'billing');
    await world.runUntil(id, (o) => o.status.inventory === 'done' && o.status.billing === 'done', { stepMs: 250 });
    const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 5_000 });
    figures['stuck notification -> republished -> completed (virtual ms)'] = virtualMs;

    expect(order.state).toBe('completed');
    const republished = order.timeline.filter((e) => e.kind === 'republished');
    expect(republished).toEqual([expect.objectContaining({ service: 'notification', reason: expect.stringMatching(/^stuck/) })]);
    expect(order.notifications.map((n) => n.kind)).toEqual(['confirmation']);
    expect(order.timeline.filter((e) => e.kind === 'delivery').map((e) => e.service).sort()).toEqual(['billing', 'inventory', 'notification']);
    // Not before the stuck threshold (60 s by default).
    expect(virtualMs).toBeGreaterThanOrEqual(55_000);
  });
});

describe('dead-lettered inventory', () => {
  it("a corrupt copy of an order's event dead-letters on inventory: surfaced on the order and republished after the requeue backoff, not the stuck threshold", async () => {
    const { id, order: written, deliver } = await writeOrderWithMonitor(world, [{ sku: 'WEBCAM-01', quantity: 1 }]);
    await deliver('billing', 'notification');
    // Unreadable, but its application properties name the order: inventory's consumer refuses it
    // on every delivery, so Service Bus dead-letters it, and the order is found from the dead-letter.
    const sender = world.serviceBus.createSender(ORDERS_TOPIC);
    await sender.sendMessages({
      messageId: `${written.eventId}:inventory:corrupt`,
      body: Buffer.from('{"specversion":"1.0","data":{"orderId":'),
      contentType: CLOUDEVENTS_CONTENT_TYPE,
      applicationProperties: { ...orderCreatedProperties(written), [TARGET_PROPERTY]: 'inventory' },
    });
    await sender.close();

    const { order, virtualMs } = await world.runUntil(id, terminal, { stepMs: 1_000 });
    figures['inventory dead-lettered -> republished -> completed (virtual ms)'] = virtualMs;
    expect(order.state).toBe('completed');
    expect(order.timeline.filter((e) => e.kind === 'deadlettered')).toEqual([
      expect.objectContaining({ service: 'inventory', deliveryCount: MAX_DELIVERY_COUNT, reason: expect.stringContaining('MaxDeliveryCountExceeded') }),
    ]);
    expect(order.timeline.filter((e) => e.kind === 'republished')).toEqual([
      expect.objectContaining({ service: 'inventory', reason: expect.stringContaining('inventory dead-lettered') }),
    ]);
    // The requeue backoff is 5 s and the stuck threshold 60 s: the dead-letter did not wait for the latter.
    expect(virtualMs).toBeGreaterThanOrEqual(5_000);
    expect(virtualMs).toBeLessThan(30_000);
  });
});

describe('stock left unsettled', () => {
  it('settles the stock of an order it finds completed with no report (its completer died before settling and never came back)', async () => {
    const { id } = await writeOrderWithMonitor(world, [{ sku: 'KEYBOARD-01', quantity: 1 }]);
    const before = await stock('KEYBOARD-01');
    // What such a completer leaves: the order completed, its hold on the stock, and no report
    // (its message went to the dead-letter queue on its last delivery instead of coming back).
    const inventory = world.cosmos.database(cosmosTopology.databaseName).container('inventory');
    await inventory.item('KEYBOARD-01', 'KEYBOARD-01').patch([
      { op: 'incr', path: '/available', value: -1 },
      { op: 'incr', path: '/reserved', value: 1 },
      { op: 'set', path: `/holds/${id}`, value: { quantity: 1, delivery: 'died' } },
    ]);
    await ordersContainer(world.cosmos).item(id, id).patch([
      { op: 'set', path: '/status', value: { inventory: 'done', billing: 'done', notification: 'done' } },
      { op: 'set', path: '/stockHeldBy', value: { 'KEYBOARD-01': 'died' } },
      { op: 'set', path: '/state', value: 'completed' },
    ]);
    expect((await world.request('GET', '/api/inventory/KEYBOARD-01')).body.holds).toContainEqual({ orderId: id, quantity: 1 });

    const { order } = await world.runUntil(id, terminal, { stepMs: 5_000 });
    expect(order.state).toBe('completed');
    const after = (await world.request('GET', '/api/inventory/KEYBOARD-01')).body;
    expect(after.holds.map((h: { orderId: string }) => h.orderId)).not.toContain(id);
    // Settled, not released: the unit stays sold.
    expect({ available: after.available, reserved: after.reserved }).toEqual({ available: before.available - 1, reserved: before.reserved + 1 });
  });
});

describe('monitor sweeper', () => {
  it('restarts a terminated monitor of an active order, which then carries the order to its end', async () => {
    const id = await placeOrder({ customerId: 'c-sweep', items: [{ sku: 'KEYBOARD-01', quantity: 1 }], simulate: { billingFailures: MAX_DELIVERY_COUNT } });
    await world.runUntil(id, (o) => o.status.billing === 'deadlettered' && o.monitor?.customStatus?.phase === 'awaiting-requeue', { stepMs: 250 });
    const terminated = await world.request('POST', `/runtime/webhooks/durabletask/instances/${id}/terminate?reason=operator`);
    expect(terminated.status).toBe(202);

    // Without a monitor nothing requeues the dead-lettered billing; the sweeper (real time, every
    // 2 s) notices, and says what it found. (Reading the status right after the terminate races:
    // the terminate is queued for the instance's next episode, and a sweep may already have
    // started the monitor again.)
    const restartLine = (line: string) => line.includes('"event":"monitor-restarted"') && line.includes(`"orderId":"${id}"`);
    const deadline = Date.now() + 20_000;
    while (!world.hostOutput().split('\n').some(restartLine) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const restart = world.hostOutput().split('\n').find(restartLine);
    expect(restart).toContain('"previous":"Terminated"');
    expect((await world.order(id)).monitor?.runtimeStatus).not.toBe('Terminated');

    const { order } = await world.runUntil(id, terminal, { stepMs: 1_000 });
    expect(order.state).toBe('completed');
    expect(order.payment).toEqual({ charged: order.total, refunded: 0 });
    expect(order.timeline.filter((e) => e.kind === 'requeued')).toHaveLength(1);
  });
});

describe('host crash', () => {
  it('killed mid-compensation, the compensation finishes after restart with the invariants intact', async () => {
    await world.setFaults({ refundFails: true });
    const before = await stock('DOCK-01');
    const { id, deliver } = await writeOrderWithMonitor(world, [{ sku: 'DOCK-01', quantity: 2 }]);
    await deliver('inventory', 'billing');
    await world.runUntil(id, (o) => o.status.inventory === 'done' && o.status.billing === 'done', { stepMs: 250 });
    // Support cancels it; the refund fails (switch on), so compensation is mid-way, retrying.
    expect((await world.request('POST', `/api/orders/${id}/compensate`, {})).status).toBe(202);
    await world.runUntil(id, (o) => o.state === 'compensating' && o.monitor?.customStatus?.phase === 'compensating', { stepMs: 250 });
    await world.advance(1_000);

    await world.killAndRestartHost(async () => {
      // While the host is down, the gateway recovers.
      const control = world.cosmos.database('orders-db').container('control');
      await control.items.upsert({ id: 'compensation-faults', refundFails: false });
    });

    const { order } = await world.runUntil(id, terminal, { stepMs: 2_000 });
    expect(order.state).toBe('cancelled');
    expect(order.payment).toEqual({ charged: order.total, refunded: order.total });
    expectMoneyConserved(order);
    expect(order.notifications.filter((n) => n.kind === 'cancellation')).toHaveLength(1);
    expect(order.status).toMatchObject({ inventory: 'compensated', billing: 'compensated', notification: 'compensated' });
    expect(await stock('DOCK-01')).toEqual(before);
    // The stuck notification message never came; compensation settled it without a confirmation.
    expect(order.notifications.filter((n) => n.kind === 'confirmation')).toHaveLength(0);
  });
});
