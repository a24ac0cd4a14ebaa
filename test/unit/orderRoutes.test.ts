import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import type { DurableClient } from 'durable-functions';
import { getMaxListeners } from 'node:events';
import { DurableMonitorClient } from '../../src/azure/durableMonitorClient';
import type { OrderDocument, TimelineEntry } from '../../src/domain/order';
import { handleGetInventoryItem, handleListInventory } from '../../src/http/inventoryRoutes';
import { handleCreateOrder, handleGetOrder, handleListOrders } from '../../src/http/orderRoutes';
import { createLogger } from '../../src/log';
import { acceptOrder } from '../../src/services/intake';
import { encodeClientPrincipal, type SupportAccess } from '../../src/support/principal';
import { memoryDependencies, RecordingMonitor, type MemoryDependencies } from './support/memoryStores';

const BASE = 'http://localhost:7071/api';
let deps: MemoryDependencies;
let monitor: RecordingMonitor;
const env = () => ({ deps, monitor });
/** A local run: every caller is support. */
const LOCAL: SupportAccess = { developmentPrincipal: 'support@localhost' };
/** Azure: App Service Authentication vouches for the principal header. */
const AZURE: SupportAccess = { appServiceAuthEnabled: true };
const signedIn = (roles: string[]) => ({ 'x-ms-client-principal': encodeClientPrincipal('ana@contoso.com', roles) });

function context(): InvocationContext {
  return new InvocationContext({ functionName: 'test', invocationId: 'inv-1', logHandler: () => undefined });
}

function post(body: string, headers: Record<string, string> = {}): HttpRequest {
  return new HttpRequest({ method: 'POST', url: `${BASE}/orders`, body: { string: body }, headers: { 'content-type': 'application/json', ...headers } });
}

const create = (body: unknown, headers?: Record<string, string>) =>
  handleCreateOrder(post(typeof body === 'string' ? body : JSON.stringify(body), headers), context(), env);

const json = (res: HttpResponseInit) => res.jsonBody as Record<string, any>;
const header = (res: HttpResponseInit, name: string) => (res.headers as Record<string, string>)[name];

const order = { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 2 }, { sku: 'KEYBOARD-01', quantity: 1 }] };

beforeEach(() => {
  deps = memoryDependencies({ faultInjectionEnabled: false });
  monitor = new RecordingMonitor();
});

