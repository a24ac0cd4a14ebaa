/**
 * End to end through the local Functions host and the emulators: intake, the three consumers,
 * completion, idempotency, duplicate events, hostile input and poison messages.
 */
import fc from 'fast-check';
import { request } from 'node:http';
import { buildOrderCreatedEvent } from '../../src/domain/orderCreatedEvent';
import type { OrderDocument } from '../../src/domain/order';
import { deadLetterPath, ORDERS_TOPIC, SERVICES, SUBSCRIPTIONS, type ServiceName } from '../../src/topology';
import { peekFromHead, systemWithServiceBus } from './systemWithServiceBus';

jest.setTimeout(120_000);

const e2e = systemWithServiceBus();

type View = OrderDocument & { monitor: { runtimeStatus: string } | null };
const order = { customerId: 'e2e-customer', items: [{ sku: 'MOUSE-01', quantity: 2 }, { sku: 'CABLE-USB-C', quantity: 1 }] };
const allDone = (o: View) => o.state === 'completed';

it('accepts an order with 202 and completes it with all three services done', async () => {
  const started = Date.now();
  const res = await e2e.system.postOrder(order);
  expect(res.status).toBe(202);
  expect(res.headers.get('location')).toBe(`/api/orders/${res.body.orderId}`);
  expect(res.headers.get('retry-after')).toBeTruthy();
  expect(res.body).toEqual({ orderId: expect.any(String), state: 'accepted', statusUrl: `/api/orders/${res.body.orderId}` });

  const done = await e2e.system.waitForOrder<View>(res.body.orderId, allDone);
  expect(done.status).toEqual({ inventory: 'done', billing: 'done', notification: 'done' });
  expect(done.total).toBe(58.95);
  expect(done.payment).toEqual({ charged: 58.95, refunded: 0 });
  expect(done.notifications.map((n) => n.kind)).toEqual(['confirmation']);
  expect(done.items).toEqual([
    { sku: 'MOUSE-01', quantity: 2, unitPrice: 24.5 },
    { sku: 'CABLE-USB-C', quantity: 1, unitPrice: 9.95 },
  ]);
  expect(done.monitor).not.toBeNull();
  expect(done.timeline.filter((t) => t.kind === 'delivery').map((t) => t.service).sort()).toEqual(['billing', 'inventory', 'notification']);
  expect(Date.now() - started).toBeLessThan(20_000);

  const inventory = await e2e.system.request('GET', '/api/inventory/MOUSE-01');
  expect(inventory.status).toBe(200);
  expect(inventory.body.reserved).toBeGreaterThanOrEqual(2);
});

it('charges once and confirms once when the same event is delivered twice', async () => {
  const res = await e2e.system.postOrder(order);
  const first = await e2e.system.waitForOrder<View>(res.body.orderId, allDone);

  // The same CloudEvent again under another messageId, so duplicate detection does not drop it.
  const sender = e2e.serviceBus.createSender(ORDERS_TOPIC);
  const event = buildOrderCreatedEvent(first);
  await sender.sendMessages({
    messageId: `${first.eventId}:redelivered`,
    body: event,
    contentType: 'application/cloudevents+json',
    applicationProperties: { event_type: 'OrderCreated', order_id: first.id, correlation_id: first.correlationId },
  });
  await sender.close();

  const after = await e2e.system.waitForOrder<View>(
    first.id,
    (o) => o.timeline.filter((t) => t.kind === 'duplicate-ignored').length === 3,
  );
  expect(after.payment).toEqual({ charged: first.total, refunded: 0 });
  expect(after.notifications).toHaveLength(1);
  expect(after.state).toBe('completed');
});

it('gives one order for the same Idempotency-Key sent twice, and 422 for the key with another body', async () => {
  const key = `e2e-${Date.now()}`;
  const [a, b] = await Promise.all([e2e.system.postOrder(order, { 'Idempotency-Key': key }), e2e.system.postOrder(order, { 'Idempotency-Key': key })]);
  expect([a.status, b.status]).toEqual([202, 202]);
  expect(b.body.orderId).toBe(a.body.orderId);
  const other = await e2e.system.postOrder({ ...order, customerId: 'someone-else' }, { 'Idempotency-Key': key });
  expect(other.status).toBe(422);
  expect(other.headers.get('content-type')).toContain('application/problem+json');

  const list = await e2e.system.request('GET', '/api/orders?pageSize=100');
  expect(list.body.orders.filter((o: { id: string }) => o.id === a.body.orderId)).toHaveLength(1);
  const done = await e2e.system.waitForOrder<View>(a.body.orderId, allDone);
  expect(done.payment.charged).toBe(done.total);
});

