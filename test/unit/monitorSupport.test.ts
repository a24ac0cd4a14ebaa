import { HttpRequest, InvocationContext } from '@azure/functions';
import type { OrderDocument, ServiceStatus } from '../../src/domain/order';
import { decideNextStep, DEFAULT_MONITOR_POLICY, monitorSnapshotOf, targetedSends, TIMELINE } from '../../src/domain/monitorPolicy';
import { MAX_SUPPORT_COMPENSATIONS, MAX_SUPPORT_REQUEUES, newOrder } from '../../src/domain/orderState';
import { createLogger } from '../../src/log';
import { sendCancellation } from '../../src/services/notices';
import { republishToService } from '../../src/services/publishing';
import { requestCompensation, requestRequeue } from '../../src/support/actions';
import { recordDeadLetter } from '../../src/support/deadLetters';
import { assertRefundsWork, type CompensationFaultStore } from '../../src/support/faults';
import { sweepMonitors, type ActiveOrder } from '../../src/support/monitorSweep';
import { authorizeSupport, encodeClientPrincipal, parseClientPrincipal, supportAccessFromEnvironment, type SupportPrincipal } from '../../src/support/principal';
import { authorizeSupportRequest, handleFaults, handleParkedDeadLetters, handleSupportAction, type SupportHttpEnvironment } from '../../src/support/routes';
import { memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });
const ana: SupportPrincipal = { name: 'ana@contoso.com', roles: ['support'], source: 'app-service-auth' };

function seedOrder(deps: MemoryDependencies, over: Partial<OrderDocument> = {}, status: Partial<Record<string, ServiceStatus>> = {}): OrderDocument {
  const order = {
    ...newOrder({
      id: 'order-1',
      eventId: 'event-1',
      correlationId: 'corr-1',
      customerId: 'c-1',
      items: [{ sku: 'sku-1', quantity: 1, unitPrice: 10 }],
      total: 10,
      now: '2026-01-01T00:00:00.000Z',
    }),
    ...over,
  };
  order.status = { ...order.status, ...status };
  deps.orders.docs.set(order.id, structuredClone(order));
  return order;
}

describe('support principal', () => {
  it('reads name and roles from an App Service Authentication header', () => {
    const p = parseClientPrincipal(encodeClientPrincipal('ana@contoso.com', ['support', 'reader']));
    expect(p).toEqual({ name: 'ana@contoso.com', roles: ['support', 'reader'], source: 'app-service-auth' });
  });

  it.each([
    ['a signed-in support user', encodeClientPrincipal('ana@contoso.com', ['support']), undefined, true, { ok: true }],
    ['a signed-in user without the role', encodeClientPrincipal('bob@contoso.com', ['reader']), undefined, true, { ok: false, status: 403 }],
    ['an unreadable header', 'not-base64-json', undefined, true, { ok: false, status: 401 }],
    ['nobody, in Azure (no development principal)', undefined, undefined, true, { ok: false, status: 401 }],
    ['nobody, locally with a development principal', undefined, 'support@localhost', false, { ok: true }],
    // The header wins over the development principal: a real principal is never upgraded.
    ['a user without the role, locally', encodeClientPrincipal('bob@contoso.com', []), 'support@localhost', false, { ok: false, status: 403 }],
    // Nothing strips the header without App Service Authentication: a forged support role is refused.
    ['a forged support header without App Service Authentication', encodeClientPrincipal('eve@example.com', ['support']), undefined, false, { ok: false, status: 401 }],
  ])('%s', (_name, header, dev, appServiceAuth, expected) => {
    expect(authorizeSupport(header, dev, appServiceAuth)).toMatchObject(expected);
  });

  it('tells a browser where to sign in only where App Service Authentication can sign it in', () => {
    const request = new HttpRequest({ method: 'GET', url: 'http://x/api/support/faults' });
    expect(authorizeSupportRequest(request, { appServiceAuthEnabled: true })).toMatchObject({
      status: 401,
      jsonBody: { type: '/problems/unauthenticated', signIn: '/.auth/login/aad' },
    });
    const off = authorizeSupportRequest(request, { appServiceAuthEnabled: false }) as { status: number; jsonBody: Record<string, unknown> };
    expect(off.status).toBe(401);
    expect(off.jsonBody).not.toHaveProperty('signIn');
    // Signed in without the role: signing in again changes nothing.
    const bob = new HttpRequest({ method: 'GET', url: 'http://x/api/support/faults', headers: { 'x-ms-client-principal': encodeClientPrincipal('bob@contoso.com', []) } });
    const forbidden = authorizeSupportRequest(bob, { appServiceAuthEnabled: true }) as { status: number; jsonBody: Record<string, unknown> };
    expect(forbidden.status).toBe(403);
    expect(forbidden.jsonBody).not.toHaveProperty('signIn');
  });

  it('acts as the development principal with the support role', () => {
    expect(authorizeSupport(undefined, 'support@localhost')).toEqual({
      ok: true,
      principal: { name: 'support@localhost', roles: ['support'], source: 'development' },
    });
  });
});