describe('POST /api/orders', () => {
  it('answers 202 with the order id, Location and Retry-After, after writing, publishing and starting the monitor', async () => {
    const res = await create(order);
    expect(res.status).toBe(202);
    const { orderId } = json(res);
    expect(json(res)).toEqual({ orderId, state: 'accepted', statusUrl: `/api/orders/${orderId}` });
    expect(header(res, 'Location')).toBe(`/api/orders/${orderId}`);
    expect(Number(header(res, 'Retry-After'))).toBeGreaterThan(0);

    const stored = (await deps.orders.get(orderId))!;
    expect(stored).toMatchObject({ state: 'accepted', total: 138.9, published: false, status: { inventory: 'pending', billing: 'pending', notification: 'pending' } });
    expect(stored.items).toEqual([
      { sku: 'MOUSE-01', quantity: 2, unitPrice: 24.5 },
      { sku: 'KEYBOARD-01', quantity: 1, unitPrice: 89.9 },
    ]);
    expect(deps.publisher.sent).toHaveLength(1);
    const [message] = deps.publisher.sent;
    expect(message).toMatchObject({
      messageId: stored.eventId,
      contentType: 'application/cloudevents+json',
      applicationProperties: { event_type: 'OrderCreated', order_id: orderId, correlation_id: stored.correlationId },
    });
    // The monitor gets the order as it was written, so its first turn does not read it again.
    expect(monitor.instances.get(orderId)).toEqual({
      orderId,
      correlationId: stored.correlationId,
      snapshot: expect.objectContaining({ orderId, state: 'accepted', status: stored.status }),
    });
  });

  it('gives the same order for the same Idempotency-Key and body, with no second order or event', async () => {
    const first = await create(order, { 'Idempotency-Key': 'k-1' });
    const second = await create({ items: order.items, customerId: 'c-1' }, { 'Idempotency-Key': 'k-1' });
    expect(second.status).toBe(202);
    expect(json(second).orderId).toBe(json(first).orderId);
    expect(deps.orders.docs.size).toBe(1);
    expect(deps.publisher.sent).toHaveLength(1);
    // No consumer has received the event yet, so the repeat publishes again; the topic drops it.
    expect(deps.publisher.duplicates.map((m) => m.messageId)).toEqual([deps.publisher.sent[0]!.messageId]);
  });

  it('does not publish again for a repeat once a consumer has received the event', async () => {
    const first = await create(order, { 'Idempotency-Key': 'k-5' });
    await deps.orders.transitionStatus(json(first).orderId, { service: 'inventory', from: ['pending'], to: 'processing', published: true });
    const second = await create(order, { 'Idempotency-Key': 'k-5' });
    expect(json(second).orderId).toBe(json(first).orderId);
    expect(deps.publisher.sent).toHaveLength(1);
    expect(deps.publisher.duplicates).toHaveLength(0);
  });

  it('refuses the same Idempotency-Key with another body (422 problem)', async () => {
    await create(order, { 'Idempotency-Key': 'k-2' });
    const res = await create({ ...order, customerId: 'c-2' }, { 'Idempotency-Key': 'k-2' });
    expect(res.status).toBe(422);
    expect(header(res, 'Content-Type')).toBe('application/problem+json');
    expect(deps.orders.docs.size).toBe(1);
  });

  it.each([
    ['not JSON', '{"customerId": ', '(body)'],
    ['a JSON array', '[]', '(body)'],
    ['an empty body', '', '(body)'],
    ['a missing item list', JSON.stringify({ customerId: 'c' }), 'items'],
    ['a negative quantity', JSON.stringify({ customerId: 'c', items: [{ sku: 'MOUSE-01', quantity: -1 }] }), 'items/0/quantity'],
    ['simulate while fault injection is off', JSON.stringify({ ...order, simulate: { billingFailures: 1 } }), 'simulate'],
  ])('answers 400 problem+json for %s, naming the field', async (_label, body, path) => {
    const res = await create(body);
    expect(res.status).toBe(400);
    expect(header(res, 'Content-Type')).toBe('application/problem+json');
    expect(json(res)).toMatchObject({ type: expect.any(String), title: expect.any(String), status: 400, detail: expect.any(String) });
    expect(json(res).errors.map((e: { path: string }) => e.path)).toContain(path);
    expect(deps.orders.docs.size).toBe(0);
    expect(deps.publisher.sent).toHaveLength(0);
  });

  it('answers 400 naming an unknown SKU and its item', async () => {
    const res = await create({ customerId: 'c', items: [{ sku: 'MOUSE-01', quantity: 1 }, { sku: 'NOPE-1', quantity: 1 }] });
    expect(res.status).toBe(400);
    expect(json(res).detail).toContain('NOPE-1');
    expect(json(res).errors).toEqual([{ path: 'items/1/sku', message: expect.stringContaining('NOPE-1') }]);
  });

  it('names an unknown SKU in the same 400 as the other bad fields, not only once they are put right', async () => {
    const res = await create({ customerId: 'c', items: [{ sku: 'NOPE-1', quantity: 1 }, { sku: 'MOUSE-01', quantity: 0 }, { sku: 'a/b', quantity: 1 }, { sku: 'NOPE-2' }] });
    expect(res.status).toBe(400);
    expect(json(res).errors).toEqual([
      { path: 'items/1/quantity', message: 'must be at least 1' },
      { path: 'items/2/sku', message: expect.any(String) },
      { path: 'items/3/quantity', message: 'is required' },
      { path: 'items/0/sku', message: 'unknown sku NOPE-1' },
      { path: 'items/3/sku', message: 'unknown sku NOPE-2' },
    ]);
    expect(json(res).detail).toBe('the order is not valid: items/1/quantity, items/2/sku, items/3/quantity, items/0/sku, items/3/sku');
    expect(deps.orders.docs.size).toBe(0);
  });

  it('answers the other bad fields when the catalog cannot be read to check the SKUs', async () => {
    const read = deps.inventory.get.bind(deps.inventory);
    deps.inventory.get = async () => {
      throw Object.assign(new Error('Request rate is large'), { code: 429 });
    };
    const res = await create({ customerId: 'c', items: [{ sku: 'NOPE-1', quantity: 0 }] });
    deps.inventory.get = read;
    expect(res.status).toBe(400);
    expect(json(res).errors).toEqual([{ path: 'items/0/quantity', message: 'must be at least 1' }]);
  });

  it('answers a refused body at once while Cosmos DB does not answer: the SKU check beside the other bad fields waits a second at most', async () => {
    const read = deps.inventory.get.bind(deps.inventory);
    // No answer, as in an outage: the call ends only when the request stops waiting for it.
    deps.inventory.get = (_sku, options) => new Promise((_, reject) => options?.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    const started = performance.now();
    const res = await create({ customerId: 'c', items: [{ sku: 'NOPE-1', quantity: 0 }] });
    const took = performance.now() - started;
    deps.inventory.get = read;
    expect(res.status).toBe(400);
    expect(json(res).errors).toEqual([{ path: 'items/0/quantity', message: 'must be at least 1' }]);
    expect(took).toBeLessThan(2_000);
  });

  it('answers 400 for an Idempotency-Key that is not visible ASCII', async () => {
    const res = await create(order, { 'Idempotency-Key': 'a b' });
    expect(res.status).toBe(400);
    expect(json(res).errors[0].path).toBe('headers/Idempotency-Key');
  });

  it('answers 400 saying so for an Idempotency-Key sent twice, joined with "," (the Functions host) or ", " (Node)', async () => {
    const given = [{ path: 'headers/Idempotency-Key', message: 'must be given once (keys joined by a comma are several)' }];
    for (const joined of ['k-1, k-2', 'k-1,k-2', 'k-1,k-2,k-3']) {
      const res = await create(order, { 'Idempotency-Key': joined });
      expect(res.status).toBe(400);
      expect(json(res).errors).toEqual(given);
    }
    expect(deps.orders.docs.size).toBe(0);
    expect(deps.idempotency.records.size).toBe(0);
    // One key with a bad character is still told what a key may hold; a comma that does not
    // join two keys is part of one.
    expect(json(await create(order, { 'Idempotency-Key': 'k 1' })).errors).toEqual([
      { path: 'headers/Idempotency-Key', message: 'must be 1 to 200 visible ASCII characters' },
    ]);
    expect((await create(order, { 'Idempotency-Key': 'k-1,' })).status).toBe(202);
  });

  it('still finds the order of a key with a comma placed before such keys were refused', async () => {
    const earlier = await acceptOrder(order, { idempotencyKey: 'k-1,k-2' }, monitor, deps, createLogger(context()));
    const res = await create(order, { 'Idempotency-Key': 'k-1,k-2' });
    expect(res.status).toBe(202);
    expect(json(res).orderId).toBe(earlier.orderId);
    expect(deps.orders.docs.size).toBe(1);
  });

  it("counts the lookup of a key with a comma against the request's one wait for Cosmos DB", async () => {
    const earlier = await acceptOrder(order, { idempotencyKey: 'k-1,k-2' }, monitor, deps, createLogger(context()));
    deps.settings.storeWaitMs = 300;
    const slow = <A extends unknown[], R>(call: (...args: A) => Promise<R>) => async (...args: A) => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      return call(...args);
    };
    deps.idempotency.find = slow(deps.idempotency.find.bind(deps.idempotency));
    deps.idempotency.claim = slow(deps.idempotency.claim.bind(deps.idempotency));
    // The lookup takes 200 ms of the 300, and the claim that follows would take 200 more.
    const started = performance.now();
    const res = await create(order, { 'Idempotency-Key': 'k-1,k-2' });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(res.status).toBe(503);
    expect(json(res).detail).toBe('Cosmos DB did not answer within 300 ms');
    // Asked again once Cosmos DB is quick, the request finds the order placed under that key.
    deps.settings.storeWaitMs = 10_000;
    expect(json(await create(order, { 'Idempotency-Key': 'k-1,k-2' })).orderId).toBe(earlier.orderId);
  });

  it('answers 415 naming the encoding for a compressed body, and stores nothing', async () => {
    const res = await create(order, { 'Content-Encoding': 'gzip' });
    expect(res.status).toBe(415);
    expect(json(res)).toMatchObject({ status: 415, detail: 'the body must be sent uncompressed, not as gzip' });
    expect(deps.orders.docs.size).toBe(0);
    expect((await create(order, { 'Content-Encoding': 'identity' })).status).toBe(202);
  });

  it('answers 411 for a body sent in chunks, which the Functions host does not hand over, and stores nothing', async () => {
    // What a Node function gets on Azure for a chunked POST: the header, no body (azure-functions-host#4926).
    const chunked = new HttpRequest({ method: 'POST', url: `${BASE}/orders`, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } });
    const res = await handleCreateOrder(chunked, context(), env);
    expect(res.status).toBe(411);
    expect(json(res)).toMatchObject({ type: '/problems/length-required', status: 411 });
    expect(deps.orders.docs.size).toBe(0);
    expect((await create(order, { 'Content-Length': String(JSON.stringify(order).length) })).status).toBe(202);
  });

  it('answers 400 for a body that is not UTF-8 rather than store its bytes changed, and stores nothing', async () => {
    const bytes = (text: string, ...inserted: number[]) => {
      const [before, after] = text.split('|') as [string, string];
      return new Uint8Array([...Buffer.from(before), ...inserted, ...Buffer.from(after)]);
    };
    const send = (body: Uint8Array) =>
      handleCreateOrder(new HttpRequest({ method: 'POST', url: `${BASE}/orders`, body: { bytes: body }, headers: { 'content-type': 'application/json' } }), context(), env);
    const res = await send(bytes('{"customerId":"c|","items":[{"sku":"MOUSE-01","quantity":1}]}', 0xff, 0xfe));
    expect(res.status).toBe(400);
    expect(json(res).errors).toEqual([{ path: '(body)', message: 'must be JSON in UTF-8' }]);
    expect(deps.orders.docs.size).toBe(0);
    // UTF-8 with a byte order mark, and characters beyond ASCII, are taken as sent.
    const ok = await send(bytes('|{"customerId":"Zoë","items":[{"sku":"MOUSE-01","quantity":1}]}', 0xef, 0xbb, 0xbf));
    expect(ok.status).toBe(202);
    expect((await deps.orders.get(json(ok).orderId))!.customerId).toBe('Zoë');
  });

  describe('a retry of an order the API accepted by its earlier, looser rules', () => {
    /** What earlier versions did with such a body: recorded the order under its key, without the strict-rules mark. */
    const recordedEarlier = async (body: Parameters<typeof acceptOrder>[0], idempotencyKey: string) => {
      const accepted = await acceptOrder(body, { idempotencyKey }, monitor, deps, createLogger(context()));
      delete deps.idempotency.records.get(idempotencyKey)!.strictBody;
      return accepted;
    };
    const sendBytes = (body: Uint8Array, idempotencyKey?: string) =>
      handleCreateOrder(
        new HttpRequest({
          method: 'POST',
          url: `${BASE}/orders`,
          body: { bytes: body },
          headers: { 'content-type': 'application/json', ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
        }),
        context(),
        env,
      );

    it('one SKU past the line limit over several lines: the same key and body find that order; anything else is refused', async () => {
      const body = { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 600 }, { sku: 'MOUSE-01', quantity: 401 }] };
      const earlier = await recordedEarlier(body, 'k-1');
      expect((await deps.orders.get(earlier.orderId))!.items[0]!.quantity).toBe(1001);
      const retry = await create(body, { 'Idempotency-Key': 'k-1' });
      expect(retry.status).toBe(202);
      expect(json(retry).orderId).toBe(earlier.orderId);
      // Without the key, with another key, or another body under the key: today's rules.
      for (const res of [await create(body), await create(body, { 'Idempotency-Key': 'k-2' }), await create({ ...body, customerId: 'c-2' }, { 'Idempotency-Key': 'k-1' })]) {
        expect(res.status).toBe(400);
        expect(json(res).errors).toEqual([{ path: 'items/1/quantity', message: 'with the lines before it for MOUSE-01, must be at most 1000 in all' }]);
      }
      expect(deps.orders.docs.size).toBe(1);
      expect(await deps.idempotency.find('k-2')).toBeUndefined();
    });

    it('is refused by today\'s rules when its key has no order, the store cannot be read, or it asks for what this deployment refuses', async () => {
      const body = { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 600 }, { sku: 'MOUSE-01', quantity: 401 }] };
      const refused = async (res: HttpResponseInit) => {
        expect(res.status).toBe(400);
        expect(json(res).errors).toEqual([{ path: 'items/1/quantity', message: 'with the lines before it for MOUSE-01, must be at most 1000 in all' }]);
      };
      // Claimed by an earlier version whose write of the order failed: no order to find.
      const { orderRequestFingerprint } = await import('../../src/domain/orderRequest');
      await deps.idempotency.claim({ key: 'k-5', orderId: '00000000-0000-4000-8000-000000000005', eventId: 'e', correlationId: 'c', fingerprint: orderRequestFingerprint(body), createdAt: 't' });
      await refused(await create(body, { 'Idempotency-Key': 'k-5' }));
      expect(deps.orders.docs.size).toBe(0);
      // The key store down: the body's own fault is said, not a 503.
      await recordedEarlier(body, 'k-6');
      const find = deps.idempotency.find;
      deps.idempotency.find = async () => {
        throw new Error('the store is down');
      };
      await refused(await create(body, { 'Idempotency-Key': 'k-6' }));
      // Nor a wait longer than the store wait while Cosmos DB throttles the lookup: the read is told to stop.
      deps.settings.storeWaitMs = 100;
      let lookup: AbortSignal | undefined;
      deps.idempotency.find = async (key, options) => {
        lookup = options?.signal;
        await new Promise((resolve) => setTimeout(resolve, 300));
        return find.call(deps.idempotency, key);
      };
      const started = Date.now();
      await refused(await create(body, { 'Idempotency-Key': 'k-6' }));
      expect(Date.now() - started).toBeLessThan(290);
      expect(lookup?.aborted).toBe(true);
      deps.idempotency.find = find;
      delete deps.settings.storeWaitMs;
      // An order placed with `simulate` where fault injection was on, retried where it is off.
      deps.settings.faultInjectionEnabled = true;
      const simulated = { ...body, simulate: { billingFailures: 1 } };
      await recordedEarlier(simulated, 'k-7');
      deps.settings.faultInjectionEnabled = false;
      const res = await create(simulated, { 'Idempotency-Key': 'k-7' });
      expect(res.status).toBe(400);
      expect(json(res).errors).toEqual(expect.arrayContaining([{ path: 'simulate', message: 'fault injection is not enabled on this deployment' }]));
    });

    it('bytes that are not UTF-8: the same key and bytes find that order, stored as earlier versions read it', async () => {
      const bytes = new Uint8Array([...Buffer.from('{"customerId":"c'), 0xff, 0xfe, ...Buffer.from('","items":[{"sku":"MOUSE-01","quantity":1}]}')]);
      const earlier = await recordedEarlier({ customerId: 'c\ufffd\ufffd', items: [{ sku: 'MOUSE-01', quantity: 1 }] }, 'k-3');
      const retry = await sendBytes(bytes, 'k-3');
      expect(retry.status).toBe(202);
      expect(json(retry).orderId).toBe(earlier.orderId);
      const fresh = await sendBytes(bytes, 'k-4');
      expect(fresh.status).toBe(400);
      expect(json(fresh).errors).toEqual([{ path: '(body)', message: 'must be JSON in UTF-8' }]);
      expect(deps.orders.docs.size).toBe(1);
      // An order placed under the strict rules, its text holding U+FFFD itself: bytes that read
      // as the same text only with the replacement are not its retry.
      const placed = await sendBytes(new Uint8Array(Buffer.from('{"customerId":"c\ufffd\ufffd","items":[{"sku":"MOUSE-01","quantity":1}]}')), 'k-8');
      expect(placed.status).toBe(202);
      const lookalike = await sendBytes(bytes, 'k-8');
      expect(lookalike.status).toBe(400);
      expect(json(lookalike).errors).toEqual([{ path: '(body)', message: 'must be JSON in UTF-8' }]);
    });
  });

  it('accepts simulate where fault injection is enabled', async () => {
    deps.settings.faultInjectionEnabled = true;
    const res = await create({ ...order, simulate: { billingFailures: 2 } });
    expect(res.status).toBe(202);
    expect((await deps.orders.get(json(res).orderId))!.simulate).toEqual({ billingFailures: 2 });
  });

  it("logs a 503 given after the write with the order's ids, and answers with its correlation id", async () => {
    deps.publisher.failWith = new Error('amqp:connection:forced');
    const lines: string[] = [];
    const logging = new InvocationContext({ functionName: 'test', invocationId: 'inv-2', logHandler: (_level, ...args) => lines.push(args.join(' ')) });
    const failed = await handleCreateOrder(post(JSON.stringify(order), { 'x-correlation-id': 'corr-503' }), logging, env);
    expect(failed.status).toBe(503);
    const [stored] = [...deps.orders.docs.values()];
    expect(header(failed, 'x-correlation-id')).toBe('corr-503');
    const failure = lines.find((line) => line.includes('"request-failed"'));
    expect(failure).toContain(`"orderId":"${stored!.id}"`);
    expect(failure).toContain('"correlationId":"corr-503"');
  });

  it('answers 503 when publishing fails after the write, and a retry with the same key publishes the same event', async () => {
    deps.publisher.failWith = new Error('amqp:connection:forced SharedAccessKey=secret');
    const failed = await create(order, { 'Idempotency-Key': 'k-3' });
    expect(failed.status).toBe(503);
    expect(header(failed, 'Content-Type')).toBe('application/problem+json');
    expect(json(failed).detail).toContain('Idempotency-Key');
    expect(JSON.stringify(failed.jsonBody)).not.toContain('secret');
    const [stored] = [...deps.orders.docs.values()];
    expect(stored!.published).toBe(false);
    // The order exists whatever the client does next: the answer names it.
    expect(json(failed)).toMatchObject({ status: 503, orderId: stored!.id, statusUrl: `/api/orders/${stored!.id}` });

    deps.publisher.failWith = undefined;
    const retried = await create(order, { 'Idempotency-Key': 'k-3' });
    expect(retried.status).toBe(202);
    expect(json(retried).orderId).toBe(stored!.id);
    expect(deps.publisher.sent.map((m) => m.messageId)).toEqual([stored!.eventId]);
    expect(monitor.instances.has(stored!.id)).toBe(true);
  });

  it('answers 503 naming the order when Service Bus does not answer within intakeWaitMs; the send goes on, and the retry adds no event', async () => {
    deps.settings.intakeWaitMs = 100;
    let answer!: () => void;
    deps.publisher.holdUntil = new Promise<void>((resolve) => (answer = resolve));
    const logged: string[] = [];
    const capturing = new InvocationContext({ functionName: 'test', invocationId: 'inv-2', logHandler: (_level, ...args) => logged.push(args.join(' ')) });
    const started = performance.now();
    const late = await handleCreateOrder(post(JSON.stringify(order), { 'Idempotency-Key': 'k-6' }), capturing, env);
    const waited = performance.now() - started;
    expect(late.status).toBe(503);
    expect(waited).toBeGreaterThanOrEqual(90);
    const [stored] = [...deps.orders.docs.values()];
    expect(json(late)).toMatchObject({ orderId: stored!.id, statusUrl: `/api/orders/${stored!.id}` });
    expect(json(late).detail).toBe(`order ${stored!.id} was recorded but its event could not be published yet; retry with the same Idempotency-Key`);
    expect(deps.publisher.sent).toHaveLength(0);
    // The monitor started meanwhile; it resends the event to services that stay pending.
    expect(monitor.instances.has(stored!.id)).toBe(true);
    // Support sees why nothing moves yet.
    expect((await deps.orders.get(stored!.id))!.timeline.at(-1)).toMatchObject({
      kind: 'publish-failed',
      reason: 'Service Bus did not take the event within 100 ms',
      detail: expect.stringContaining('monitor sends the event again'),
    });

    deps.publisher.holdUntil = undefined;
    answer();
    await new Promise((resolve) => setImmediate(resolve));
    expect(deps.publisher.sent.map((m) => m.messageId)).toEqual([stored!.eventId]);
    expect(logged.some((line) => line.includes('intake-step-finished-late'))).toBe(true);

    const retried = await create(order, { 'Idempotency-Key': 'k-6' });
    expect(retried.status).toBe(202);
    expect(json(retried).orderId).toBe(stored!.id);
    expect(deps.publisher.sent).toHaveLength(1);
    expect(deps.publisher.duplicates.map((m) => m.messageId)).toEqual([stored!.eventId]);
  });

  it("answers a failed publish within intakeWaitMs and a second, however long the order's publish-failed note takes", async () => {
    deps.settings.intakeWaitMs = 100;
    deps.publisher.failWith = new Error('amqp:connection:forced');
    // Cosmos DB throttling too: the SDK waits out its 429s for up to 20 s per call.
    let served!: () => void;
    const throttled = new Promise<void>((resolve) => (served = resolve));
    const append = deps.orders.appendTimeline.bind(deps.orders);
    deps.orders.appendTimeline = async (id, entry, options) => {
      await throttled;
      return append(id, entry, options);
    };
    const started = performance.now();
    const res = await Promise.race([create(order, { 'Idempotency-Key': 'k-slow-note' }), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 3_000))]);
    const waited = performance.now() - started;
    served();
    expect(res?.status).toBe(503);
    expect(waited).toBeLessThan(1_500);
    const [stored] = [...deps.orders.docs.values()];
    expect(json(res!)).toMatchObject({ orderId: stored!.id });
    // The note still lands once Cosmos DB serves it.
    await new Promise((resolve) => setImmediate(resolve));
    expect((await deps.orders.get(stored!.id))!.timeline.at(-1)).toMatchObject({ kind: 'publish-failed' });
  });

  it('tells a client without an Idempotency-Key to follow the recorded order rather than place it again', async () => {
    deps.publisher.failWith = new Error('amqp:connection:forced');
    const failed = await create(order);
    expect(failed.status).toBe(503);
    const [stored] = [...deps.orders.docs.values()];
    expect(json(failed).detail).toBe(`order ${stored!.id} was recorded but its event could not be published yet; follow it at its statusUrl rather than placing it again`);
    expect(json(failed).statusUrl).toBe(`/api/orders/${stored!.id}`);
  });

  it('answers 503 within the intake\'s Cosmos DB wait while Cosmos DB throttles, stops the call retrying, and places nothing after the answer', async () => {
    deps.settings.storeWaitMs = 100;
    // Cosmos DB answering 429: the SDK waits out the retry-after and tries again, up to 20 s per
    // call (src/azure/clients.ts), and the intake makes several calls one after another.
    let throttledUntil!: () => void;
    const throttled = new Promise<void>((resolve) => (throttledUntil = resolve));
    const signals: (AbortSignal | undefined)[] = [];
    const claim = deps.idempotency.claim.bind(deps.idempotency);
    deps.idempotency.claim = async (record, options) => {
      signals.push(options?.signal);
      await throttled;
      return claim(record);
    };
    setTimeout(throttledUntil, 1_500);
    const started = performance.now();
    const res = await create(order, { 'Idempotency-Key': 'k-throttled' });
    const waited = performance.now() - started;
    expect(res.status).toBe(503);
    expect(waited).toBeLessThan(1_000);
    expect(json(res).detail).toBe('Cosmos DB did not answer within 100 ms');
    expect(json(res).orderId).toBeUndefined();
    // The call was told the caller stopped waiting (the SDK then stops retrying).
    expect(signals[0]?.aborted).toBe(true);

    // The claim lands late: nothing follows it, since the client was told nothing was placed.
    await throttled;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(deps.orders.docs.size).toBe(0);
    expect(deps.publisher.sent).toHaveLength(0);

    // The client's retry with its key places the order, once.
    deps.idempotency.claim = claim;
    const retried = await create(order, { 'Idempotency-Key': 'k-throttled' });
    expect(retried.status).toBe(202);
    expect(deps.orders.docs.size).toBe(1);
  });

  /** A 503 that names the one order stored, which may have been recorded; that order. */
  function expectStoredOrderNamed(res: Awaited<ReturnType<typeof create>>) {
    expect(res.status).toBe(503);
    expect(deps.orders.docs.size).toBe(1);
    const [stored] = [...deps.orders.docs.values()];
    expect(json(res)).toMatchObject({ orderId: stored!.id, statusUrl: `/api/orders/${stored!.id}` });
    expect(json(res).detail).toContain('may have been recorded');
    return stored!;
  }

  it('names the order in a 503 given while its write was on the wire, so a client without a key follows it rather than placing a second', async () => {
    deps.settings.storeWaitMs = 100;
    // The write reaches Cosmos DB and is stored; its answer comes back after the intake stopped waiting.
    const write = deps.orders.create.bind(deps.orders);
    deps.orders.create = async (placed) => {
      const done = await write(placed);
      await new Promise((resolve) => setTimeout(resolve, 300));
      return done;
    };
    expectStoredOrderNamed(await create(order));
  });

  it.each([
    ['the connection reset after the write was sent', { code: 'ECONNRESET' }],
    ["the SDK's request timeout", { code: 'TimeoutError' }],
    ['a gateway timing out the write (504)', { code: 504 }],
    ['Cosmos DB unavailable mid-write (503)', { code: 503 }],
  ])('names the order in a 503 for a write whose outcome is unknown: %s', async (_label, failure) => {
    // The write reaches Cosmos DB and is stored; the answer is lost on the way back.
    const write = deps.orders.create.bind(deps.orders);
    deps.orders.create = async (placed) => {
      await write(placed);
      throw Object.assign(new Error('the write was sent; no answer came back'), failure);
    };
    const res = await create(order);
    // Without an Idempotency-Key, only the order's id keeps the client from placing it a second time.
    const stored = expectStoredOrderNamed(res);
    expect(header(res, 'x-correlation-id')).toBe(stored.correlationId);
  });

  it('does not name an order in a 503 for a write Cosmos DB refused (throttled), and keeps its Retry-After', async () => {
    deps.orders.create = async () => {
      throw Object.assign(new Error('throttled'), { code: 429, retryAfterInMs: 3_200 });
    };
    const res = await create(order, { 'Idempotency-Key': 'k-429' });
    expect(res.status).toBe(503);
    expect(json(res).orderId).toBeUndefined();
    expect(header(res, 'Retry-After')).toBe('4');
  });

  it('a retry with the same key after a write whose answer was lost finds that order, once', async () => {
    const write = deps.orders.create.bind(deps.orders);
    deps.orders.create = async (placed) => {
      await write(placed);
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    };
    const failed = await create(order, { 'Idempotency-Key': 'k-lost-answer' });
    expect(failed.status).toBe(503);
    expect(json(failed).detail).toContain('retry with the same Idempotency-Key');
    deps.orders.create = write;
    const retried = await create(order, { 'Idempotency-Key': 'k-lost-answer' });
    expect(retried.status).toBe(202);
    expect(json(retried).orderId).toBe(json(failed).orderId);
    expect(deps.orders.docs.size).toBe(1);
    expect(deps.publisher.sent).toHaveLength(1);
    expect(monitor.instances.has(json(retried).orderId)).toBe(true);
  });

  it('lets every concurrent catalog read listen on the intake\'s abort signal without a listener-leak warning', async () => {
    // The Cosmos SDK adds an abort listener per call in flight; Node warns of a leak past 10 on one
    // signal, and an order may name up to 50 SKUs, each read at once.
    const skus = Array.from({ length: 12 }, (_, i) => `UNKNOWN-${i}`);
    const limits: number[] = [];
    const get = deps.inventory.get.bind(deps.inventory);
    deps.inventory.get = async (sku, options) => {
      if (options?.signal) limits.push(getMaxListeners(options.signal));
      return get(sku);
    };
    const res = await create({ customerId: 'c-1', items: skus.map((sku) => ({ sku, quantity: 1 })) });
    expect(res.status).toBe(400);
    expect(limits).toHaveLength(skus.length);
    for (const limit of limits) expect(limit === 0 || limit >= 50).toBe(true);
  });

  it('answers 503 (not 500) when the database is down', async () => {
    deps.orders.failWith = new Error('ECONNREFUSED 127.0.0.1:8081');
    const res = await create(order);
    expect(res.status).toBe(503);
    expect(header(res, 'Retry-After')).toBeDefined();
  });

  it('answers 503 when the order store is unavailable, saying to retry with the same Idempotency-Key', async () => {
    deps.orders.create = async () => {
      throw new Error('connect ECONNREFUSED');
    };
    const res = await create(order, { 'Idempotency-Key': 'k-5' });
    expect(res.status).toBe(503);
    expect(json(res).detail).toBe('a service this API depends on is unavailable; retry later with the same Idempotency-Key');
  });

  it('does not tell a client that sent no Idempotency-Key to retry with "the same" one', async () => {
    deps.orders.create = async () => {
      throw new Error('connect ECONNREFUSED');
    };
    const res = await create(order);
    expect(res.status).toBe(503);
    expect(json(res).detail).toBe('a service this API depends on is unavailable; retry later');
  });

  it('answers 503 when the monitor cannot be started, and the retry starts it', async () => {
    monitor.failWith = new Error('durable backend unavailable');
    const failed = await create(order, { 'Idempotency-Key': 'k-4' });
    expect(failed.status).toBe(503);
    expect(json(failed).detail).toContain('its monitor could not be started yet; retry with the same Idempotency-Key');
    expect(json(failed).orderId).toBe([...deps.orders.docs.keys()][0]);
    monitor.failWith = undefined;
    const retried = await create(order, { 'Idempotency-Key': 'k-4' });
    expect(retried.status).toBe(202);
    expect(monitor.instances.has(json(retried).orderId)).toBe(true);
    expect(deps.publisher.sent).toHaveLength(1);
  });
});

