/**
 * HTTP triggers through the built host, table-driven: route templates, constraints, the order
 * routes are tried in (by function name, as on Azure), 404 (for a method too, as on Azure), route
 * prefixes, and what reaches the handler (headers, query, body bytes) and the client (status,
 * headers, cookies, no stack trace on errors).
 */
import * as http from 'node:http';
import { connect } from 'node:net';
import { startHost, type HostUnderTest, logShows } from './host-process';

/** Sends raw bytes (no client library to tidy them up) and returns the whole answer as text. */
function rawExchange(url: string, raw: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(raw));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

/** The status line of a raw request's answer. */
async function rawStatusLine(url: string, raw: string): Promise<string> {
  return (await rawExchange(url, raw)).split('\r\n')[0] ?? '';
}

interface RouteCase {
  name: string;
  method?: string;
  path: string;
  status: number;
  fn?: string;
  params?: Record<string, string>;
}

const routeCases: RouteCase[] = [
  { name: 'int constraint', path: '/api/items/42', status: 200, fn: 'itemById', params: { id: '42' } },
  // As on Azure: routes are tried by function name, not by template precedence (azure-functions-host#9876).
  { name: 'function-name order: itemByName before itemNew', path: '/api/items/new', status: 200, fn: 'itemByName', params: { name: 'new' } },
  { name: 'alpha constraint', path: '/api/items/apple', status: 200, fn: 'itemByName', params: { name: 'apple' } },
  { name: 'no constraint matches', path: '/api/items/a1', status: 404 },
  { name: 'literal segments are case-insensitive', path: '/API/Files/a', status: 200, fn: 'files', params: { path: 'a' } },
  { name: 'optional parameter absent', path: '/api/opt', status: 200, fn: 'optional', params: {} },
  { name: 'optional parameter present', path: '/api/opt/x', status: 200, fn: 'optional', params: { value: 'x' } },
  { name: 'optional parameter: one segment only', path: '/api/opt/x/y', status: 404 },
  { name: 'catch-all takes the rest, decoded', path: '/api/files/a/b%20c/d.txt', status: 200, fn: 'files', params: { path: 'a/b c/d.txt' } },
  { name: 'an encoded slash stays encoded, as Kestrel leaves it', path: '/api/opt/a%2Fb', status: 200, fn: 'optional', params: { value: 'a%2Fb' } },
  { name: 'catch-all keeps an encoded slash within a segment', path: '/api/files/a%2fb/c%20d', status: 200, fn: 'files', params: { path: 'a%2fb/c d' } },
  { name: 'catch-all may be empty', path: '/api/files', status: 200, fn: 'files', params: {} },
  {
    name: 'guid constraint',
    path: '/api/things/0f8fad5b-d9cb-469f-a165-70867728950e',
    status: 200,
    fn: 'guid',
    params: { id: '0f8fad5b-d9cb-469f-a165-70867728950e' },
  },
  { name: 'guid constraint rejects', path: '/api/things/not-a-guid', status: 404 },
  { name: 'range constraint inside', path: '/api/pages/5', status: 200, fn: 'ranged', params: { n: '5' } },
  { name: 'range constraint outside', path: '/api/pages/6', status: 404 },
  { name: 'route defaults to the function name', path: '/api/defaultRoute', status: 200, fn: 'defaultRoute' },
  { name: 'unset methods mean GET and POST', method: 'POST', path: '/api/defaultRoute', status: 200, fn: 'defaultRoute' },
  // As on Azure: a route whose methods do not match is no route (azure-functions-host#10098).
  { name: 'a method no route of the path has', method: 'DELETE', path: '/api/items/apple', status: 404 },
  { name: 'second allowed method', method: 'PUT', path: '/api/items/apple', status: 200, fn: 'itemByName' },
  { name: 'unknown route', path: '/api/nowhere', status: 404 },
  { name: 'outside the prefix', path: '/items/42', status: 404 },
  { name: 'trailing slash', path: '/api/items/42/', status: 200, fn: 'itemById' },
];