describe('requestRequeue', () => {
  it.each([
    ['deadlettered', 202],
    ['processing', 202],
    ['pending', 202],
    ['done', 409],
    ['failed', 409],
    ['compensated', 409],
  ] as [ServiceStatus, number][])('billing %s -> %d', async (billing, expected) => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing });
    const result = await requestRequeue('order-1', ana, { deps, monitor, log: silent });
    expect(result.kind).toBe(expected === 202 ? 'accepted' : 'notApplicable');
  });

  it.each(['compensating', 'completed', 'cancelled', 'attention'] as const)('a %s order cannot be requeued', async (state) => {
    const deps = memoryDependencies();
    seedOrder(deps, { state }, { billing: 'deadlettered' });
    const result = await requestRequeue('order-1', ana, { deps, monitor: new RecordingMonitor(), log: silent });
    expect(result).toMatchObject({ kind: 'notApplicable', state });
  });

  it('records who asked once, wakes the running monitor, and a repeat records nothing new', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    await monitor.start('order-1', { orderId: 'order-1', correlationId: 'corr-1' });
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const first = await requestRequeue('order-1', ana, { deps, monitor, log: silent });
    const second = await requestRequeue('order-1', { ...ana, name: 'bo@contoso.com' }, { deps, monitor, log: silent });
    expect(first).toMatchObject({ kind: 'accepted', body: { action: 'requeue', accepted: true, alreadyRequested: false, monitor: 'woken' } });
    expect(second).toMatchObject({ kind: 'accepted', body: { alreadyRequested: true, requestedBy: 'ana@contoso.com' } });
    const entries = deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'support-action');
    expect(entries).toEqual([expect.objectContaining({ detail: 'requeue', actor: 'ana@contoso.com' })]);
    expect(monitor.changes).toEqual([
      { orderId: 'order-1', change: { source: 'support', action: 'requeue', by: 'ana@contoso.com' } },
      { orderId: 'order-1', change: { source: 'support', action: 'requeue', by: 'bo@contoso.com' } },
    ]);
  });

  it('a repeat is answered with the pending request: its person and its time, not the repeat\'s', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const first = await requestRequeue('order-1', ana, { deps, monitor, log: silent });
    const again = await requestRequeue('order-1', { ...ana, name: 'bo@contoso.com' }, { deps, monitor, log: silent });
    if (first.kind !== 'accepted' || again.kind !== 'accepted') throw new Error('both accepted');
    expect(again.body).toMatchObject({ alreadyRequested: true, requestedBy: 'ana@contoso.com', requestedAt: first.body.requestedAt });
  });

  it('is refused once compensation is asked for: billing is about to be refunded, not retried', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    expect(await requestCompensation('order-1', { ...ana, name: 'bo@contoso.com' }, { deps, monitor, log: silent })).toMatchObject({ kind: 'accepted' });
    const result = await requestRequeue('order-1', ana, { deps, monitor, log: silent });
    expect(result).toMatchObject({ kind: 'notApplicable', detail: 'compensation was asked for by bo@contoso.com; the order is being cancelled' });
    const requests = deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'support-action');
    expect(requests.map((e) => e.detail)).toEqual(['compensate']);
  });

  it('requests sent at once (a double click) are recorded once: one is new, the others find it pending', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    await monitor.start('order-1', { orderId: 'order-1', correlationId: 'corr-1' });
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const results = await Promise.all(Array.from({ length: 5 }, () => requestRequeue('order-1', ana, { deps, monitor, log: silent })));
    expect(results.map((r) => r.kind === 'accepted' && r.body.alreadyRequested).sort()).toEqual([false, true, true, true, true]);
    expect(deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'support-action')).toHaveLength(1);
  });

  it('starts the monitor again when it is not running', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const result = await requestRequeue('order-1', ana, { deps, monitor, log: silent });
    expect(result).toMatchObject({ body: { monitor: 'started' } });
    expect(monitor.instances.get('order-1')).toEqual({ orderId: 'order-1', correlationId: 'corr-1' });
  });

  it(`a new request after ${MAX_SUPPORT_REQUEUES} carried out is refused, so a loop of requests cannot grow the order without end; a repeat of a pending one is still answered`, async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    for (let n = 1; n <= MAX_SUPPORT_REQUEUES; n++) {
      // The request, then what the monitor records carrying it out, then billing dead-letters again.
      expect(await requestRequeue('order-1', ana, { deps, monitor, log: silent })).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
      if (n < MAX_SUPPORT_REQUEUES) deps.orders.docs.get('order-1')!.timeline.push({ at: deps.now(), kind: 'requeued', service: 'billing', actor: ana.name, detail: `attempt ${n}` });
    }
    // The last request is still pending: asking again is the same request.
    expect(await requestRequeue('order-1', ana, { deps, monitor, log: silent })).toMatchObject({ kind: 'accepted', body: { alreadyRequested: true } });
    deps.orders.docs.get('order-1')!.timeline.push({ at: deps.now(), kind: 'requeued', service: 'billing', actor: ana.name, detail: `attempt ${MAX_SUPPORT_REQUEUES}` });
    const refused = await requestRequeue('order-1', ana, { deps, monitor, log: silent });
    expect(refused).toEqual({
      kind: 'notApplicable',
      detail: `billing was requeued ${MAX_SUPPORT_REQUEUES} times on request, the most an order takes; compensate the order instead`,
      state: 'processing',
      status: { inventory: 'pending', billing: 'deadlettered', notification: 'pending' },
    });
    expect(deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'support-action')).toHaveLength(MAX_SUPPORT_REQUEUES);
    expect(await requestCompensation('order-1', ana, { deps, monitor, log: silent })).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
  });

  it('an unknown order is not found', async () => {
    const result = await requestRequeue('nope', ana, { deps: memoryDependencies(), monitor: new RecordingMonitor(), log: silent });
    expect(result).toEqual({ kind: 'notFound' });
  });
});

describe('requestCompensation', () => {
  it('a completed order is not compensated', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'completed' }, { inventory: 'done', billing: 'done', notification: 'done' });
    const result = await requestCompensation('order-1', ana, { deps, monitor: new RecordingMonitor(), log: silent });
    expect(result).toMatchObject({ kind: 'notApplicable', detail: expect.stringContaining('completed') });
  });

  it('an order with every service done is about to complete: not compensated', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'processing' }, { inventory: 'done', billing: 'done', notification: 'done' });
    const result = await requestCompensation('order-1', ana, { deps, monitor: new RecordingMonitor(), log: silent });
    expect(result.kind).toBe('notApplicable');
  });

  it('an active order: recorded once, repeat is a no-op', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    await monitor.start('order-1', { orderId: 'order-1', correlationId: 'corr-1' });
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const first = await requestCompensation('order-1', ana, { deps, monitor, log: silent });
    const again = await requestCompensation('order-1', ana, { deps, monitor, log: silent });
    expect(first).toMatchObject({ kind: 'accepted', body: { action: 'compensate', alreadyRequested: false, monitor: 'woken' } });
    expect(again).toMatchObject({ kind: 'accepted', body: { alreadyRequested: true, requestedBy: 'ana@contoso.com' } });
    expect(deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'support-action')).toHaveLength(1);
  });

  it('requests sent at once are recorded once, and an attention order is moved back once', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'attention' }, { billing: 'done', inventory: 'compensated' });
    const results = await Promise.all(Array.from({ length: 5 }, () => requestCompensation('order-1', ana, { deps, monitor, log: silent })));
    expect(results.map((r) => r.kind === 'accepted' && r.body.alreadyRequested).sort()).toEqual([false, true, true, true, true]);
    const order = deps.orders.docs.get('order-1')!;
    expect(order.timeline.filter((e) => e.kind === 'support-action')).toHaveLength(1);
    expect(order.state).toBe('compensating');
  });

  it('an attention order: the request and the state that lets the monitor act on it are one write, so a crash keeps both or neither', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'attention' }, { billing: 'done', inventory: 'compensated' });
    // The host dies right after its first write to the order: every later call fails.
    const orders = deps.orders;
    const crashAfter = <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
      async (...args: A): Promise<R> => {
        const result = await write.apply(orders, args);
        orders.failWith = new Error('host killed');
        return result;
      };
    orders.appendTimeline = crashAfter(orders.appendTimeline);
    orders.transitionState = crashAfter(orders.transitionState);
    await requestCompensation('order-1', ana, { deps, monitor: new RecordingMonitor(), log: silent }).catch(() => undefined);
    orders.failWith = undefined;
    const order = orders.docs.get('order-1')!;
    const asked = order.timeline.some((e) => e.kind === TIMELINE.supportAction && e.detail === 'compensate');
    // Recorded and left in attention, nothing would ever carry the request out.
    expect({ asked, state: order.state }).toEqual({ asked: true, state: 'compensating' });
  });

  it('a repeat while a later request runs names that request, with its time', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    const asked = (at: string, actor: string) => ({ at, kind: TIMELINE.supportAction, detail: 'compensate', actor });
    // Alice's compensation ended in attention; Bob asked again and it runs.
    seedOrder(deps, {
      state: 'compensating',
      timeline: [
        asked('2026-01-01T00:00:01.000Z', 'alice@contoso.com'),
        { at: '2026-01-01T00:00:02.000Z', kind: TIMELINE.compensationStarted, actor: 'alice@contoso.com', detail: 'run 1' },
        { at: '2026-01-01T00:00:03.000Z', kind: TIMELINE.attention, reason: 'compensation could not finish: refundPayment' },
        asked('2026-01-01T00:00:04.000Z', 'bob@contoso.com'),
      ],
    }, { billing: 'deadlettered' });
    const carol = await requestCompensation('order-1', { ...ana, name: 'carol@contoso.com' }, { deps, monitor, log: silent });
    expect(carol).toMatchObject({ kind: 'accepted', body: { alreadyRequested: true, requestedBy: 'bob@contoso.com', requestedAt: '2026-01-01T00:00:04.000Z' } });
  });

  it("a repeat on the monitor's own compensation says the monitor began it, and when", async () => {
    const deps = memoryDependencies();
    seedOrder(deps, {
      state: 'cancelled',
      timeline: [{ at: '2026-01-01T00:00:02.000Z', kind: TIMELINE.compensationStarted, actor: 'monitor', detail: 'run 1' }],
    });
    const result = await requestCompensation('order-1', ana, { deps, monitor: new RecordingMonitor(), log: silent });
    expect(result).toMatchObject({ kind: 'accepted', body: { alreadyRequested: true, requestedBy: 'monitor', requestedAt: '2026-01-01T00:00:02.000Z' } });
  });

  it('a cancelled order: accepted as already done, monitor untouched', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'cancelled' });
    const result = await requestCompensation('order-1', ana, { deps, monitor, log: silent });
    expect(result).toMatchObject({ kind: 'accepted', body: { alreadyRequested: true, monitor: 'untouched' } });
    expect(monitor.instances.size).toBe(0);
  });

  it(`an attention order asked to compensate ${MAX_SUPPORT_COMPENSATIONS} times already is refused, and stays in attention`, async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'attention' }, { billing: 'done', inventory: 'compensated' });
    for (let n = 1; n <= MAX_SUPPORT_COMPENSATIONS; n++) {
      expect(await requestCompensation('order-1', ana, { deps, monitor, log: silent })).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false } });
      // The run fails again: the order is back in attention.
      const doc = deps.orders.docs.get('order-1')!;
      doc.timeline.push({ at: deps.now(), kind: 'compensation-started', detail: `run ${n}`, actor: ana.name }, { at: deps.now(), kind: 'attention', actor: 'monitor' });
      doc.state = 'attention';
    }
    const refused = await requestCompensation('order-1', ana, { deps, monitor, log: silent });
    expect(refused).toMatchObject({
      kind: 'notApplicable',
      detail: `compensation was asked for ${MAX_SUPPORT_COMPENSATIONS} times, the most an order takes; settle what failed outside the system (the timeline names it)`,
      state: 'attention',
    });
    expect(deps.orders.docs.get('order-1')!.state).toBe('attention');
    expect(deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'support-action')).toHaveLength(MAX_SUPPORT_COMPENSATIONS);
  });

  it('an attention order goes back to compensating and its monitor is started again', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'attention' }, { billing: 'done', inventory: 'compensated' });
    const result = await requestCompensation('order-1', ana, { deps, monitor, log: silent });
    expect(result).toMatchObject({ kind: 'accepted', body: { alreadyRequested: false, monitor: 'started' } });
    expect(deps.orders.docs.get('order-1')!.state).toBe('compensating');
  });
});