describe('GET /api/orders/{id}', () => {
  const get = (id: string, access: SupportAccess = LOCAL, headers: Record<string, string> = {}) =>
    handleGetOrder(new HttpRequest({ method: 'GET', url: `${BASE}/orders/${id}`, params: { id }, headers }), context(), env, access);

  it('answers a read that Cosmos DB kept throttling with 503 and the wait its last answer asked for', async () => {
    const { orderId } = json(await create(order));
    // What @azure/cosmos throws once its own retries of a 429 are used up.
    deps.orders.failWith = Object.assign(new Error('Request rate is large'), { code: 429, retryAfterInMs: 4_200 });
    const throttled = await get(orderId);
    expect(throttled.status).toBe(503);
    expect(header(throttled, 'Retry-After')).toBe('5');
    expect(json(throttled).detail).toContain('throttling');
    deps.orders.failWith = Object.assign(new Error('Request rate is large'), { code: 429, retryAfterInMs: 10 });
    expect(header(await get(orderId), 'Retry-After')).toBe('1');
    deps.orders.failWith = Object.assign(new Error('Request rate is large'), { code: 429 });
    expect(header(await get(orderId), 'Retry-After')).toBe('2');
    deps.orders.failWith = new Error('ECONNRESET');
    expect(header(await get(orderId), 'Retry-After')).toBe('2');
  });

  it("answers 503 within the request's Cosmos DB wait for a read Cosmos DB keeps throttling, and stops the call retrying", async () => {
    const { orderId } = json(await create(order));
    deps.settings.storeWaitMs = 100;
    const signals: (AbortSignal | undefined)[] = [];
    const read = deps.orders.get.bind(deps.orders);
    // The SDK waiting out one 429 after another: no answer until the call is told to stop.
    deps.orders.get = (_id, options) => {
      signals.push(options?.signal);
      return new Promise((resolve, reject) => options?.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    };
    const started = performance.now();
    const res = await get(orderId);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(res.status).toBe(503);
    expect(json(res).detail).toBe('Cosmos DB did not answer within 100 ms');
    expect(signals[0]?.aborted).toBe(true);
    deps.orders.get = read;
  });

  it('returns the support view with the monitor status', async () => {
    const { orderId } = json(await create(order));
    const res = await get(orderId);
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({
      id: orderId,
      customerId: 'c-1',
      total: 138.9,
      state: 'accepted',
      status: { inventory: 'pending', billing: 'pending', notification: 'pending' },
      payment: { charged: 0, refunded: 0 },
      notifications: [],
      requests: [],
      monitor: { runtimeStatus: 'Running' },
      correlationId: expect.any(String),
    });
    expect(json(res).timeline[0]).toMatchObject({ kind: 'accepted' });
  });

  it("shows which support person acted to support only: to anyone else with the order's id, each such name reads `support`", async () => {
    const { orderId } = json(await create(order));
    const stored = deps.orders.docs.get(orderId)!;
    stored.timeline.push(
      { at: '2026-01-01T00:00:01.000Z', kind: 'support-action', detail: 'compensate', actor: 'ana@contoso.com' },
      { at: '2026-01-01T00:00:02.000Z', kind: 'compensation-started', detail: 'run 1', actor: 'ana@contoso.com', reason: 'requested by ana@contoso.com' },
      { at: '2026-01-01T00:00:03.000Z', kind: 'compensation', service: 'billing', detail: 'nothing charged; charge voided', actor: 'monitor' },
    );
    monitor.status = async () => ({ runtimeStatus: 'Running', customStatus: { phase: 'compensating', detail: 'requested by ana@contoso.com' } });
    const everyone = [await get(orderId, AZURE), await get(orderId, AZURE, signedIn(['reader']))];
    for (const res of everyone) {
      expect(res.status).toBe(200);
      expect(JSON.stringify(json(res))).not.toContain('ana@contoso.com');
      expect(json(res).timeline.slice(-3)).toEqual([
        expect.objectContaining({ kind: 'support-action', actor: 'support' }),
        expect.objectContaining({ kind: 'compensation-started', actor: 'support', reason: 'requested by support' }),
        expect.objectContaining({ kind: 'compensation', actor: 'monitor' }),
      ]);
      expect(json(res).monitor).toEqual({ runtimeStatus: 'Running', customStatus: { phase: 'compensating', detail: 'requested by support' } });
      expect(json(res).requests).toEqual([
        { action: 'compensate', by: 'support', at: '2026-01-01T00:00:01.000Z', outcome: 'carried-out', detail: 'compensation began (run 1)', carriedOutAt: '2026-01-01T00:00:02.000Z' },
      ]);
      // The rest of the order is the same.
      expect(json(res)).toMatchObject({ id: orderId, customerId: 'c-1', total: 138.9, state: 'accepted' });
    }
    for (const res of [await get(orderId, AZURE, signedIn(['support'])), await get(orderId, LOCAL)]) {
      expect(json(res).timeline.filter((e: { actor?: string }) => e.actor === 'ana@contoso.com')).toHaveLength(2);
      expect(json(res).monitor.customStatus.detail).toBe('requested by ana@contoso.com');
      expect(json(res).requests).toEqual([expect.objectContaining({ action: 'compensate', by: 'ana@contoso.com', outcome: 'carried-out' })]);
    }
  });

  it("hides a name the monitor's status quotes when the order was read before that person's request was recorded", async () => {
    const { orderId } = json(await create(order));
    // The two reads run side by side: the order comes back as it was, and meanwhile a support
    // person asks to compensate and the monitor, woken, says so in its status.
    monitor.status = async () => {
      deps.orders.docs.get(orderId)!.timeline.push({ at: '2026-01-01T00:00:01.000Z', kind: 'support-action', detail: 'compensate', actor: 'bob@contoso.com' });
      return { runtimeStatus: 'Running', customStatus: { phase: 'compensating', detail: 'requested by bob@contoso.com' } };
    };
    const res = await get(orderId, AZURE);
    expect(res.status).toBe(200);
    expect(JSON.stringify(json(res))).not.toContain('bob@contoso.com');
    expect(json(res).monitor.customStatus.detail).toBe('requested by support');
    monitor.status = async () => ({ runtimeStatus: 'Running', customStatus: { phase: 'compensating', detail: 'requeue 2 requested by bob@contoso.com' } });
    expect(json(await get(orderId, AZURE)).monitor.customStatus.detail).toBe('requeue 2 requested by support');
  });

  it('replaces a support name only where it stands whole, not inside other words', async () => {
    const { orderId } = json(await create(order));
    const outage = 'Cosmos DB did not serve it: Timeout Error! Request took more than 10000 ms; still so after 3600 s';
    deps.orders.docs.get(orderId)!.timeline.push(
      { at: '2026-01-01T00:00:01.000Z', kind: 'support-action', detail: 'compensate', actor: 'Tim' },
      { at: '2026-01-01T00:00:02.000Z', kind: 'compensation-started', detail: 'run 1', actor: 'monitor', reason: 'requested by Tim' },
      { at: '2026-01-01T00:00:03.000Z', kind: 'compensation-failed', detail: 'refundPayment failed after retries', actor: 'monitor', reason: outage },
    );
    const timeline = json(await get(orderId, AZURE)).timeline;
    expect(timeline.slice(-3)).toEqual([
      expect.objectContaining({ kind: 'support-action', actor: 'support' }),
      expect.objectContaining({ kind: 'compensation-started', reason: 'requested by support' }),
      expect.objectContaining({ kind: 'compensation-failed', reason: outage }),
    ]);
  });

  /** A placed order moved to `compensating`, its timeline given these entries. */
  async function compensatingOrder(...entries: TimelineEntry[]): Promise<{ orderId: string; stored: OrderDocument }> {
    const { orderId } = json(await create(order));
    const stored = deps.orders.docs.get(orderId)!;
    stored.state = 'compensating';
    stored.timeline.push(...entries);
    return { orderId, stored };
  }

  it("shows a compensating order's latest run with its status: the step it is on and a wait for Cosmos DB", async () => {
    const { orderId, stored } = await compensatingOrder(
      { at: '2026-01-01T00:00:01.000Z', kind: 'compensation-started', detail: 'run 1', actor: 'monitor', reason: 'billing failed' },
      { at: '2026-01-01T00:00:02.000Z', kind: 'support-action', detail: 'compensate', actor: 'ana@contoso.com' },
      { at: '2026-01-01T00:00:03.000Z', kind: 'compensation-started', detail: 'run 2', actor: 'ana@contoso.com', reason: 'requested by ana@contoso.com' },
    );
    const asked: [string, number | undefined][] = [];
    const waiting = { until: '2026-01-01T00:01:00.000Z', why: 'Cosmos DB did not serve it: 429' };
    monitor.status = async (id: string, run?: number) => {
      asked.push([id, run]);
      return run === undefined
        ? { runtimeStatus: 'Running', customStatus: { phase: 'compensating' } }
        : { runtimeStatus: 'Running', customStatus: { phase: 'compensating', reason: 'requested by ana@contoso.com', current: 'refundPayment', done: [], failures: [], waiting } };
    };
    const res = await get(orderId);
    expect(asked).toEqual([[orderId, undefined], [orderId, 2]]);
    expect(json(res).compensation).toEqual({
      run: 2,
      status: { runtimeStatus: 'Running', customStatus: expect.objectContaining({ current: 'refundPayment', waiting }) },
    });
    // Its status may quote a support person too.
    expect(json(await get(orderId, AZURE)).compensation.status.customStatus.reason).toBe('requested by support');
    // A run whose status cannot be read (or not started yet) is still named; other orders have none.
    monitor.status = async (_id: string, run?: number) => (run === undefined ? { runtimeStatus: 'Running', customStatus: null } : null);
    expect(json(await get(orderId)).compensation).toEqual({ run: 2, status: null });
    stored.state = 'cancelled';
    expect(json(await get(orderId)).compensation).toBeUndefined();
  });

  it('names the run a person asked for, not begun yet, instead of the previous run under its number', async () => {
    // Run 1 ended in attention; a person asked to compensate again, and the monitor has not begun the run.
    const { orderId, stored } = await compensatingOrder(
      { at: '2026-01-01T00:00:01.000Z', kind: 'compensation-started', detail: 'run 1', actor: 'monitor', reason: 'billing failed' },
      { at: '2026-01-01T00:00:02.000Z', kind: 'attention', actor: 'monitor', reason: 'compensation could not finish: refundPayment' },
      { at: '2026-01-01T00:00:03.000Z', kind: 'support-action', detail: 'compensate', actor: 'ana@contoso.com' },
    );
    const asked: [string, number | undefined][] = [];
    monitor.status = async (id: string, run?: number) => {
      asked.push([id, run]);
      return { runtimeStatus: run === undefined ? 'Running' : 'Completed', customStatus: { phase: run === undefined ? 'compensating' : 'attention' } };
    };
    expect(json(await get(orderId)).compensation).toEqual({ run: 2, status: null, requestedAt: '2026-01-01T00:00:03.000Z' });
    // The finished run 1 is not read: its status would show as the run asked for.
    expect(asked).toEqual([[orderId, undefined]]);
    // Once the monitor begins it, the view reads that run.
    stored.timeline.push({ at: '2026-01-01T00:00:04.000Z', kind: 'compensation-started', detail: 'run 2', actor: 'ana@contoso.com', reason: 'requested by ana@contoso.com' });
    expect(json(await get(orderId)).compensation).toEqual({ run: 2, status: { runtimeStatus: 'Completed', customStatus: { phase: 'attention' } } });
    expect(asked.at(-1)).toEqual([orderId, 2]);
  });

  it("answers a compensating order, statuses left out, within one status read's bound of the order when the durable backend does not answer", async () => {
    const { orderId } = await compensatingOrder({ at: '2026-01-01T00:00:01.000Z', kind: 'compensation-started', detail: 'run 1', actor: 'monitor', reason: 'billing failed' });
    // Cosmos DB slow to answer, within the request's wait for it.
    deps.settings.storeWaitMs = 600;
    const read = deps.orders.get.bind(deps.orders);
    deps.orders.get = async (id, options) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      return read(id, options);
    };
    // The client the app uses, over a durable backend that does not answer: each read gives up after 400 ms.
    const asked: string[] = [];
    const silent = { getStatus: (id: string) => (asked.push(id), new Promise(() => undefined)) } as unknown as DurableClient;
    const durable = new DurableMonitorClient(silent, undefined, 400);
    const started = performance.now();
    const res = await handleGetOrder(
      new HttpRequest({ method: 'GET', url: `${BASE}/orders/${orderId}`, params: { id: orderId } }),
      context(),
      () => ({ deps, monitor: durable }),
      LOCAL,
    );
    // Not a 503 for a Cosmos DB that did answer, and not one status read after the other.
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ id: orderId, state: 'compensating', monitor: null, compensation: { run: 1, status: null } });
    expect(asked).toEqual([orderId, `${orderId}:compensation:1`]);
    expect(performance.now() - started).toBeLessThan(750);
  });

  it('still answers with the order when the monitor status cannot be read, leaving the monitor out', async () => {
    const { orderId } = json(await create(order));
    monitor.statusFailWith = new Error('the durable backend did not answer within 5000 ms');
    const res = await get(orderId);
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ id: orderId, state: 'accepted', monitor: null });
  });

  it('finds an order by its id pasted in capitals, and answers with the id as stored', async () => {
    const { orderId } = json(await create(order));
    const res = await get(orderId.toUpperCase());
    expect(res.status).toBe(200);
    expect(json(res).id).toBe(orderId);
  });

  it('answers 503 when the order store is unavailable, with no word of idempotency keys', async () => {
    const { orderId } = json(await create(order));
    deps.orders.get = async () => {
      throw new Error('connect ECONNREFUSED');
    };
    const res = await get(orderId);
    expect(res.status).toBe(503);
    expect(json(res).detail).toBe('a service this API depends on is unavailable; retry later');
  });

  it('shows monitor null when there is no instance', async () => {
    const { orderId } = json(await create(order));
    monitor.instances.clear();
    expect(json(await get(orderId)).monitor).toBeNull();
  });

  it.each(['00000000-0000-4000-8000-000000000000', 'bad id?'])('answers 404 problem for %s', async (id) => {
    const res = await get(id);
    expect(res.status).toBe(404);
    expect(header(res, 'Content-Type')).toBe('application/problem+json');
  });
});