it('refuses an Idempotency-Key header sent twice (400), joined as the Functions host joins it, and places nothing', async () => {
  const key = `e2e-twice-${Date.now()}`;
  const body = JSON.stringify({ ...order, customerId: key });
  // fetch would join the two into one line itself: the request goes out as raw header lines.
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(`${e2e.system.baseUrl}/api/orders`, {
      method: 'POST',
      headers: ['Host', new URL(e2e.system.baseUrl).host, 'Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body)), 'Idempotency-Key', `${key}-a`, 'Idempotency-Key', `${key}-b`],
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
  expect(answer.status).toBe(400);
  expect(JSON.parse(answer.text).errors).toEqual([{ path: 'headers/Idempotency-Key', message: 'must be given once (keys joined by a comma are several)' }]);
  const list = await e2e.system.request('GET', `/api/orders?customerId=${key}`);
  expect(list.status).toBe(200);
  expect(list.body.orders).toEqual([]);
});

it('lists orders newest first, filtered by state and status, paged with a continuation token', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await e2e.system.postOrder(order)).body.orderId);
  for (const id of ids) await e2e.system.waitForOrder<View>(id, allDone);
  const first = await e2e.system.request('GET', '/api/orders?state=completed&status.billing=done&pageSize=2');
  expect(first.status).toBe(200);
  expect(first.body.orders.map((o: { id: string }) => o.id)).toEqual([ids[2], ids[1]]);
  const token = encodeURIComponent(first.body.continuationToken);
  const second = await e2e.system.request('GET', `/api/orders?state=completed&status.billing=done&pageSize=2&continuationToken=${token}`);
  expect(second.body.orders[0].id).toBe(ids[0]);
  // A token this API never issued is the caller's mistake, refused as Cosmos DB refuses it.
  const bad = await e2e.system.request('GET', '/api/orders?continuationToken=garbage');
  expect(bad.status).toBe(400);
  expect(bad.body.errors).toEqual([{ path: 'continuationToken', message: 'is not a token this API issued' }]);
});

it('answers a path no route has with 404, and a method its routes do not take with 405 and Allow, as problem+json', async () => {
  const wrongMethod = await e2e.system.request('PUT', '/api/orders', order);
  expect(wrongMethod.status).toBe(405);
  expect(wrongMethod.headers.get('allow')).toBe('POST, GET, HEAD');
  expect(wrongMethod.headers.get('content-type')).toBe('application/problem+json');
  expect(wrongMethod.body).toMatchObject({ status: 405, detail: '/api/orders takes POST, GET, HEAD, not PUT' });
  expect((await e2e.system.request('GET', '/api/orders/some-id/requeue')).headers.get('allow')).toBe('POST');
  // HEAD is GET without the body.
  const head = await e2e.system.request('HEAD', '/api/inventory/MOUSE-01');
  expect([head.status, head.headers.get('content-type'), head.body]).toEqual([200, 'application/json', undefined]);
  expect((await e2e.system.request('HEAD', '/api/orders/some-id/compensate')).status).toBe(405);
  const nowhere = await e2e.system.request('GET', '/api/ordres');
  expect(nowhere.status).toBe(404);
  expect(nowhere.body).toMatchObject({ status: 404, detail: 'no route /api/ordres' });
  // The routes themselves still answer, whatever their precedence against the catch-all.
  expect((await e2e.system.request('GET', '/api/inventory/MOUSE-01')).status).toBe(200);
  const portal = await e2e.system.request('GET', '/api/portal/');
  expect(portal.status).toBe(200);
  // A cache that keeps the page's tag weakly, or among others, is told it is current.
  const etag = portal.headers.get('etag')!;
  expect((await e2e.system.request('GET', '/api/portal/', undefined, { 'If-None-Match': `"old", W/${etag}` })).status).toBe(304);
});

