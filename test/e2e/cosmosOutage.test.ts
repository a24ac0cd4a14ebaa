/**
 * Cosmos DB that stops answering (the stand-in's process stopped with SIGSTOP: connections stay
 * open, nothing comes back, as in a network black hole): the API answers 503 within the client's
 * request timeout instead of hanging, and serves again once Cosmos DB answers.
 */
import { startLocalStack, type LocalStack } from '../../local/stack';
import { whileStopped } from '../support/processes';

/** The Cosmos client's request timeout (src/azure/clients.ts) and a margin for the machine. */
const ANSWER_WITHIN_MS = 10_000 + 8_000;

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack();
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

async function timed(method: string, path: string, body?: unknown): Promise<{ status: number; ms: number; body: any }> {
  const started = performance.now();
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json', 'idempotency-key': 'outage-1' },
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