describe('GET /api/orders', () => {
  const list = (query: Record<string, string>, access = LOCAL, headers: Record<string, string> = {}) =>
    handleListOrders(new HttpRequest({ method: 'GET', url: `${BASE}/orders?${new URLSearchParams(query)}`, query, headers }), context(), () => deps, access);

  it("answers 503 within the request's Cosmos DB wait for a page Cosmos DB keeps throttling", async () => {
    deps.settings.storeWaitMs = 100;
    const signals: (AbortSignal | undefined)[] = [];
    deps.orders.list = (_filter, _page, options) => {
      signals.push(options?.signal);
      return new Promise((resolve, reject) => options?.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    };
    const res = await list({});
    expect(res.status).toBe(503);
    expect(json(res).detail).toBe('Cosmos DB did not answer within 100 ms');
    expect(signals[0]?.aborted).toBe(true);
  });

  it("is every customer's orders: support only", async () => {
    const id = json(await create({ ...order, customerId: 'alice@example.com' })).orderId;
    const anonymous = await list({ customerId: 'alice@example.com' }, AZURE);
    expect(anonymous).toMatchObject({ status: 401, jsonBody: { type: '/problems/unauthenticated' } });
    expect(JSON.stringify(anonymous.jsonBody)).not.toContain(id);
    expect((await list({}, AZURE, signedIn(['reader']))).status).toBe(403);
    // Without App Service Authentication nothing vouches for the header: nobody is signed in.
    expect((await list({}, {}, signedIn(['support']))).status).toBe(401);
    const support = await list({ customerId: 'alice@example.com' }, AZURE, signedIn(['support']));
    expect(json(support).orders).toEqual([expect.objectContaining({ id, customerId: 'alice@example.com' })]);
  });

  it('lists newest first, filtered and paged with a continuation token', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(json(await create(order)).orderId);
    await deps.orders.transitionStatus(ids[1]!, { service: 'billing', from: ['pending'], to: 'done' });

    const first = json(await list({ pageSize: '2' }));
    expect(first.orders.map((o: { id: string }) => o.id)).toEqual([ids[4], ids[3]]);
    const second = json(await list({ pageSize: '2', continuationToken: first.continuationToken }));
    expect(second.orders.map((o: { id: string }) => o.id)).toEqual([ids[2], ids[1]]);

    const done = json(await list({ 'status.billing': 'done' }));
    expect(done.orders.map((o: { id: string }) => o.id)).toEqual([ids[1]]);
    expect(json(await list({ state: 'completed' })).orders).toEqual([]);
  });

  it('finds the orders nothing has moved since an instant (updatedBefore), with any offset, and binds its pages to it', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(json(await create({ ...order, customerId: 'quiet' })).orderId);
    ids.forEach((id, i) => (deps.orders.docs.get(id)!.updatedAt = `2026-11-29T17:0${i}:00.000Z`));
    const found = async (query: Record<string, string>) => json(await list({ customerId: 'quiet', ...query })).orders.map((o: { id: string }) => o.id);
    expect(await found({ updatedBefore: '2026-11-29T17:02:00Z' })).toEqual([ids[1], ids[0]]);
    // The same instant at another offset, and with fractions of a second.
    expect(await found({ updatedBefore: '2026-11-29T18:02:00.001+01:00' })).toEqual([ids[2], ids[1], ids[0]]);
    expect(await found({ updatedBefore: '2026-11-29T17:00:00Z' })).toEqual([]);
    const first = json(await list({ customerId: 'quiet', updatedBefore: '2026-11-29T17:03:00Z', pageSize: '2' }));
    expect(json(await list({ customerId: 'quiet', updatedBefore: '2026-11-29T17:03:00Z', pageSize: '2', continuationToken: first.continuationToken })).orders).toHaveLength(1);
    // A page token is for the instant it was issued with: a stuck-orders sweep pages with one.
    expect((await list({ customerId: 'quiet', updatedBefore: '2026-11-29T17:03:01Z', pageSize: '2', continuationToken: first.continuationToken })).status).toBe(400);
    expect(await found({ updatedBefore: '2026-11-29T18:01:00.5+01:00' })).toEqual([ids[1], ids[0]]);
    expect(await found({ updatedBefore: '2028-02-29T00:00:00Z' })).toEqual([ids[3], ids[2], ids[1], ids[0]]);
    // "+01:00" unencoded in a query string arrives as " 01:00".
    expect(json(await list({ updatedBefore: '2026-11-29T18:02:00 01:00' })).errors).toEqual([
      { path: 'updatedBefore', message: 'must be a date and time with its offset; a "+" in a query string is sent as %2B' },
    ]);
    for (const updatedBefore of ['yesterday', '2026-11-29', '2026-11-29T17:00:00', '2026-02-30T17:00:00Z', '2026-11-29T25:00:00Z', '2026-11-29T17:00:00+24:00', '2027-02-29T00:00:00Z']) {
      const res = await list({ updatedBefore });
      expect(res.status).toBe(400);
      expect(json(res).errors).toEqual([{ path: 'updatedBefore', message: expect.stringMatching(/^must be a date and time/) }]);
    }
  });

  it('reads updatedBefore at its edges as the instant it names: past the millisecond, on 29 February 0000, and after 9999 in UTC', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push(json(await create({ ...order, customerId: 'edges' })).orderId);
    ids.forEach((id, i) => (deps.orders.docs.get(id)!.updatedAt = `2026-11-29T17:0${i}:00.000Z`));
    const found = async (updatedBefore: string) => json(await list({ customerId: 'edges', updatedBefore })).orders.map((o: { id: string }) => o.id);
    // A stamp of 17:00:00.000 is before 17:00:00.0001: the fraction past the millisecond is not dropped.
    expect(await found('2026-11-29T17:00:00.0001Z')).toEqual([ids[0]]);
    expect(await found('2026-11-29T17:01:00.000999999Z')).toEqual([ids[1], ids[0]]);
    // Year 0000 is a leap year (ISO 8601's, as Date.parse reads it), not 1900.
    expect(await found('0000-02-29T00:00:00Z')).toEqual([]);
    // 9999 at a negative offset is in the year 10000 in UTC, whose "+010000-..." text sorts before every stamp.
    for (const updatedBefore of ['9999-12-31T23:00:00-05:00', '9999-12-31T23:59:59.9991Z']) {
      const res = await list({ customerId: 'edges', updatedBefore });
      expect(res.status).toBe(400);
      expect(json(res).errors).toEqual([{ path: 'updatedBefore', message: expect.stringMatching(/^must be a date and time/) }]);
    }
    expect(await found('9999-12-31T23:59:59.999Z')).toEqual([ids[1], ids[0]]);
  });

  it('refuses a continuation token sent with other filters than it was issued for, or not one of its own', async () => {
    for (let i = 0; i < 3; i++) await create({ ...order, customerId: 'pager' });
    const first = json(await list({ customerId: 'pager', pageSize: '1' }));
    expect(first.continuationToken).toEqual(expect.any(String));
    // Same filters (page size may change): the next page.
    expect((await list({ customerId: 'pager', pageSize: '2', continuationToken: first.continuationToken })).status).toBe(200);
    const other = await list({ customerId: 'someone-else', continuationToken: first.continuationToken });
    expect(other.status).toBe(400);
    expect(json(other).errors).toEqual([
      { path: 'continuationToken', message: 'was issued for other filters; ask for the first page again without it' },
    ]);
    expect(json(await list({ continuationToken: 'garbage' })).errors).toEqual([{ path: 'continuationToken', message: 'is not a token this API issued' }]);
  });

  it("lists one customer's orders", async () => {
    const mine = json(await create({ ...order, customerId: 'customer-find-me' })).orderId;
    await create(order);
    const found = json(await list({ customerId: ' customer-find-me ' }));
    expect(found.orders).toEqual([expect.objectContaining({ id: mine, customerId: 'customer-find-me' })]);
    expect(json(await list({ customerId: 'nobody' })).orders).toEqual([]);
    expect(json(await list({ customerId: '' })).errors).toEqual([{ path: 'customerId', message: 'must not be empty' }]);
  });

  it('answers 400 naming each bad query parameter in plain words', async () => {
    const res = await list({ state: 'shipped', pageSize: 'ten', 'status.billing': 'paid', sort: 'asc' });
    expect(res.status).toBe(400);
    expect(json(res).errors).toEqual([
      { path: 'state', message: 'must be one of: accepted, processing, completed, compensating, cancelled, attention' },
      { path: 'status.billing', message: 'must be one of: pending, processing, done, failed, deadlettered, compensated' },
      { path: 'pageSize', message: 'must be a whole number' },
      { path: 'sort', message: 'is not a known field' },
    ]);
    for (const pageSize of ['101', '12345678901234567890']) expect(json(await list({ pageSize })).errors).toEqual([{ path: 'pageSize', message: 'must be at most 100' }]);
    for (const pageSize of ['0000000000', '-1', '-0', '-12345678901234567890']) expect(json(await list({ pageSize })).errors).toEqual([{ path: 'pageSize', message: 'must be at least 1' }]);
    expect((await list({ pageSize: '00000000002' })).status).toBe(200);
  });

  it.each(['0x10', '1e1', ' 5', '', '2.0', '+1', '--1'])('takes a page size in digits only, not %j', async (pageSize) => {
    const res = await list({ pageSize });
    expect(res.status).toBe(400);
    expect(json(res).errors).toEqual([{ path: 'pageSize', message: 'must be a whole number' }]);
  });

  it('refuses a parameter given more than once rather than use one of its values, as the request reaches it on Azure', async () => {
    const url = `${BASE}/orders?state=cancelled&state=attention&pageSize=2&pageSize=x&customerId=a&customerId=b&sort=a&sort=b`;
    // The Functions host hands the worker one value per name, repeats joined with a comma.
    const query = { state: 'cancelled,attention', pageSize: '2,x', customerId: 'a,b', sort: 'a,b' };
    const res = await handleListOrders(new HttpRequest({ method: 'GET', url, query }), context(), () => deps, LOCAL);
    expect(res.status).toBe(400);
    expect(json(res).errors).toEqual([
      { path: 'state', message: 'must be given once' },
      { path: 'pageSize', message: 'must be given once' },
      { path: 'customerId', message: 'must be given once' },
      { path: 'sort', message: 'is not a known field' },
    ]);
  });
});