describe('the refund fault switch', () => {
  const on: CompensationFaultStore = { refundFails: async () => true, setRefundFails: async () => undefined };
  it('fails a refund the gateway would be asked for, and not one an earlier run already made', async () => {
    const deps = memoryDependencies();
    await expect(assertRefundsWork(deps, on)).rejects.toThrow('refund fault switch on');
    await expect(assertRefundsWork(deps, on, async () => false)).rejects.toThrow('refund fault switch on');
    await expect(assertRefundsWork(deps, on, async () => true)).resolves.toBeUndefined();
  });
});

describe('recordDeadLetter', () => {
  const body = (orderId: string) => ({
    specversion: '1.0',
    id: 'event-1',
    source: '/order-saga/orders',
    type: 'OrderCreated',
    subject: orderId,
    datacontenttype: 'application/json',
    time: '2026-01-01T00:00:00.000Z',
    data: { orderId, customerId: 'c-1', items: [{ sku: 'sku-1', quantity: 1, unitPrice: 10 }], total: 10, currency: 'EUR', correlationId: 'corr-1' },
  });

  it('marks billing deadlettered with reason and delivery count, wakes the monitor, once per message', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing: 'processing' });
    const message = { body: JSON.stringify(body('order-1')), messageId: 'event-1', deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' };
    expect((await recordDeadLetter('billing', message, { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect((await recordDeadLetter('billing', message, { deps, monitor, log: silent })).outcome).toBe('duplicate');
    const order = deps.orders.docs.get('order-1')!;
    expect(order.status.billing).toBe('deadlettered');
    expect(order.statusReason.billing).toBe('MaxDeliveryCountExceeded');
    expect(order.timeline.filter((e) => e.kind === 'deadlettered')).toEqual([
      expect.objectContaining({ service: 'billing', deliveryCount: 3, reason: 'MaxDeliveryCountExceeded' }),
    ]);
    expect(monitor.changes).toHaveLength(1);
  });

  it("records a message whose id is the start of one recorded before, which is not a repeat of it", async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing: 'processing' });
    const message = (messageId: string) => ({ body: JSON.stringify(body('order-1')), messageId, deadLetterReason: 'MaxDeliveryCountExceeded' });
    // The sweep can come to an older message last: the event itself after a resend of it, say.
    expect((await recordDeadLetter('billing', message('event-1:billing:10'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['deadlettered'], to: 'processing' });
    expect((await recordDeadLetter('billing', message('event-1:billing:1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['deadlettered'], to: 'processing' });
    expect((await recordDeadLetter('billing', message('event-1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect((await recordDeadLetter('billing', message('event-1:billing:1'), { deps, monitor, log: silent })).outcome).toBe('duplicate');
    expect(deps.orders.docs.get('order-1')!.status.billing).toBe('deadlettered');
  });

  /** An order whose monitor sent its event again to `service` (send 1) after it stayed pending. */
  function orderResentTo(service: 'inventory' | 'billing' | 'notification'): MemoryDependencies {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'processing' }, { [service]: 'pending' });
    deps.orders.docs.get('order-1')!.timeline.push({
      at: '2026-01-01T00:00:05.000Z',
      kind: 'republished',
      service,
      actor: 'monitor',
      reason: `stuck (attempt 1): ${service} pending for 61 s`,
      detail: `attempt 1, message event-1:${service}:1`,
    });
    return deps;
  }
  const lastDeadLetter = (messageId: string) => ({ body: JSON.stringify(body('order-1')), messageId, deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' });

  it('a send written twice (two copies of one step, one message) is one send: its own dead-letter counts, and the monitor counts one republish', async () => {
    const deps = orderResentTo('billing');
    const order = deps.orders.docs.get('order-1')!;
    order.timeline.push({ ...order.timeline.at(-1)!, at: '2026-01-01T00:00:06.000Z' });
    expect(targetedSends(order.timeline, 'billing')).toBe(1);
    expect(monitorSnapshotOf(order).republishes.billing).toBe(1);
    // Counted by its entries, a second send would seem in play, and this dead-letter only noted.
    const monitor = new RecordingMonitor();
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect(deps.orders.docs.get('order-1')!.status.billing).toBe('deadlettered');
  });

  it('two copies of one send, the second reading the order before the first recorded it, record it once', async () => {
    const deps = orderResentTo('billing');
    const readBefore = structuredClone(deps.orders.docs.get('order-1')!);
    // Each copy sends attempt 2 (the topic drops the second) and records it from its own read.
    await republishToService(readBefore, 'billing', 2, 'billing dead-lettered', deps);
    // A delivery writes in between, so the second copy's read is two entries behind.
    await deps.orders.appendTimeline('order-1', { at: '2026-01-01T00:00:07.000Z', kind: 'delivery', service: 'billing', deliveryCount: 1 });
    await republishToService(readBefore, 'billing', 2, 'billing dead-lettered', deps);
    const entries = deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'republished');
    expect(entries.map((e) => e.detail)).toEqual(['attempt 1, message event-1:billing:1', 'attempt 2, message event-1:billing:2']);
    expect(deps.publisher.sent.map((m) => m.messageId)).toEqual(['event-1:billing:2']);
  });

  it('records a send also when the order changes under each of its reads: the next send is numbered from the sends recorded', async () => {
    const deps = orderResentTo('billing');
    const append = deps.orders.appendTimeline.bind(deps.orders);
    // Billing's deliveries write the order between every read and write of the record.
    deps.orders.appendTimeline = async (id, entry, options) => {
      if (options?.whenTimelineLength === undefined) return append(id, entry);
      await append(id, { at: '2026-01-01T00:00:07.000Z', kind: 'attempt-failed', service: 'billing' });
      return false;
    };
    await republishToService(deps.orders.docs.get('order-1')!, 'billing', 2, 'requeue 1', deps);
    deps.orders.appendTimeline = append;
    const order = deps.orders.docs.get('order-1')!;
    expect(order.timeline.filter((e) => e.kind === 'republished').map((e) => e.detail)).toEqual(['attempt 1, message event-1:billing:1', 'attempt 2, message event-1:billing:2']);
    expect(targetedSends(order.timeline, 'billing')).toBe(2);
  });

  it("an older send's dead-letter found after the monitor sent a newer one is only noted: the newer message is in play", async () => {
    const deps = orderResentTo('billing');
    const monitor = new RecordingMonitor();
    // The event itself, recorded late by the sweep: billing stays pending, the monitor is not woken.
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1'), { deps, monitor, log: silent })).outcome).toBe('noted');
    expect(deps.orders.docs.get('order-1')!.status.billing).toBe('pending');
    expect(deps.orders.docs.get('order-1')!.timeline.at(-1)).toMatchObject({ kind: 'deadlettered', detail: 'message event-1; send 1 to billing is in play' });
    expect(monitor.changes).toHaveLength(0);
    // The newer send's own dead-letter is the one that counts.
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect(deps.orders.docs.get('order-1')!.status.billing).toBe('deadlettered');
    expect(monitor.changes).toHaveLength(1);
    // The requeue's backoff runs from that dead-letter, not from a later note of an older message.
    const recordedAt = deps.orders.docs.get('order-1')!.timeline.at(-1)!.at;
    deps.orders.docs.get('order-1')!.timeline.push({ at: '2026-01-01T01:00:00.000Z', kind: 'deadlettered', service: 'billing', detail: 'message event-1:billing:0; send 1 to billing is in play' });
    expect(monitorSnapshotOf(deps.orders.docs.get('order-1')!).billingDeadLetteredAt).toBe(recordedAt);
  });

  it("an older send's dead-letter after the newer send dead-lettered first is recorded: nothing else is in play", async () => {
    const deps = orderResentTo('billing');
    const monitor = new RecordingMonitor();
    const order = () => deps.orders.docs.get('order-1')!;
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    // The event's own last delivery, still running, claims billing again after that and fails.
    await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['deadlettered'], to: 'processing' });
    // Only noted, billing would stay `processing` with no message left until the monitor found it stuck.
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect(order().status.billing).toBe('deadlettered');
    expect(monitorSnapshotOf(order()).billingDeadLetteredAt).toBe(order().timeline.at(-1)!.at);
    expect(monitor.changes).toHaveLength(2);
  });

  it("an older send's dead-letter is only noted while any send after it is still in play, not only the newest", async () => {
    const deps = orderResentTo('billing');
    const order = deps.orders.docs.get('order-1')!;
    order.timeline.push({ ...order.timeline.at(-1)!, at: '2026-01-01T00:00:06.000Z', detail: 'attempt 2, message event-1:billing:2' });
    const monitor = new RecordingMonitor();
    await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['pending'], to: 'processing' });
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:2'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['deadlettered'], to: 'processing' });
    // Send 1 has not dead-lettered: it may still be delivered.
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1'), { deps, monitor, log: silent })).outcome).toBe('noted');
    expect(deps.orders.docs.get('order-1')!.timeline.at(-1)).toMatchObject({ detail: 'message event-1; send 1 to billing is in play' });
    expect(deps.orders.docs.get('order-1')!.status.billing).toBe('processing');
  });

  /** Send 1 to billing dead-lettered, then the monitor's requeue wrote its `requeued` entry (billing `pending` again), its send not yet recorded. */
  async function requeuedAfterSendOneDeadLettered(detail: string): Promise<{ deps: MemoryDependencies; monitor: RecordingMonitor; requeuedOrder: OrderDocument }> {
    const deps = orderResentTo('billing');
    const monitor = new RecordingMonitor();
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    const requeued = { at: '2026-01-01T00:00:08.000Z', kind: TIMELINE.requeued, service: 'billing' as const, actor: 'monitor', detail };
    const requeuedOrder = await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['deadlettered'], to: 'pending', timeline: requeued });
    return { deps, monitor, requeuedOrder: requeuedOrder! };
  }

  // Requeues name the message they send in their entry; entries written before they did name none.
  it.each(['attempt 1, message event-1:billing:2', 'attempt 1'])(
    "an older send's dead-letter while a requeue is making its send (billing marked pending, the send not yet recorded) is only noted: that send is in play (requeue entry %j)",
    async (detail) => {
      const { deps, monitor, requeuedOrder } = await requeuedAfterSendOneDeadLettered(detail);
      const order = () => deps.orders.docs.get('order-1')!;
      // Before send 2 is recorded, the event's own last delivery claims billing and fails.
      await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['pending'], to: 'processing' });
      expect((await recordDeadLetter('billing', lastDeadLetter('event-1'), { deps, monitor, log: silent })).outcome).toBe('noted');
      expect(order().timeline.at(-1)).toMatchObject({ detail: 'message event-1; send 2 to billing is in play' });
      expect(order().status.billing).toBe('processing');
      await republishToService(requeuedOrder, 'billing', 2, 'requeue 1', deps);
      // Marked dead-lettered, billing would have the monitor requeue again while send 2 is on its way.
      const snapshot = monitorSnapshotOf(order());
      expect(snapshot.billingDeadLetteredAt).toBeUndefined();
      expect(decideNextStep(snapshot, { ...DEFAULT_MONITOR_POLICY, requeueBackoffBaseMs: 0 }, new Date('2030-01-01T00:00:00.000Z')).kind).not.toBe('requeueBilling');
      // Once send 2 is recorded and dead-letters too, nothing is left in play.
      expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:2'), { deps, monitor, log: silent })).outcome).toBe('recorded');
      expect(order().status.billing).toBe('deadlettered');
    },
  );

  it("a requeue's message that never went out is not in play once a later send is recorded: an older send's dead-letter is recorded", async () => {
    // The requeue names send 2, and Service Bus fails it every time; the monitor later finds billing
    // stuck and sends it again as send 3, which is recorded and dead-letters.
    const { deps, monitor } = await requeuedAfterSendOneDeadLettered('attempt 1, message event-1:billing:2');
    const order = () => deps.orders.docs.get('order-1')!;
    expect(targetedSends(order().timeline, 'billing')).toBe(2);
    await republishToService(order(), 'billing', 3, 'stuck (attempt 2): billing pending for 301 s', deps);
    expect(deps.publisher.sent.map((m) => m.messageId)).toEqual(['event-1:billing:3']);
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:3'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    // The event's own last delivery claims billing again and fails: send 2 never existed to wait for.
    await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['deadlettered'], to: 'processing' });
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect(order().status.billing).toBe('deadlettered');
  });

  it("a stuck republish's message that never went out is not in play once a later send is recorded: an older send's dead-letter is recorded", async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { billing: 'processing' });
    const order = () => deps.orders.docs.get('order-1')!;
    // The monitor names send 1 to a stuck billing, and Service Bus fails it every time; a person's
    // requeue then sends 2, which is recorded and dead-letters.
    const stuck = 'stuck (attempt 1): billing processing for 60 s';
    await deps.orders.appendTimeline('order-1', { at: '2026-01-01T00:01:00.000Z', kind: TIMELINE.republishing, service: 'billing', actor: 'monitor', reason: stuck, detail: 'attempt 1, message event-1:billing:1' });
    await deps.orders.appendTimeline('order-1', { at: '2026-01-01T00:02:00.000Z', kind: TIMELINE.requeued, service: 'billing', actor: 'ana@contoso.com', detail: 'attempt 1, message event-1:billing:2' });
    await republishToService(order(), 'billing', 2, 'requeue 1 by ana@contoso.com', deps);
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1:billing:2'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    // The event's own last delivery claims billing again and fails: send 1 never existed to wait for.
    await deps.orders.transitionStatus('order-1', { service: 'billing', from: ['deadlettered'], to: 'processing' });
    expect((await recordDeadLetter('billing', lastDeadLetter('event-1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect(order().status.billing).toBe('deadlettered');
  });

  it("an inventory send's dead-letter only noted does not make inventory read as dead-lettered to the monitor: the newer send is in play", async () => {
    const deps = orderResentTo('inventory');
    const monitor = new RecordingMonitor();
    expect((await recordDeadLetter('inventory', lastDeadLetter('event-1'), { deps, monitor, log: silent })).outcome).toBe('noted');
    // Before, the noted entry was the service's latest, and the monitor republished after the
    // requeue backoff (5 s) rather than the stuck threshold, using up a republish for nothing.
    const afterNote = monitorSnapshotOf(deps.orders.docs.get('order-1')!);
    expect(afterNote.deadLettered).toBeUndefined();
    // Nor is it progress: the wait before a stuck inventory is sent again still runs from the resend.
    expect(afterNote.lastProgressAt.inventory).toBe('2026-01-01T00:00:05.000Z');
    expect((await recordDeadLetter('inventory', lastDeadLetter('event-1:inventory:1'), { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect(monitorSnapshotOf(deps.orders.docs.get('order-1')!).deadLettered).toEqual(['inventory']);
  });

  it('a billing already done is only noted, never turned back to deadlettered', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'completed' }, { inventory: 'done', billing: 'done', notification: 'done' });
    const outcome = await recordDeadLetter('billing', { body: body('order-1'), messageId: 'event-1:billing:1' }, { deps, monitor, log: silent });
    expect(outcome.outcome).toBe('noted');
    expect(deps.orders.docs.get('order-1')!.status.billing).toBe('done');
    expect(monitor.changes).toHaveLength(0);
  });

  it("settles the stock of a completed order whose completer's message dead-lettered before it could, and gives back a late hold of a cancelled one", async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    const order = seedOrder(deps, { state: 'completed', stockHeldBy: { 'MOUSE-01': 'd-1' }, items: [{ sku: 'MOUSE-01', quantity: 2, unitPrice: 10 }] }, {
      inventory: 'done',
      billing: 'done',
      notification: 'done',
    });
    expect(await deps.inventory.reserve('MOUSE-01', order.id, 2, 'd-1')).toBe('reserved');
    const before = (await deps.inventory.get('MOUSE-01'))!;
    expect((await recordDeadLetter('inventory', { body: body('order-1'), messageId: 'event-1' }, { deps, monitor, log: silent })).outcome).toBe('noted');
    const after = (await deps.inventory.get('MOUSE-01'))!;
    expect(after.holds).toEqual({});
    // Sold, not given back.
    expect([after.available, after.reserved]).toEqual([before.available, before.reserved]);

    // A cancelled order: a hold taken after compensation gave its stock back goes back too.
    deps.orders.docs.get('order-1')!.state = 'cancelled';
    deps.orders.docs.get('order-1')!.status.inventory = 'compensated';
    expect(await deps.inventory.reserve('MOUSE-01', order.id, 2, 'd-late')).toBe('reserved');
    expect((await recordDeadLetter('billing', { body: body('order-1'), messageId: 'event-1' }, { deps, monitor, log: silent })).outcome).toBe('noted');
    const released = (await deps.inventory.get('MOUSE-01'))!;
    expect(released.holds).toEqual({});
    expect([released.available, released.reserved]).toEqual([after.available, after.reserved]);
    expect(monitor.changes).toHaveLength(0);
  });

  it('gives back a hold the last inventory delivery took after compensation released the stock, when it is found before the order is cancelled', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    // The last delivery Service Bus allows claimed before compensation began; the run's release
    // marked inventory compensated, then the delivery reserved, and its host died.
    const order = seedOrder(deps, { state: 'compensating', items: [{ sku: 'MOUSE-01', quantity: 2, unitPrice: 10 }] }, { inventory: 'compensated' });
    const before = (await deps.inventory.get('MOUSE-01'))!;
    expect(await deps.inventory.reserve('MOUSE-01', order.id, 2, 'd-last')).toBe('reserved');
    const message = { body: body('order-1'), messageId: 'event-1', deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' };
    expect((await recordDeadLetter('inventory', message, { deps, monitor, log: silent })).outcome).toBe('noted');
    // The run's release is past, and once the order is cancelled the sweep only takes the message
    // out of the queue: this was the one chance to give the hold back.
    const after = (await deps.inventory.get('MOUSE-01'))!;
    expect(after.holds).toEqual({});
    expect([after.available, after.reserved]).toEqual([before.available, before.reserved]);
  });

  it.each([
    // Compensation began before the redeliveries, so none was claimed, and the last one died too.
    ['compensating', 'noted'],
    // Every delivery died; the monitor may compensate (billing failed too) rather than send it again.
    ['processing', 'recorded'],
  ] as const)('puts on the order a confirmation that went out before the last notification delivery died (order %s)', async (state, outcome) => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    // A delivery sent the confirmation and its host died before its `done`.
    seedOrder(deps, { state }, { notification: 'processing' });
    const at = '2026-01-01T00:00:03.000Z';
    await deps.notifications.send({ id: 'order-1:confirmation', orderId: 'order-1', kind: 'confirmation', customerId: 'c-1', message: 'confirmed', at });
    const message = { body: body('order-1'), messageId: 'event-1', deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' };
    expect((await recordDeadLetter('notification', message, { deps, monitor, log: silent })).outcome).toBe(outcome);
    await recordDeadLetter('notification', message, { deps, monitor, log: silent });
    // Compensation ends it; nothing comes back for that message any more.
    await sendCancellation((await deps.orders.get('order-1'))!, deps);
    // The customer got the confirmation: the order shows it, once.
    expect(deps.orders.docs.get('order-1')!.notifications.map((n) => n.kind).sort()).toEqual(['cancellation', 'confirmation']);
  });

  it("puts a completed order's holds right on the next sweep when Cosmos DB did not serve that the first time: the noted dead-letter is not taken for done", async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'completed', stockHeldBy: { 'MOUSE-01': 'd-1' }, items: [{ sku: 'MOUSE-01', quantity: 2, unitPrice: 10 }] }, {
      inventory: 'done',
      billing: 'done',
      notification: 'done',
    });
    expect(await deps.inventory.reserve('MOUSE-01', 'order-1', 2, 'd-1')).toBe('reserved');
    const settle = deps.inventory.settle.bind(deps.inventory);
    let throttled = 1;
    deps.inventory.settle = async (...args: Parameters<typeof settle>) => {
      if (throttled-- > 0) throw Object.assign(new Error('Request rate is large'), { code: 429, statusCode: 429 });
      return settle(...args);
    };
    const env = { deps, monitor, log: silent };
    const message = { body: body('order-1'), messageId: 'event-1' };
    // The consumer's recording fails (throttled): the message stays for the sweep.
    await expect(recordDeadLetter('inventory', message, env)).rejects.toThrow('Request rate is large');
    // The sweep finds it again, and the order's stock gets settled then.
    await recordDeadLetter('inventory', message, env);
    expect((await deps.inventory.get('MOUSE-01'))!.holds).toEqual({});
    // Noted once all the same.
    expect(deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === TIMELINE.deadLettered)).toHaveLength(1);
  });

  it('poison input without an order is kept in the dead-letter archive and logged, once', async () => {
    const deps = memoryDependencies();
    const errors: string[] = [];
    const log = createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(String(line)) });
    const poison = { body: '{not json', messageId: 'm-9', deadLetterReason: 'MaxDeliveryCountExceeded' };
    const outcome = await recordDeadLetter('billing', poison, { deps, monitor: new RecordingMonitor(), log });
    expect(outcome.outcome).toBe('unknown-order');
    expect(errors.join()).toContain('m-9');
    expect([...deps.deadLetters.parked.values()]).toEqual([
      expect.objectContaining({ source: 'orders/Subscriptions/billing-sub/$DeadLetterQueue', messageId: 'm-9', body: '{not json', deadLetterReason: 'MaxDeliveryCountExceeded' }),
    ]);
    // A repeat delivery from the dead-letter queue keeps one copy.
    await recordDeadLetter('billing', poison, { deps, monitor: new RecordingMonitor(), log });
    expect(deps.deadLetters.parked.size).toBe(1);
  });

  it.each(['inventory', 'notification'] as const)(
    '%s: recorded on the timeline with its status left for the republish to claim, monitor woken, once per message',
    async (service) => {
      const deps = memoryDependencies();
      const monitor = new RecordingMonitor();
      seedOrder(deps, { state: 'processing' }, { [service]: 'processing', billing: 'done' });
      const message = { body: body('order-1'), messageId: 'event-1', deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' };
      expect((await recordDeadLetter(service, message, { deps, monitor, log: silent })).outcome).toBe('recorded');
      expect((await recordDeadLetter(service, message, { deps, monitor, log: silent })).outcome).toBe('duplicate');
      const order = deps.orders.docs.get('order-1')!;
      expect(order.status).toEqual({ inventory: 'pending', billing: 'done', notification: 'pending', [service]: 'processing' });
      expect(order.timeline.filter((e) => e.kind === 'deadlettered')).toEqual([
        expect.objectContaining({ service, deliveryCount: 3, reason: 'MaxDeliveryCountExceeded' }),
      ]);
      expect(monitor.changes).toEqual([expect.objectContaining({ orderId: 'order-1', change: expect.objectContaining({ source: 'deadletter', service }) })]);
    },
  );

  it('the same message dead-lettered by two subscriptions is recorded once for each service', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { inventory: 'processing', billing: 'processing' });
    const message = { body: body('order-1'), messageId: 'event-1', deadLetterReason: 'MaxDeliveryCountExceeded' };
    expect((await recordDeadLetter('inventory', message, { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect((await recordDeadLetter('billing', message, { deps, monitor, log: silent })).outcome).toBe('recorded');
    const order = deps.orders.docs.get('order-1')!;
    expect(order.timeline.filter((e) => e.kind === 'deadlettered').map((e) => e.service)).toEqual(['inventory', 'billing']);
    expect(order.status.billing).toBe('deadlettered');
  });

  it.each([
    ['a notification already done', { state: 'processing' as const }, { notification: 'done' as const }],
    ['an order being compensated', { state: 'compensating' as const }, { notification: 'pending' as const }],
  ])('%s: only noted, the monitor is not woken', async (_name, over, status) => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, over, status);
    expect((await recordDeadLetter('notification', { body: body('order-1'), messageId: 'event-1' }, { deps, monitor, log: silent })).outcome).toBe('noted');
    const order = deps.orders.docs.get('order-1')!;
    expect(order.status.notification).toBe(status.notification);
    expect(order.timeline.filter((e) => e.kind === 'deadlettered')).toEqual([expect.objectContaining({ service: 'notification' })]);
    expect(monitor.changes).toHaveLength(0);
  });

  it("inventory's poison input is kept under inventory's dead-letter queue", async () => {
    const deps = memoryDependencies();
    const errors: string[] = [];
    const log = createLogger({ info: () => undefined, warn: () => undefined, error: (line: unknown) => errors.push(String(line)) });
    expect((await recordDeadLetter('inventory', { body: 'x', messageId: 'm-1' }, { deps, monitor: new RecordingMonitor(), log })).outcome).toBe('unknown-order');
    expect(errors.join()).toContain('inventory-deadletter-without-order');
    expect([...deps.deadLetters.parked.values()]).toEqual([
      expect.objectContaining({ source: 'orders/Subscriptions/inventory-sub/$DeadLetterQueue', messageId: 'm-1', body: 'x' }),
    ]);
  });

  it('keeps why each message could not be put on an order', async () => {
    const deps = memoryDependencies();
    const env = { deps, monitor: new RecordingMonitor(), log: silent };
    const missingOrder = '00000000-0000-4000-8000-00000000abcd';
    expect((await recordDeadLetter('billing', { body: body(missingOrder), messageId: 'm-gone' }, env)).outcome).toBe('unknown-order');
    expect((await recordDeadLetter('billing', { body: '{"specversion":', messageId: 'm-cut' }, env)).outcome).toBe('unknown-order');
    // Unreadable, and naming (in its properties) an order that does not exist either: nothing to open.
    expect((await recordDeadLetter('billing', { body: '{"specversion":', messageId: 'm-cut-gone', orderId: missingOrder }, env)).outcome).toBe('unknown-order');
    const kept = Object.fromEntries([...deps.deadLetters.parked.values()].map((p) => [p.messageId, { problem: p.problem, kind: p.kind, orderMissing: p.orderMissing }]));
    expect(kept).toEqual({
      'm-gone': { problem: `order ${missingOrder} does not exist`, kind: 'no-such-order', orderMissing: true },
      'm-cut': { problem: expect.stringMatching(/json/i), kind: 'unreadable', orderMissing: undefined },
      'm-cut-gone': { problem: expect.stringMatching(/json/i), kind: 'unreadable', orderMissing: true },
    });
  });

  it('an unreadable message naming an order is surfaced on it with why, and its body is kept', async () => {
    const deps = memoryDependencies();
    const monitor = new RecordingMonitor();
    seedOrder(deps, { state: 'processing' }, { inventory: 'processing', billing: 'done' });
    const message = { body: '{"truncated":', messageId: 'm-cut', orderId: 'order-1', deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' };
    expect((await recordDeadLetter('inventory', message, { deps, monitor, log: silent })).outcome).toBe('recorded');
    expect((await recordDeadLetter('inventory', message, { deps, monitor, log: silent })).outcome).toBe('duplicate');
    const order = deps.orders.docs.get('order-1')!;
    expect(order.timeline.filter((e) => e.kind === 'deadlettered')).toEqual([
      expect.objectContaining({ service: 'inventory', reason: 'MaxDeliveryCountExceeded (unreadable: body is not JSON)' }),
    ]);
    expect(monitor.changes).toHaveLength(1);
    // Before, only the broker's reason reached the order, and the body was gone with the message.
    expect([...deps.deadLetters.parked.values()]).toEqual([
      expect.objectContaining({ messageId: 'm-cut', orderId: 'order-1', problem: 'body is not JSON', body: '{"truncated":' }),
    ]);
  });

  it('a storage outage throws, so the message stays in the dead-letter queue', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, {}, { billing: 'processing' });
    deps.orders.failWith = new Error('cosmos down');
    await expect(recordDeadLetter('billing', { body: body('order-1'), messageId: 'event-1' }, { deps, monitor: new RecordingMonitor(), log: silent })).rejects.toThrow(
      'cosmos down',
    );
  });
});

