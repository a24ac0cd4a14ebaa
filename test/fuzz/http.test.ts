/**
 * Hostile HTTP against the running host: random methods, paths (percent-encoded, raw bytes,
 * traversal, very long), ids, query strings and headers, sent as raw bytes over a socket so
 * nothing is tidied up by a client library on the way. Never a 5xx, never a hang, and the host
 * still takes and completes an order afterwards. Bodies are fuzzed in test/e2e/orders.test.ts.
 */
import fc from 'fast-check';
import { connect } from 'node:net';
import { startSystem, type RunningSystem } from '../e2e/system';

jest.setTimeout(120_000);

let system: RunningSystem;
let port: number;

beforeAll(async () => {
  system = await startSystem();
  port = Number(new URL(system.baseUrl).port);
});

afterAll(async () => {
  await system?.stop();
});

interface RawAnswer {
  status: number;
  head: string;
}

/**
 * Sends `request` as is and reads the status line; a connection closed without one is status 0.
 * `incompleteOk`: the request may leave the server waiting for more bytes (a body it was promised);
 * after a short wait that counts as no answer instead of a failure.
 */
function rawRequest(request: Buffer, options: { incompleteOk?: boolean } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(
      () => {
        socket.destroy();
        if (options.incompleteOk && chunks.length === 0) resolve({ status: 0, head: '' });
        else reject(new Error(`no complete answer within 10 s to ${JSON.stringify(request.subarray(0, 200).toString('latin1'))}`));
      },
      options.incompleteOk ? 2_000 : 10_000,
    );
    const finish = (): void => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: status ? Number(status[1]) : 0, head: text.slice(0, text.indexOf('\r\n\r\n') >>> 0).slice(0, 2000) });
    };
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', finish);
    socket.on('error', finish);
    socket.write(request);
  });
}

function httpRequest(method: string, target: string, headers: [string, string][] = [], body = ''): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...headers.map(([k, v]) => `${k}: ${v}`)];
  if (body !== '' || method === 'POST') lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), Buffer.from(body, 'utf8')]);
}

const ROUTES = ['/api/orders', '/api/orders/', '/api/inventory', '/api/inventory/', '/api/portal/', '/api/support/faults', '/api/', '/', '/admin/', ''];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE'];

/** Path segments: ordinary ids, unicode, percent-encoded bytes (valid and broken), traversal, very long. */
const segment = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9-]{1,64}$/),
  fc.string({ unit: 'binary', maxLength: 40 }).map(encodeURIComponent),
  fc.uint8Array({ maxLength: 30 }).map((bytes) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
  fc.constantFrom('..', '.', '%2e%2e', '%2F', '%00', '%', '%zz', '%c0%af', '..%2f..%2fetc%2fpasswd', '~', '{id}', '*', 'requeue', 'compensate', '%E2%80%AE'),
  fc.integer({ min: 1_000, max: 12_000 }).map((n) => 'a'.repeat(n)),
);
const query = fc.option(
  fc.array(fc.tuple(fc.constantFrom('state', 'pageSize', 'continuationToken', 'status.billing', 'x', ''), fc.string({ unit: 'binary', maxLength: 30 }).map(encodeURIComponent)), { maxLength: 4 }),
  { nil: undefined },
);

it('answers every method on every route, with hostile paths and queries, without a 5xx', async () => {
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.constantFrom(...METHODS), fc.stringMatching(/^[A-Z]{1,12}$/)),
      fc.constantFrom(...ROUTES),
      fc.array(segment, { maxLength: 3 }),
      query,
      async (method, route, segments, params) => {
        const path = route + segments.join('/');
        const target = (path.startsWith('/') ? path : `/${path}`) + (params ? `?${params.map(([k, v]) => `${k}=${v}`).join('&')}` : '');
        const answer = await rawRequest(httpRequest(method, target));
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (answer.status === 0 || answer.status >= 500) throw new Error(`${method} ${target.slice(0, 300)} -> ${answer.head}`);
      },
    ),
    { numRuns: 300 },
  );
  // The generator must reach the app's own answers (404/405/400), not only the parser's 400s.
  expect(statuses.get(404) ?? 0).toBeGreaterThan(20);
  expect((statuses.get(200) ?? 0) + (statuses.get(405) ?? 0)).toBeGreaterThan(10);
});

it('answers 404 problem+json for any well-formed id that is no order, and for any unknown SKU', async () => {
  // `.` and `..` are path steps, resolved by the URL itself before any request is made.
  const unknownSku = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/).filter((s) => s !== '.' && s !== '..');
  await fc.assert(
    fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9-]{1,64}$/), unknownSku, async (id, sku) => {
      const order = await system.request('GET', `/api/orders/${id}`);
      expect(order.status).toBe(404);
      expect(order.headers.get('content-type')).toContain('application/problem+json');
      fc.pre(!['KEYBOARD-01', 'MOUSE-01', 'MONITOR-27', 'HEADSET-01', 'CABLE-USB-C', 'DOCK-01', 'WEBCAM-01', 'LIMITED-EDITION'].includes(sku));
      const item = await system.request('GET', `/api/inventory/${sku}`);
      expect(item.status).toBe(404);
    }),
    { numRuns: 100 },
  );
});