describe('HTTP triggers with routePrefix "api"', () => {
  let host: HostUnderTest;
  beforeAll(async () => {
    host = await startHost('http-app', { FIXTURE_OVERRIDDEN: 'from the environment' });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it.each(routeCases.map((c) => ({ ...c, method: c.method ?? 'GET' })))('$name: $method $path -> $status', async (c) => {
    const res = await fetch(`${host.url}${c.path}`, { method: c.method });
    expect(res.status).toBe(c.status);
    if (c.fn) {
      const body = (await res.json()) as { function: string; params: Record<string, string> };
      expect(body.function).toBe(c.fn);
      if (c.params) expect(body.params).toEqual(c.params);
    } else {
      await res.arrayBuffer();
    }
  });

  it('hands the handler headers, the query as the Functions host does and the exact body bytes', async () => {
    const bytes = Buffer.from([0, 255, 16, 13, 10, 0x7b]);
    const res = await fetch(`${host.url}/api/upload?a=1&A=2&b=x%20y&c=`, {
      method: 'POST',
      headers: { 'x-custom': 'yes', 'content-type': 'application/octet-stream', cookie: 'c1=v1; c2=v2' },
      body: bytes,
    });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as {
      method: string;
      url: string;
      query: Record<string, string[]>;
      headers: Record<string, string>;
      bodyHex: string;
    };
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe(`${host.url}/api/upload?a=1&A=2&b=x%20y&c=`);
    // As the Functions host sends it: a name once in any case, repeated values joined with a comma.
    expect(seen.query).toEqual({ a: ['1,2'], b: ['x y'], c: [''] });
    expect(seen.headers['x-custom']).toBe('yes');
    expect(seen.headers['cookie']).toBe('c1=v1; c2=v2');
    expect(seen.bodyHex).toBe(bytes.toString('hex'));
  });

  it('hands the handler a header sent twice as its values joined with a comma, as the Functions host does', async () => {
    // azure-functions-host ToRpcHttp: `pair.Value.ToString()` of ASP.NET Core's StringValues, which
    // joins with "," (Node's own parser joins with ", ", and cookies with "; ").
    const text = await rawExchange(
      host.url,
      'POST /api/upload HTTP/1.1\r\nHost: x\r\nX-Custom: a\r\nx-custom: b\r\nCookie: c1=v1\r\nCookie: c2=v2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    const seen = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string> };
    expect(seen.headers['x-custom']).toBe('a,b');
    expect(seen.headers['cookie']).toBe('c1=v1,c2=v2');
    // Except Host, which Kestrel refuses to take twice.
    const twoHosts = 'POST /api/upload HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';
    expect(await rawStatusLine(host.url, twoHosts)).toBe('HTTP/1.1 400 Bad Request');
  });

  it('hands the handler no body for a request sent chunked, without a Content-Length, as the Functions host does', async () => {
    // azure-functions-host ToRpcHttp copies the body only when `request.ContentLength > 0`.
    const text = await rawExchange(host.url, 'POST /api/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n');
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    const seen = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string>; bodyLength: number };
    expect(seen.headers['transfer-encoding']).toBe('chunked');
    expect(seen.bodyLength).toBe(0);
  });

  it('returns the status, headers, body and cookies the handler set', async () => {
    const res = await fetch(`${host.url}/api/teapot`);
    expect(res.status).toBe(418);
    expect(res.headers.get('x-kettle')).toBe('on');
    expect(await res.text()).toBe('short and stout');
    expect(res.headers.getSetCookie()).toEqual([
      'session=abc123; Path=/; HttpOnly; SameSite=Strict',
      'theme=dark; Max-Age=3600',
    ]);
  });

  it('returns binary bodies byte for byte', async () => {
    const res = await fetch(`${host.url}/api/binary`);
    expect(Buffer.from(await res.arrayBuffer()).toString('hex')).toBe('000102fdfeff');
  });

  it('answers a thrown error with 500 and no stack trace, and logs the error', async () => {
    const res = await fetch(`${host.url}/api/boom`);
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(body).not.toContain('kaboom');
    expect(body).not.toContain('.js');
    await logShows(host, /kaboom/);
    // The host keeps serving after a failing function.
    expect((await fetch(`${host.url}/api/items/1`)).status).toBe(200);
  });

  it.each([
    { name: 'a Host header that is no host', raw: 'GET /api/items/5 HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n' },
    { name: 'an escaped NUL, which Kestrel refuses', raw: 'GET /api/opt/a%00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' },
  ])('answers $name with 400, not 500', async ({ raw }) => {
    expect(await rawStatusLine(host.url, raw)).toBe('HTTP/1.1 400 Bad Request');
  });

  it('answers CONNECT, which no function can take, with an empty 404 rather than a dropped connection, and survives its reset', async () => {
    expect(await rawStatusLine(host.url, 'CONNECT /api/items/5 HTTP/1.1\r\nHost: x\r\n\r\n')).toBe('HTTP/1.1 404 Not Found');
    // A client that resets the connection once answered: the host goes on serving.
    await new Promise<void>((resolve, reject) => {
      const { hostname, port } = new URL(host.url);
      const socket = connect(Number(port), hostname, () => socket.write('CONNECT /api/items/5 HTTP/1.1\r\nHost: x\r\n\r\n'));
      socket.once('data', () => {
        socket.resetAndDestroy();
        resolve();
      });
      socket.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`${host.url}/api/items/42`)).status).toBe(200);
  });

  it('treats `throw undefined` as a failure too', async () => {
    const res = await fetch(`${host.url}/api/throws-undefined`);
    expect(res.status).toBe(500);
    await logShows(host, /\[throwsNothing\] Executed 'throwsNothing' \(Failed/);
  });

  it('keeps an escape that is malformed or no UTF-8 as sent, as Kestrel does, and decodes the rest', async () => {
    const seen = async (path: string) => ((await (await fetch(`${host.url}${path}`)).json()) as { params: Record<string, string> }).params;
    expect(await seen('/api/opt/%zz')).toEqual({ value: '%zz' });
    expect(await seen('/api/opt/a%')).toEqual({ value: 'a%' });
    expect(await seen('/api/opt/%E0%A4%A')).toEqual({ value: '%E0%A4%A' });
    expect(await seen('/api/opt/%C0%AFx%FF')).toEqual({ value: '%C0%AFx%FF' });
    expect(await seen('/api/opt/caf%C3%A9%20%E2%82%AC')).toEqual({ value: 'café €' });
    expect(await seen('/api/opt/%C3%A9%FF%2f')).toEqual({ value: 'é%FF%2f' });
  });

  it('removes dot segments once the path is decoded, as Kestrel does, before routing', async () => {
    // Raw: a URL client would resolve them itself.
    const raw = (target: string) =>
      new Promise<string>((resolve, reject) => {
        const { hostname, port } = new URL(host.url);
        const socket = connect(Number(port), hostname, () => socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
    const seen = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { function: string; params: Record<string, string> };
    expect(seen(await raw('/api/files/a/../b'))).toMatchObject({ function: 'files', params: { path: 'b' } });
    expect(seen(await raw('/api/files/%2E%2E/opt/x'))).toMatchObject({ function: 'optional', params: { value: 'x' } });
    expect(seen(await raw('/api/opt/x/.'))).toMatchObject({ function: 'optional', params: { value: 'x' } });
    expect((await raw('/api/..')).split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
  });

  it('answers 204 when the handler returns nothing, with no Content-Length', async () => {
    const res = await fetch(`${host.url}/api/nothing`);
    expect(res.status).toBe(204);
    expect(res.headers.get('content-length')).toBeNull();
  });

  it("answers HEAD with the GET answer's headers and length and no body, and the connection goes on", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method: string) =>
      new Promise<{ status: number; length: string | undefined; body: Buffer; reused: boolean }>((resolve, reject) => {
        const req = http.request(`${host.url}/api/binary`, { method, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], body: Buffer.concat(chunks), reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const head = await send('HEAD');
      const get = await send('GET');
      expect(head).toMatchObject({ status: 200, length: '6', reused: false });
      expect(head.body.length).toBe(0);
      expect(get).toMatchObject({ status: 200, length: '6', reused: true });
      expect([...get.body]).toEqual([0, 1, 2, 253, 254, 255]);
    } finally {
      agent.destroy();
    }
  });

  it('reads local.settings.json Values without overriding the environment', async () => {
    const res = await fetch(`${host.url}/api/settings`);
    expect(await res.json()).toEqual({
      greeting: 'hello from local.settings.json',
      overridden: 'from the environment',
    });
  });

  it('runs appStart and pre/post invocation hooks like the worker', async () => {
    const res = await fetch(`${host.url}/api/hooked`);
    expect(await res.json()).toEqual({
      appStarted: true,
      wrappedByPreInvocation: true,
      postSawPre: true,
    });
  });

  it('reports its state like the real host', async () => {
    const res = await fetch(`${host.url}/admin/host/status`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { state: string }).state).toBe('Running');
  });

  it('fires a non-HTTP function through the admin API with its input', async () => {
    const res = await fetch(`${host.url}/admin/functions/recordFire`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: '{"orderId":"o-1"}' }),
    });
    expect(res.status).toBe(202);
    const fired = await (async () => {
      for (let i = 0; i < 100; i++) {
        const list = (await (await fetch(`${host.url}/api/fired`)).json()) as unknown[];
        if (list.length > 0) return list;
        await new Promise((r) => setTimeout(r, 20));
      }
      return [];
    })();
    expect(fired).toEqual([{ orderId: 'o-1' }]);
    await logShows(host, /\[recordFire\] fired with \{"orderId":"o-1"\}/);
  });

  it('answers 404 for an admin invoke of an unknown function', async () => {
    const res = await fetch(`${host.url}/admin/functions/nope`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(404);
  });

  it('logs each invocation with function name, id, outcome and duration', async () => {
    await logShows(host, /\[teapot\] Executed 'teapot' \(Succeeded, Id=[0-9a-f-]{36}, Duration=\d+ms/);
    await logShows(host, /\[boom\] Executed 'boom' \(Failed, Id=[0-9a-f-]{36}, Duration=\d+ms/);
    await logShows(host, /\[teapot\] brewing tea/);
  });
});

describe('HTTP triggers with other route prefixes', () => {
  it.each([
    { app: 'http-app-noprefix', path: '/hello/ann', status: 200, text: 'hello ann' },
    { app: 'http-app-noprefix', path: '/hello', status: 200, text: 'hello world' },
    { app: 'http-app-noprefix', path: '/api/hello', status: 404 },
    { app: 'http-app-custom-prefix', path: '/v2/public/hello', status: 200, text: 'hello under v2/public' },
    { app: 'http-app-custom-prefix', path: '/api/hello', status: 404 },
    { app: 'http-app-custom-prefix', path: '/v2/hello', status: 404 },
  ])('$app: GET $path -> $status', async ({ app, path, status, text }) => {
    const host = await startHost(app);
    try {
      const res = await fetch(`${host.url}${path}`);
      expect(res.status).toBe(status);
      if (text) expect(await res.text()).toBe(text);
    } finally {
      await host.stop();
    }
  });
});

describe('AzureWebJobs.<function>.Disabled', () => {
  it('leaves a disabled function untriggered and says so at start; other values keep it on', async () => {
    const host = await startHost('http-app', { 'AzureWebJobs.defaultRoute.Disabled': 'true', 'AzureWebJobs.itemById.Disabled': 'false' });
    try {
      await logShows(host, /defaultRoute: disabled \(AzureWebJobs\.defaultRoute\.Disabled\)/);
      expect((await fetch(`${host.url}/api/defaultRoute`)).status).toBe(404);
      expect((await fetch(`${host.url}/api/items/42`)).status).toBe(200);
    } finally {
      await host.stop();
    }
  });
});