describe('inventory routes', () => {
  it('lists every SKU and returns one, 404 for an unknown one', async () => {
    const all = await handleListInventory(new HttpRequest({ method: 'GET', url: `${BASE}/inventory` }), context(), () => deps);
    expect((all.jsonBody as unknown[]).length).toBe(8);
    const one = await handleGetInventoryItem(new HttpRequest({ method: 'GET', url: `${BASE}/inventory/MOUSE-01`, params: { sku: 'MOUSE-01' } }), context(), () => deps, LOCAL);
    expect(one.jsonBody).toEqual({ sku: 'MOUSE-01', name: 'Wireless mouse', price: 24.5, available: 1000, reserved: 0, holds: [] });
    const missing = await handleGetInventoryItem(new HttpRequest({ method: 'GET', url: `${BASE}/inventory/NOPE`, params: { sku: 'NOPE' } }), context(), () => deps, AZURE);
    expect(missing.status).toBe(404);
    // Dots alone are path steps: read as an item id, `..` is the container itself.
    for (const sku of ['.', '..']) {
      const steps = await handleGetInventoryItem(new HttpRequest({ method: 'GET', url: `${BASE}/inventory/x`, params: { sku } }), context(), () => deps, LOCAL);
      expect(steps).toMatchObject({ status: 404, jsonBody: { detail: `no sku ${JSON.stringify(sku)}` } });
    }
  });

  it('refuses a query parameter by name, as the orders list does, rather than ignore it', async () => {
    const all = await handleListInventory(new HttpRequest({ method: 'GET', url: `${BASE}/inventory?pageSize=5` }), context(), () => deps);
    expect(all.status).toBe(400);
    expect((all.jsonBody as { errors: unknown }).errors).toEqual([{ path: 'pageSize', message: 'is not a known field' }]);
    const one = await handleGetInventoryItem(new HttpRequest({ method: 'GET', url: `${BASE}/inventory/MOUSE-01?x=1&x=2`, params: { sku: 'MOUSE-01' } }), context(), () => deps, LOCAL);
    expect(one.status).toBe(400);
    expect((one.jsonBody as { errors: unknown }).errors).toEqual([{ path: 'x', message: 'is not a known field' }]);
  });

  it('shows which orders hold part of a SKU\'s reserved stock, whichever form their hold was written in', async () => {
    await deps.inventory.reserve('MOUSE-01', 'order-a', 2, 'delivery-1');
    deps.inventory.items.get('MOUSE-01')!.holds['order-b'] = 3;
    const item = (access: SupportAccess, headers: Record<string, string> = {}) =>
      handleGetInventoryItem(new HttpRequest({ method: 'GET', url: `${BASE}/inventory/MOUSE-01`, params: { sku: 'MOUSE-01' }, headers }), context(), () => deps, access);
    for (const one of [await item(LOCAL), await item(AZURE, signedIn(['support']))]) {
      expect(json(one).holds).toEqual([
        { orderId: 'order-a', quantity: 2 },
        { orderId: 'order-b', quantity: 3 },
      ]);
    }
    // Anyone else sees the stock, not which orders hold it: an order's id opens that order.
    for (const one of [await item(AZURE), await item(AZURE, signedIn(['reader'])), await item({}, signedIn(['support']))]) {
      expect(one).toMatchObject({ status: 200 });
      expect(Object.keys(one.jsonBody as object).sort()).toEqual(['available', 'name', 'price', 'reserved', 'sku']);
      expect(JSON.stringify(one.jsonBody)).not.toContain('order-a');
    }
  });
});