describe('sweepMonitors', () => {
  const active = (id: string, createdAt: string): ActiveOrder => ({ id, correlationId: `c-${id}`, state: 'processing', createdAt });

  it('restarts missing and failed monitors only, and walks on with a cursor', async () => {
    const orders = [active('a', '2026-01-01T00:00:01Z'), active('b', '2026-01-01T00:00:02Z'), active('c', '2026-01-01T00:00:03Z')];
    const statuses: Record<string, string | null> = { a: 'Running', b: 'Failed', c: null };
    const started: string[] = [];
    const monitor = {
      start: async (id: string) => {
        started.push(id);
        return 'started' as const;
      },
      status: async (id: string) => (statuses[id] ? { runtimeStatus: statuses[id]!, customStatus: null } : null),
      notifyOrderChanged: async () => undefined,
    };
    const calls: [string, string, number][] = [];
    const source = {
      activeOrders: async (after: string, before: string, limit: number, excluding: readonly string[]) => {
        calls.push([after, before, limit]);
        return orders.filter((o) => o.createdAt >= after && !excluding.includes(o.id)).slice(0, limit);
      },
    };
    const now = new Date('2026-01-01T01:00:00Z');
    const first = await sweepMonitors('', now, { batchSize: 2, graceMs: 30_000 }, { orders: source, monitor, log: silent });
    expect(first).toMatchObject({ checked: 2, restarted: [{ orderId: 'b', previous: 'Failed' }] });
    const second = await sweepMonitors(first.cursor, now, { batchSize: 2, graceMs: 30_000 }, { orders: source, monitor, log: silent });
    expect(second).toEqual({ checked: 1, restarted: [{ orderId: 'c', previous: 'missing' }], cursor: '' });
    expect(started).toEqual(['b', 'c']);
    // Orders younger than the grace period are left to the intake.
    expect(calls[0][1]).toBe('2026-01-01T00:59:30.000Z');
  });
  it('checks every order created in the same millisecond as the last one a run checked', async () => {
    // A burst stamps several orders alike; b, c and d share a time, and a run of 2 ends on b.
    const t = (s: number) => `2026-01-01T00:00:0${s}.000Z`;
    const orders = [active('a', t(1)), active('b', t(2)), active('c', t(2)), active('d', t(2)), active('e', t(3))];
    const seen: string[] = [];
    const monitor = {
      start: async () => 'started' as const,
      status: async (id: string) => {
        seen.push(id);
        return { runtimeStatus: 'Running', customStatus: null };
      },
      notifyOrderChanged: async () => undefined,
    };
    // Cosmos DB orders equal times as it likes: here the reverse of insertion.
    const source = {
      activeOrders: async (from: string, _before: string, limit: number, excluding: readonly string[]) =>
        orders
          .filter((o) => o.createdAt >= from && !excluding.includes(o.id))
          .sort((x, y) => x.createdAt.localeCompare(y.createdAt) || y.id.localeCompare(x.id))
          .slice(0, limit),
    };
    const now = new Date('2026-01-01T01:00:00Z');
    let cursor = '';
    for (let run = 0; run < 6; run++) {
      cursor = (await sweepMonitors(cursor, now, { batchSize: 2, graceMs: 30_000 }, { orders: source, monitor, log: silent })).cursor;
      if (cursor === '') break;
    }
    expect(cursor).toBe('');
    expect([...seen].sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('reaches every order of a millisecond that holds more active orders than a page, and the orders after it', async () => {
    // 520 orders stamped alike, then one a millisecond later; a run checks 50, a query returns at most 500.
    const burst = Array.from({ length: 520 }, (_, i) => active(`o-${String(i).padStart(3, '0')}`, '2026-01-01T00:00:01.000Z'));
    const orders = [...burst, active('later', '2026-01-01T00:00:01.001Z')];
    const seen = new Set<string>();
    const monitor = {
      start: async () => 'started' as const,
      status: async (id: string) => {
        seen.add(id);
        return { runtimeStatus: 'Running', customStatus: null };
      },
      notifyOrderChanged: async () => undefined,
    };
    // As the query does: TOP at most a page, equal times in one order (here by id), the ids asked to be left out left out.
    const source = {
      activeOrders: async (from: string, _before: string, limit: number, excluding: readonly string[] = []) =>
        orders
          .filter((o) => o.createdAt >= from && !excluding.includes(o.id))
          .sort((x, y) => x.createdAt.localeCompare(y.createdAt) || x.id.localeCompare(y.id))
          .slice(0, Math.min(500, limit)),
    };
    const now = new Date('2026-01-01T01:00:00Z');
    let cursor = '';
    let runs = 0;
    do {
      cursor = (await sweepMonitors(cursor, now, { batchSize: 50, graceMs: 30_000 }, { orders: source, monitor, log: silent })).cursor;
      runs++;
    } while (cursor !== '' && runs < 20);
    expect({ runs, seen: seen.size, later: seen.has('later') }).toEqual({ runs: 11, seen: 521, later: true });
  });
});

describe('supportAccessFromEnvironment', () => {
  it('takes the development principal locally, never on App Service, where Easy Auth alone vouches', () => {
    expect(supportAccessFromEnvironment({ SUPPORT_DEV_PRINCIPAL: 'support@localhost' })).toEqual({ developmentPrincipal: 'support@localhost', appServiceAuthEnabled: false });
    const azure = supportAccessFromEnvironment({ SUPPORT_DEV_PRINCIPAL: 'support@localhost', WEBSITE_INSTANCE_ID: 'a1b2c3', WEBSITE_AUTH_ENABLED: 'True' });
    expect(azure).toEqual({ developmentPrincipal: undefined, appServiceAuthEnabled: true });
    expect(authorizeSupport(undefined, azure.developmentPrincipal, azure.appServiceAuthEnabled)).toMatchObject({ ok: false, status: 401 });
  });
});

describe('support HTTP handlers', () => {
  const noFaults: CompensationFaultStore = { refundFails: async () => false, setRefundFails: async () => undefined };
  function env(deps: MemoryDependencies, developmentPrincipal?: string): () => SupportHttpEnvironment {
    // Without a development principal these stand for Azure, where App Service Authentication is on.
    return () => ({ deps, monitor: new RecordingMonitor(), compensationFaults: noFaults, developmentPrincipal, appServiceAuthEnabled: !developmentPrincipal });
  }
  const context = () => new InvocationContext({ functionName: 'test', invocationId: 'i-1', logHandler: () => undefined });
  const post = (url: string, body: unknown, headers: Record<string, string> = {}, params: Record<string, string> = {}) =>
    new HttpRequest({ method: 'POST', url, body: { string: JSON.stringify(body) }, headers: { 'content-type': 'application/json', ...headers }, params });

  it('401 problem without a principal in Azure, 403 without the role', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const anonymous = await handleSupportAction('requeue', post('http://x/api/orders/order-1/requeue', {}, {}, { id: 'order-1' }), context(), env(deps));
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers).toMatchObject({ 'Content-Type': 'application/problem+json' });
    const reader = await handleSupportAction(
      'requeue',
      post('http://x/api/orders/order-1/requeue', {}, { 'x-ms-client-principal': encodeClientPrincipal('bob', ['reader']) }, { id: 'order-1' }),
      context(),
      env(deps),
    );
    expect(reader.status).toBe(403);
  });

  it('202 with the action for a support principal, 409 problem when it does not apply, 404 for an unknown order', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const ok = await handleSupportAction('requeue', post('http://x/api/orders/order-1/requeue', {}, {}, { id: 'order-1' }), context(), env(deps, 'support@localhost'));
    expect(ok).toMatchObject({ status: 202, jsonBody: { orderId: 'order-1', action: 'requeue', accepted: true, requestedBy: 'support@localhost' } });
    deps.orders.docs.get('order-1')!.state = 'completed';
    const late = await handleSupportAction('compensate', post('http://x/api/orders/order-1/compensate', {}, {}, { id: 'order-1' }), context(), env(deps, 'support@localhost'));
    expect(late).toMatchObject({ status: 409, jsonBody: { status: 409, state: 'completed', services: { billing: 'deadlettered' } } });
    const missing = await handleSupportAction('compensate', post('http://x/api/orders/zzz/compensate', {}, {}, { id: 'zzz' }), context(), env(deps, 'support@localhost'));
    expect(missing.status).toBe(404);
  });

  it('answers 503 once Cosmos DB has not answered within the store wait, and records nothing after it; asking again then acts', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    deps.settings.storeWaitMs = 100;
    // A read the SDK keeps retrying through throttling: it ends after the action stopped waiting.
    const read = deps.orders.get.bind(deps.orders);
    const signals: (AbortSignal | undefined)[] = [];
    deps.orders.get = async (id, options) => {
      signals.push(options?.signal);
      await new Promise((resolve) => setTimeout(resolve, 300));
      return read(id);
    };
    const started = Date.now();
    const res = await handleSupportAction('requeue', post('http://x/api/orders/order-1/requeue', {}, {}, { id: 'order-1' }), context(), env(deps, 'support@localhost'));
    expect(Date.now() - started).toBeLessThan(290);
    expect(res).toMatchObject({ status: 503, jsonBody: { status: 503 } });
    expect(res.headers).toMatchObject({ 'Retry-After': expect.any(String) });
    // The read was told to stop retrying, and when it came back nothing was written.
    expect(signals[0]?.aborted).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === 'support-action')).toEqual([]);

    deps.orders.get = read;
    const again = await handleSupportAction('requeue', post('http://x/api/orders/order-1/requeue', {}, {}, { id: 'order-1' }), context(), env(deps, 'support@localhost'));
    expect(again).toMatchObject({ status: 202, jsonBody: { alreadyRequested: false } });
  });

  it('refuses an action a page on another site had the browser send; the portal and clients that are not browsers act', async () => {
    const deps = memoryDependencies();
    seedOrder(deps, { state: 'processing' }, { billing: 'deadlettered' });
    const url = 'http://x/api/orders/order-1/compensate';
    const params = { id: 'order-1' };
    const compensate = (headers: Record<string, string>) =>
      handleSupportAction('compensate', new HttpRequest({ method: 'POST', url, body: { string: '' }, headers, params }), context(), env(deps, 'support@localhost'));
    // A form on another site posts without asking; its cookie signs the support person in.
    expect(await compensate({ 'content-type': 'text/plain', 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' })).toMatchObject({
      status: 403,
      jsonBody: { type: '/problems/cross-site-request' },
    });
    for (const site of ['cross-site', 'same-site']) expect((await compensate({ 'sec-fetch-site': site })).status).toBe(403);
    // A browser too old to name the site still names the page's origin.
    for (const origin of ['https://evil.example', 'http://x.evil.example', 'http://x:8080', 'null', 'garbage']) {
      expect((await compensate({ 'content-type': 'text/plain', origin })).status).toBe(403);
    }
    const noCors = new HttpRequest({ method: 'POST', url: 'http://x/api/support/faults', body: { string: '{"billingFails":true}' }, headers: { 'sec-fetch-site': 'cross-site' } });
    expect((await handleFaults(noCors, context(), env(deps, 'support@localhost'))).status).toBe(403);
    expect(await deps.control.faults()).toEqual({ billingFails: false });
    expect(deps.orders.docs.get('order-1')!.timeline.filter((e) => e.kind === TIMELINE.supportAction)).toEqual([]);

    // The portal's own page, an old browser on it, and a client that is not a browser (no body, no type) act.
    expect((await compensate({ 'sec-fetch-site': 'same-origin', origin: 'http://x', 'content-type': 'application/json' })).status).toBe(202);
    expect((await compensate({ origin: 'http://x' })).status).toBe(202);
    expect((await compensate({})).status).toBe(202);
  });

  it('acts on an order named by its UUID in capitals, under the id as stored', async () => {
    const deps = memoryDependencies();
    const id = '5f0c1e8a-93b2-4c7d-a1e6-0b9d2c4f7a31';
    seedOrder(deps, { id, state: 'processing' }, { billing: 'deadlettered' });
    const upper = id.toUpperCase();
    const ok = await handleSupportAction('requeue', post(`http://x/api/orders/${upper}/requeue`, {}, {}, { id: upper }), context(), env(deps, 'support@localhost'));
    expect(ok).toMatchObject({ status: 202, jsonBody: { orderId: id, action: 'requeue', accepted: true } });
    expect(deps.orders.docs.get(id)!.timeline.at(-1)).toMatchObject({ kind: TIMELINE.supportAction, detail: 'requeue', actor: 'support@localhost' });
  });

  it('lists the parked dead letters to support only, newest first, a page at a time', async () => {
    const deps = memoryDependencies();
    const source = 'orders/Subscriptions/billing-sub/$DeadLetterQueue';
    for (const [messageId, parkedAt] of [['m-1', '2026-01-01T00:00:01.000Z'], ['m-2', '2026-01-01T00:00:03.000Z'], ['m-3', '2026-01-01T00:00:02.000Z']]) {
      await deps.deadLetters.park({ source, messageId, deadLetterReason: 'MaxDeliveryCountExceeded', body: `{bad ${messageId}`, parkedAt });
    }
    const get = (query: string, headers: Record<string, string> = {}) =>
      new HttpRequest({ method: 'GET', url: `http://x/api/support/deadletters${query}`, headers });

    expect((await handleParkedDeadLetters(get(''), context(), env(deps))).status).toBe(401);
    const reader = { 'x-ms-client-principal': encodeClientPrincipal('bob', ['reader']) };
    expect((await handleParkedDeadLetters(get('', reader), context(), env(deps))).status).toBe(403);

    const first = await handleParkedDeadLetters(get('?pageSize=2'), context(), env(deps, 'support@localhost'));
    expect(first).toMatchObject({ status: 200 });
    const firstPage = first.jsonBody as { deadLetters: { messageId: string; body: unknown; source: string }[]; continuationToken?: string };
    expect(firstPage.deadLetters.map((d) => d.messageId)).toEqual(['m-2', 'm-3']);
    expect(firstPage.deadLetters[0]).toMatchObject({ source, body: '{bad m-2', deadLetterReason: 'MaxDeliveryCountExceeded' });
    const second = await handleParkedDeadLetters(get(`?pageSize=2&continuationToken=${firstPage.continuationToken}`), context(), env(deps, 'support@localhost'));
    expect(second.jsonBody).toEqual({ deadLetters: [expect.objectContaining({ messageId: 'm-1' })] });

    const bad = await handleParkedDeadLetters(get('?pageSize=0&x=1'), context(), env(deps, 'support@localhost'));
    expect(bad).toMatchObject({ status: 400, jsonBody: { errors: expect.arrayContaining([expect.objectContaining({ path: 'pageSize' })]) } });
  });

  it('fault switches: set and read where fault injection is enabled, 404 where it is not, 400 for a bad body', async () => {
    const deps = memoryDependencies();
    const set = await handleFaults(post('http://x/api/support/faults', { billingFails: true }), context(), env(deps, 'support@localhost'));
    expect(set).toMatchObject({ status: 200, jsonBody: { billingFails: true, refundFails: false } });
    expect(await deps.control.faults()).toEqual({ billingFails: true });
    const bad = await handleFaults(post('http://x/api/support/faults', { billingFails: 'yes' }), context(), env(deps, 'support@localhost'));
    expect(bad).toMatchObject({ status: 400, jsonBody: { errors: [{ path: 'billingFails', message: 'must be true or false' }] } });
    // Too large: the problem type the order intake answers a body too large with.
    const large = await handleFaults(post('http://x/api/support/faults', { billingFails: true, note: 'x'.repeat(5000) }), context(), env(deps, 'support@localhost'));
    expect(large).toMatchObject({
      status: 413,
      jsonBody: { type: '/problems/body-too-large', title: 'Request body too large', status: 413, detail: 'the body must be at most 4096 bytes' },
    });
    // Sent in chunks: on Azure the function gets the header and no body (azure-functions-host#4926).
    const chunked = new HttpRequest({ method: 'POST', url: 'http://x/api/support/faults', headers: { 'transfer-encoding': 'chunked' } });
    expect(await handleFaults(chunked, context(), env(deps, 'support@localhost'))).toMatchObject({ status: 411, jsonBody: { type: '/problems/length-required' } });
    const empty = await handleFaults(post('http://x/api/support/faults', {}), context(), env(deps, 'support@localhost'));
    expect(empty).toMatchObject({ status: 400, jsonBody: { errors: [{ path: '(body)', message: 'set billingFails and/or refundFails (booleans)' }] } });
    const disabled = memoryDependencies({ faultInjectionEnabled: false });
    const off = await handleFaults(post('http://x/api/support/faults', { billingFails: true }), context(), env(disabled, 'support@localhost'));
    expect(off.status).toBe(404);
    expect(await disabled.control.faults()).toEqual({ billingFails: false });
    const anonymous = await handleFaults(new HttpRequest({ method: 'GET', url: 'http://x/api/support/faults' }), context(), env(deps));
    expect(anonymous.status).toBe(401);
    // HEAD reads as GET does (the web server drops the body); it sets nothing.
    for (const method of ['GET', 'HEAD']) {
      const read = await handleFaults(new HttpRequest({ method, url: 'http://x/api/support/faults' }), context(), env(deps, 'support@localhost'));
      expect(read).toMatchObject({ status: 200, jsonBody: { billingFails: true, refundFails: false } });
    }
  });
});
