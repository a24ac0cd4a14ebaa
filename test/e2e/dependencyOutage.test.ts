/**
 * Cosmos DB or Service Bus that stops answering (the emulator's process stopped with SIGSTOP:
 * connections stay open, nothing comes back, as in a network black hole), or Cosmos DB that
 * throttles (429): the API answers 503 in bounded time instead of hanging, and serves again once
 * the dependency answers.
 */
import { standInThrottle } from '../../local/cosmos-emulator/throttle-client';
import { startLocalStack, type LocalStack } from '../../local/stack';
import { whileStopped } from '../support/processes';
import { waitForOrder } from './system';

/** The Cosmos client's request timeout (src/azure/clients.ts) and a margin for the machine. */
const ANSWER_WITHIN_MS = 10_000 + 8_000;
/** How long the intake waits for Service Bus (DEFAULT_INTAKE_WAIT_MS), and a margin for the machine. */
const INTAKE_WAIT_MS = 5_000;
const INTAKE_ANSWER_WITHIN_MS = INTAKE_WAIT_MS + 4_000;

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack();
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

async function timed(method: string, path: string, body?: unknown, key = 'outage-1'): Promise<{ status: number; ms: number; body: any }> {
  const started = performance.now();
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json', 'idempotency-key': key },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  return { status: res.status, ms: performance.now() - started, body: text ? JSON.parse(text) : undefined };
}

it('answers 503 within the request timeout while Cosmos DB does not answer, and serves again once it does', async () => {
  const order = { customerId: 'c-outage', items: [{ sku: 'MOUSE-01', quantity: 1 }] };
  const unknown = '00000000-0000-4000-8000-000000000000';
  // Warm: the host has its connections to the stand-in open.
  expect((await timed('GET', `/api/orders/${unknown}`)).status).toBe(404);

  await whileStopped(stack.cosmosEmulator.pid, async () => {
    const [read, placed] = await Promise.all([timed('GET', `/api/orders/${unknown}`), timed('POST', '/api/orders', order)]);
    for (const answer of [read, placed]) {
      expect(answer).toMatchObject({ status: 503, body: { status: 503, type: '/problems/service-unavailable' } });
      expect(answer.ms).toBeLessThan(ANSWER_WITHIN_MS);
    }
  });

  // The client retries with its Idempotency-Key: one order, whether or not the first write landed.
  const retried = await timed('POST', '/api/orders', order);
  expect(retried.status).toBe(202);
  const again = await timed('POST', '/api/orders', order);
  expect(again.body.orderId).toBe(retried.body.orderId);
  expect((await timed('GET', `/api/orders/${retried.body.orderId}`)).status).toBe(200);
}, 120_000);

it('answers an order 503 within the request timeout while Cosmos DB throttles every request, places nothing, and places it once on the retry', async () => {
  const order = { customerId: 'c-throttled', items: [{ sku: 'MOUSE-01', quantity: 1 }] };
  // Warm, and the catalog's prices cached: the intake's calls are the key's claim and the order's write.
  expect((await timed('POST', '/api/orders', order, 'throttle-warm')).status).toBe(202);

  // Each 429 says to wait 9 s: the SDK waits them out while it has waited less than 20 s (27 s
  // per call) before it gives up.
  await standInThrottle(stack.cosmos, { share: 1, retryAfterMs: 9_000 });
  let placed: Awaited<ReturnType<typeof timed>>;
  try {
    placed = await timed('POST', '/api/orders', order, 'throttled-1');
  } finally {
    await standInThrottle(stack.cosmos, { share: 0 });
  }
  expect(placed).toMatchObject({ status: 503, body: { status: 503, type: '/problems/service-unavailable' } });
  expect(placed.ms).toBeLessThan(ANSWER_WITHIN_MS);
  expect(placed.body.orderId).toBeUndefined();

  // The retry with the key places it once.
  const retried = await timed('POST', '/api/orders', order, 'throttled-1');
  expect(retried.status).toBe(202);
  const again = await timed('POST', '/api/orders', order, 'throttled-1');
  expect(again.body.orderId).toBe(retried.body.orderId);
  const seen = await waitForOrder(stack.baseUrl, retried.body.orderId, (o) => o.state === 'completed', 30_000, 250);
  expect(seen).toMatchObject({ state: 'completed' });

  // A read the SDK gave up retrying is a 503 that asks the client to wait what Cosmos DB asked.
  await standInThrottle(stack.cosmos, { share: 1, retryAfterMs: 400 });
  let read: Response;
  try {
    read = await fetch(`${stack.baseUrl}/api/orders/${retried.body.orderId}`, { signal: AbortSignal.timeout(60_000) });
  } finally {
    await standInThrottle(stack.cosmos, { share: 0 });
  }
  expect(read.status).toBe(503);
  expect(read.headers.get('retry-after')).toBe('1');
  expect(((await read.json()) as { detail: string }).detail).toContain('throttling');
}, 120_000);

it('answers 503 naming the recorded order once Service Bus has not answered for the intake wait, and the order completes once it does', async () => {
  const order = { customerId: 'c-sb-outage', items: [{ sku: 'KEYBOARD-01', quantity: 1 }] };
  // Warm: the host's sender has its link to the topic open.
  const warm = await timed('POST', '/api/orders', order, 'sb-warm');
  expect(warm.status).toBe(202);

  const placed = await whileStopped(stack.serviceBusEmulator.pid, () => timed('POST', '/api/orders', order, 'sb-outage-1'));
  expect(placed).toMatchObject({ status: 503, body: { status: 503, type: '/problems/service-unavailable' } });
  expect(placed.ms).toBeGreaterThanOrEqual(INTAKE_WAIT_MS - 100);
  expect(placed.ms).toBeLessThan(INTAKE_ANSWER_WITHIN_MS);
  const { orderId, statusUrl, detail } = placed.body;
  expect(statusUrl).toBe(`/api/orders/${orderId}`);
  expect(detail).toContain('retry with the same Idempotency-Key');

  // Nobody retries: the send that went on lands once Service Bus answers, and the order completes.
  const seen = await waitForOrder(stack.baseUrl, orderId, (o) => o.state === 'completed', 30_000, 250);
  expect(seen).toMatchObject({ state: 'completed', payment: { charged: 89.9, refunded: 0 } });
  expect(seen.notifications.map((n: { kind: string }) => n.kind)).toEqual(['confirmation']);
  expect(seen.timeline.find((e: { kind: string }) => e.kind === 'publish-failed')).toMatchObject({ reason: `Service Bus did not take the event within ${INTAKE_WAIT_MS} ms` });

  // A retry after all that gets the same order.
  const retried = await timed('POST', '/api/orders', order, 'sb-outage-1');
  expect(retried).toMatchObject({ status: 202, body: { orderId } });
}, 120_000);