it('answers every API request uncached and with nosniff, support data and echoed input alike', async () => {
  const placed = await e2e.system.postOrder({ ...order, customerId: '<img src=x onerror=alert(1)>' });
  const answers = [
    placed,
    await e2e.system.getOrder(placed.body.orderId),
    await e2e.system.request('GET', '/api/orders?pageSize=1'),
    await e2e.system.request('GET', '/api/orders/%3Cscript%3Ealert(1)%3C%2Fscript%3E'),
    await e2e.system.request('GET', '/api/%3Cscript%3E'),
    await e2e.system.request('PUT', '/api/orders', order),
    await e2e.system.request('GET', '/api/inventory'),
    await e2e.system.request('HEAD', '/api/inventory/MOUSE-01'),
    await e2e.system.request('GET', '/api/support/deadletters'),
    await e2e.system.request('POST', '/api/orders/some-id/compensate', 'x', { 'content-type': 'text/plain' }),
  ];
  for (const answer of answers) {
    expect([answer.status, answer.headers.get('cache-control'), answer.headers.get('x-content-type-options')]).toEqual([answer.status, 'no-store', 'nosniff']);
  }
  // The portal's files keep their own caching.
  expect((await e2e.system.request('GET', '/api/portal/')).headers.get('cache-control')).toBe('no-cache');
});

it('never answers 5xx to 1,000 random bad bodies and headers', async () => {
  const body = fc.oneof(
    fc.string(),
    fc.json(),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc
      .record(
        {
          customerId: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
          items: fc.oneof(
            fc.array(
              fc.record(
                { sku: fc.oneof(fc.string(), fc.constantFrom('MOUSE-01', 'NOPE', '../x', 'a/b?c#d')), quantity: fc.oneof(fc.integer(), fc.double(), fc.string()) },
                { requiredKeys: [] },
              ),
              { maxLength: 60 },
            ),
            fc.anything(),
          ),
          simulate: fc.anything(),
        },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v)),
  );
  const headers = fc.record(
    {
      'Idempotency-Key': fc.string({ maxLength: 300 }).filter((s) => /^[\x20-\x7e]*$/.test(s) && s.trim() === s && s.length > 0),
      'content-type': fc.constantFrom('application/json', 'text/plain', 'application/xml', 'multipart/form-data; boundary=x', ''),
      'x-correlation-id': fc.string({ maxLength: 200 }).filter((s) => /^[\x21-\x7e]*$/.test(s) && s.length > 0),
    },
    { requiredKeys: [] },
  );
  const seen = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(body, headers, async (b, h) => {
      const res = await fetch(`${e2e.system.baseUrl}/api/orders`, { method: 'POST', body: b, headers: h as Record<string, string> });
      await res.arrayBuffer();
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
      return res.status < 500;
    }),
    { numRuns: 1000 },
  );
  // The generator must mostly produce bad input, or this test proves little.
  expect([...seen.entries()].filter(([s]) => s === 400).map(([, n]) => n)[0]).toBeGreaterThan(500);
});

it('dead-letters a poison message after its deliveries, without crashing the host', async () => {
  const sender = e2e.serviceBus.createSender(ORDERS_TOPIC);
  const messageId = `poison-${Date.now()}`;
  await sender.sendMessages({
    messageId,
    body: '{"specversion":"1.0","type":"OrderCreated", not json',
    contentType: 'application/cloudevents+json',
    applicationProperties: { event_type: 'OrderCreated', order_id: 'poison', correlation_id: messageId },
  });
  await sender.close();

  // What names no order is kept in the dead-letter archive and logged with the dead-letter reason.
  const deadline = Date.now() + 30_000;
  const parked = (service: string) =>
    e2e.system.host
      .output()
      .split('\n')
      .some((line) => line.includes(`${service}-deadletter-without-order`) && line.includes(messageId) && line.includes('"deadLetterReason":"MaxDeliveryCountExceeded"'));
  while (!SERVICES.every(parked) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  expect(SERVICES.filter((s) => !parked(s))).toEqual([]);
  // The message itself stays in each consumer's dead-letter queue, with the reason Service Bus gave.
  const inQueue = async (service: ServiceName) =>
    (await peekFromHead(e2e.serviceBus, deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS[service]), 100)).find((m) => m.messageId === messageId);
  for (const service of SERVICES) {
    let found = await inQueue(service);
    while (!found && Date.now() < deadline) found = await new Promise((r) => setTimeout(r, 250)).then(() => inQueue(service));
    expect([service, found?.deadLetterReason]).toEqual([service, 'MaxDeliveryCountExceeded']);
  }

  // The host is still serving.
  const res = await e2e.system.postOrder(order);
  expect(res.status).toBe(202);
  expect(e2e.system.host.output()).toContain('poison-message-dead-lettering');
});