/** Header names and values a client library would refuse to send: control bytes, Latin-1, huge, repeated. */
const headerName = fc.oneof(
  fc.constantFrom('Idempotency-Key', 'idempotency-key', 'Content-Type', 'x-correlation-id', 'Accept', 'Content-Encoding', 'Transfer-Encoding', 'Authorization', 'x-ms-client-principal', 'Cookie', 'Expect'),
  fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}$/),
);
const headerValue = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b.filter((x) => x !== 10 && x !== 13)).toString('latin1')),
  fc.constantFrom('', ' ', 'gzip', 'chunked', '100-continue', 'application/json; charset=utf-16', 'Bearer x', 'e30=', '*/*'),
  fc.integer({ min: 180, max: 9_000 }).map((n) => 'k'.repeat(n)),
);

it('takes an order whatever else the headers say, or refuses it with a 4xx, never a 5xx', async () => {
  const body = JSON.stringify({ customerId: 'fuzz-headers', items: [{ sku: 'MOUSE-01', quantity: 1 }] });
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }), async (headers) => {
      const safe = headers.filter(([k]) => !/^(content-length|host|connection)$/i.test(k));
      const answer = await rawRequest(httpRequest('POST', '/api/orders', safe, body));
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      if (answer.status === 0 || answer.status >= 500) throw new Error(`headers ${JSON.stringify(safe).slice(0, 500)} -> ${answer.head}`);
    }),
    { numRuns: 150 },
  );
  // Both outcomes happened: the run covered accepted orders and refused headers.
  expect(statuses.get(202) ?? 0).toBeGreaterThan(10);
  expect([...statuses.keys()].some((s) => s >= 400 && s < 500)).toBe(true);
});

it('refuses an order sent in chunks, however the body is split, with 411 and places nothing', async () => {
  const customerId = `fuzz-chunked-${Date.now()}`;
  const body = JSON.stringify({ customerId, items: [{ sku: 'MOUSE-01', quantity: 1 }] });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: body.length }), { maxLength: 6 }),
      fc.constantFrom('chunked', 'Chunked', 'gzip, chunked'),
      fc.boolean(),
      async (cuts, encoding, withKey) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks = [0, ...at].map((from, i) => body.slice(from, at[i] ?? body.length)).filter((c) => c !== '');
        const head = [
          'POST /api/orders HTTP/1.1',
          'Host: 127.0.0.1',
          'Content-Type: application/json',
          `Transfer-Encoding: ${encoding}`,
          ...(withKey ? [`Idempotency-Key: chunked-${chunks.length}-${at.join('.')}`] : []),
          'Connection: close',
        ];
        const framed = chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('');
        const answer = await rawRequest(Buffer.from(`${head.join('\r\n')}\r\n\r\n${framed}0\r\n\r\n`, 'utf8'));
        if (answer.status !== 411) throw new Error(`${JSON.stringify(chunks)} as ${encoding} -> ${answer.head}`);
      },
    ),
    { numRuns: 60 },
  );
  const placed = await system.request('GET', `/api/orders?customerId=${customerId}`);
  expect(placed.status).toBe(200);
  expect(placed.body.orders).toEqual([]);
});

it('answers garbage request lines and broken framing with a 4xx or a closed connection, never a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.concat([Buffer.from(b), Buffer.from('\r\n\r\n')])),
        fc.string({ maxLength: 100 }).map((s) => Buffer.from(`${s}\r\n\r\n`, 'utf8')),
        fc.constantFrom(
          'POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nConnection: close\r\n\r\n{}',
          'POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
          'POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}',
          'GET /api/orders/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
          'GET http://evil.example/api/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
          'GET /api/orders HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n',
        ).map((s) => Buffer.from(s, 'latin1')),
      ),
      async (bytes) => {
        const answer = await rawRequest(bytes, { incompleteOk: true });
        if (answer.status >= 500) throw new Error(`${JSON.stringify(bytes.toString('latin1').slice(0, 200))} -> ${answer.head}`);
      },
    ),
    { numRuns: 100 },
  );
});

it('is still healthy afterwards: takes a new order and completes it', async () => {
  let exited = false;
  void system.host.exited.then(() => (exited = true));
  await new Promise((r) => setImmediate(r));
  expect(exited).toBe(false);
  const res = await system.postOrder({ customerId: 'after-fuzz', items: [{ sku: 'KEYBOARD-01', quantity: 1 }] });
  expect(res.status).toBe(202);
  const done = await system.waitForOrder<{ state: string }>(res.body.orderId, (o) => o.state === 'completed', 30_000);
  expect(done.state).toBe('completed');
  expect(system.host.output()).not.toMatch(/Unhandled promise rejection|uncaughtException/);
});
