/**
 * An error answer on the way to Cosmos DB whose body is not JSON (a gateway's HTML page, a 503 with
 * no body): the app's Cosmos client surfaces it with its status, so it is taken for an outage and
 * waited out, not for a bug.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCosmosClient } from '../../src/azure/clients';
import { isConflict, isNotFound, isPreconditionFailed, isStoreUnavailable } from '../../src/azure/cosmosErrors';
import { statusCodeOf } from '../../src/errors';

let server: Server;
type Answer = { status: number; type: string; body: string; headers?: Record<string, string> };
let answer: Answer = { status: 503, type: 'text/html', body: '' };
/** Answers given first, one per request, before `answer`. */
let firstAnswers: Answer[] = [];
/** When each request came, in ms. */
let requestTimes: number[] = [];
let endpoint: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    requestTimes.push(Date.now());
    const given = firstAnswers.shift() ?? answer;
    res.writeHead(given.status, { 'content-type': given.type, ...given.headers });
    res.end(given.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function readFailure(): Promise<unknown> {
  const { client, agent } = createCosmosClient({ endpoint, key: Buffer.from('not-a-real-key').toString('base64') });
  try {
    return await client.database('orders-db').container('orders').item('o-1', 'o-1').read().then(
      () => new Error('the read succeeded'),
      (e: unknown) => e,
    );
  } finally {
    client.dispose();
    agent?.destroy();
  }
}

it.each([
  { status: 502, type: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1></body></html>' },
  { status: 503, type: 'text/html', body: '' },
  { status: 504, type: 'text/plain', body: 'upstream request timeout' },
  { status: 503, type: 'application/json', body: '"Service Unavailable"' },
])('a $status with the body $body is an outage with its status, not a parse error', async (given) => {
  answer = given;
  const err = await readFailure();
  expect(statusCodeOf(err)).toBe(given.status);
  expect(isStoreUnavailable(err)).toBe(true);
  expect((err as Error).message).toContain(`a ${given.status} on the way to Cosmos DB, with`);
  if (given.body) expect((err as Error).message).toContain(given.body.slice(0, 20));
});

it('keeps the JSON Cosmos DB answers errors with as it is', async () => {
  answer = { status: 400, type: 'application/json', body: JSON.stringify({ code: 'BadRequest', message: 'One of the specified inputs is invalid' }) };
  const err = await readFailure();
  expect(statusCodeOf(err)).toBe(400);
  expect(isStoreUnavailable(err)).toBe(false);
  expect((err as Error).message).toBe('One of the specified inputs is invalid');
  expect(err).toMatchObject({ body: { code: 'BadRequest' } });
});

it('an HTML error page that is not an outage (a 400 from a proxy) keeps its status, and is not waited out', async () => {
  answer = { status: 400, type: 'text/html', body: '<html>Bad Request</html>' };
  const err = await readFailure();
  expect(statusCodeOf(err)).toBe(400);
  expect(isStoreUnavailable(err)).toBe(false);
});

it.each([404, 409, 412])(
  'a %i whose body is not JSON did not come from Cosmos DB: it is not read as an answer about the document',
  async (status) => {
    // Cosmos DB answers every error with its JSON; an HTML 404 is a gateway's or a proxy's (a
    // route it does not know, an endpoint that points elsewhere). Read as Cosmos DB's own 404, an
    // existing order would be "not found" (its monitor would end as if the order were missing), a
    // 409 would pass for a document already written (a catalog item, a parked dead-letter), a 412
    // for a race lost.
    answer = { status, type: 'text/html', body: `<html><body><h1>${status}</h1></body></html>` };
    const err = await readFailure();
    expect(isNotFound(err) || isConflict(err) || isPreconditionFailed(err)).toBe(false);
    // The call was not served: it is waited out like any other answer from something on the way.
    expect(isStoreUnavailable(err)).toBe(true);
    expect((err as Error).message).toContain(`a ${status} on the way to Cosmos DB`);
  },
);

it('a 429 that is not Cosmos DB\'s is retried after the wait its Retry-After asks for, not at once', async () => {
  // The SDK retries a 429 after Cosmos DB's x-ms-retry-after-ms; a gateway's or a proxy's 429
  // carries the standard Retry-After (seconds) instead, and without a wait the SDK would send
  // its 9 retries back to back to the very thing that asked for less.
  firstAnswers = [{ status: 429, type: 'text/html', body: '<html>Too Many Requests</html>', headers: { 'retry-after': '1' } }];
  answer = { status: 200, type: 'application/json', body: JSON.stringify({ id: 'o-1', _etag: '"1"' }) };
  requestTimes = [];
  const { client, agent } = createCosmosClient({ endpoint, key: Buffer.from('not-a-real-key').toString('base64') });
  try {
    const { resource } = await client.database('orders-db').container('orders').item('o-1', 'o-1').read();
    expect(resource).toMatchObject({ id: 'o-1' });
  } finally {
    client.dispose();
    agent?.destroy();
  }
  expect(requestTimes).toHaveLength(2);
  expect(requestTimes[1]! - requestTimes[0]!).toBeGreaterThanOrEqual(900);
});

it('a 429 that is not Cosmos DB\'s and names no wait is retried after a second', async () => {
  firstAnswers = [{ status: 429, type: 'text/plain', body: '' }];
  answer = { status: 200, type: 'application/json', body: JSON.stringify({ id: 'o-1', _etag: '"1"' }) };
  requestTimes = [];
  const { client, agent } = createCosmosClient({ endpoint, key: Buffer.from('not-a-real-key').toString('base64') });
  try {
    await client.database('orders-db').container('orders').item('o-1', 'o-1').read();
  } finally {
    client.dispose();
    agent?.destroy();
  }
  expect(requestTimes).toHaveLength(2);
  expect(requestTimes[1]! - requestTimes[0]!).toBeGreaterThanOrEqual(900);
});
