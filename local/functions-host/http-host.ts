/**
 * The HTTP side of the host: app routes under the routePrefix and the admin endpoints the real
 * host exposes (`/admin/host/status`, `/admin/functions/{name}`). The sockets are the front end's
 * (http-front.ts, its own thread, which also passes the durable engine's paths through); this
 * thread, where the app runs, gets each request as a message and answers with one. Requests and
 * responses go through the library's own HTTP conversions (RpcHttpData).
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { RegisteredFunction } from './core-module';
import type { RpcHttpCookie, RpcHttpData, RpcInvocationResponse, RpcTypedData } from './core-types';
import type { HostLog } from './host-log';
import { failWithHost } from './host-thread';
import type { FromHttpFront, FrontRequest, FrontResponse, HttpFrontSettings, ToHttpFront } from './http-front-protocol';
import { RouteTable } from './http-routes';
import type { FunctionInvoker } from './invoker';

export interface HttpHostOptions {
  routePrefix: string;
  functions: RegisteredFunction[];
  invoker: FunctionInvoker;
  log: HostLog;
  /** Fires a non-HTTP function by hand; resolves false when there is no such function. */
  fireFunction(name: string, input: string | undefined): boolean;
  isStopping(): boolean;
}

/**
 * The front end thread's young generation: it only holds requests on their way, and V8's default
 * ceiling would let it grow by tens of MB of garbage under load.
 */
const FRONT_YOUNG_GENERATION_MB = 4;

/** Statuses that never carry a body, nor a Content-Length (RFC 9110 8.6). */
const BODILESS: readonly number[] = [204, 304];

function answer(status: number, body?: string, headers: Record<string, string> = {}): FrontResponse {
  if (BODILESS.includes(status)) return { status, headers };
  const payload = body === undefined ? undefined : Buffer.from(body);
  return { status, headers: { ...headers, 'content-length': String(payload?.length ?? 0) }, ...(payload ? { body: payload } : {}) };
}

function answerJson(status: number, value: unknown): FrontResponse {
  return answer(status, JSON.stringify(value), { 'content-type': 'application/json; charset=utf-8' });
}

export function serializeCookie(c: RpcHttpCookie): string {
  let out = `${c.name ?? ''}=${c.value ?? ''}`;
  if (c.domain?.value) out += `; Domain=${c.domain.value}`;
  if (c.path?.value) out += `; Path=${c.path.value}`;
  const expires = c.expires?.value;
  if (expires && expires.seconds !== undefined && expires.seconds !== null) {
    out += `; Expires=${new Date(Number(expires.seconds) * 1000 + Math.floor((expires.nanos ?? 0) / 1e6)).toUTCString()}`;
  }
  if (c.maxAge?.value !== undefined && c.maxAge?.value !== null) out += `; Max-Age=${c.maxAge.value}`;
  if (c.secure?.value) out += '; Secure';
  if (c.httpOnly?.value) out += '; HttpOnly';
  if (c.sameSite === 'lax') out += '; SameSite=Lax';
  else if (c.sameSite === 'strict') out += '; SameSite=Strict';
  else if (c.sameSite === 'explicitNone') out += '; SameSite=None';
  return out;
}

function typedDataBytes(data: RpcTypedData | null | undefined): Buffer | undefined {
  if (!data) return undefined;
  if (data.bytes) return Buffer.from(data.bytes.buffer, data.bytes.byteOffset, data.bytes.byteLength);
  if (data.string !== undefined && data.string !== null) return Buffer.from(data.string);
  if (data.json !== undefined && data.json !== null) return Buffer.from(data.json);
  if (data.int !== undefined && data.int !== null) return Buffer.from(String(data.int));
  if (data.double !== undefined && data.double !== null) return Buffer.from(String(data.double));
  return undefined;
}

interface HttpFunction {
  fn: RegisteredFunction;
  /** Name of the out binding of type http: `$return` or a named output. */
  outputName: string | undefined;
}

function normalizePrefix(prefix: string): string {
  return prefix.replace(/^\/+|\/+$/g, '');
}

export class HttpHost {
  readonly #routes = new RouteTable<HttpFunction>();
  readonly #prefixSegments: string[];
  #front: Worker | undefined;
  #closed: (() => void) | undefined;

  constructor(private readonly options: HttpHostOptions) {
    const prefix = normalizePrefix(options.routePrefix);
    this.#prefixSegments = prefix === '' ? [] : prefix.toLowerCase().split('/');
    for (const fn of options.functions) {
      if (fn.trigger.type?.toLowerCase() !== 'httptrigger') continue;
      const route = typeof fn.trigger['route'] === 'string' ? (fn.trigger['route'] as string) : fn.name;
      const methods = Array.isArray(fn.trigger['methods']) ? (fn.trigger['methods'] as string[]) : [];
      const outputName = Object.entries(fn.metadata.bindings).find(
        ([, b]) => b.direction === 'out' && b.type?.toLowerCase() === 'http',
      )?.[0];
      this.#routes.add(fn.name, route, methods, { fn, outputName });
    }
  }

  #inFlight = 0;

  /** HTTP function requests being served now (not the admin or durable endpoints). */
  get functionRequestsInFlight(): number {
    return this.#inFlight;
  }

  /** Paths of the durable engine (served on its own thread's port): the front end passes them through. */
  passThrough(port: number, prefixes: string[]): void {
    this.#post({ type: 'passThrough', port, prefixes });
  }

  /** The URLs of the HTTP functions, for the start-up listing. */
  describeRoutes(baseUrl: string): Map<string, string> {
    const out = new Map<string, string>();
    const prefix = this.#prefixSegments.join('/');
    for (const r of this.#routes.routes) {
      const path = [prefix, r.template.template.replace(/^[~/]+/, '')].filter((s) => s !== '').join('/');
      const methods = r.methods.length > 0 ? r.methods.join(',') : 'ANY';
      out.set(r.target.fn.name, `[${methods}] ${baseUrl}/${path}`);
    }
    return out;
  }

  #post(message: ToHttpFront): void {
    this.#front?.postMessage(message);
  }

  /** Starts the front end's thread listening; resolves with the port it took. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const front = new Worker(join(__dirname, 'http-front.js'), {
        workerData: { port } satisfies HttpFrontSettings,
        resourceLimits: { maxYoungGenerationSizeMb: FRONT_YOUNG_GENERATION_MB },
      });
      this.#front = front;
      let listening = false;
      front.on('message', (message: FromHttpFront) => {
        switch (message.type) {
          case 'request':
            this.#serve(message.id, message);
            break;
          case 'listening':
            listening = true;
            resolve(message.port);
            break;
          case 'listenFailed':
            reject(Object.assign(new Error(message.message), { code: message.code }));
            break;
          case 'error':
            this.options.log.host('error', `HTTP front end: ${message.message}`);
            break;
          case 'closed':
            this.#closed?.();
            break;
        }
      });
      failWithHost(front, "the HTTP front end's thread", {
        ready: () => listening,
        failStart: reject,
        exited: () => this.#closed?.(),
      });
    });
  }

  /** Stops accepting connections; idle keep-alive connections are closed now, busy ones after their response. */
  close(): Promise<void> {
    const front = this.#front;
    if (!front) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#closed = resolve;
      this.#post({ type: 'close' });
    }).then(async () => {
      await front.terminate();
    });
  }

  closeAllConnections(): void {
    this.#post({ type: 'closeAll' });
  }

  #serve(id: number, request: FrontRequest): void {
    void this.#handle(request)
      .catch((err: unknown) => {
        this.options.log.host('error', `HTTP ${request.method} ${request.url} failed in the host: ${String(err)}`);
        return answer(500);
      })
      .then((response) => this.#post({ type: 'reply', id, ...response }));
  }

  async #handle(req: FrontRequest): Promise<FrontResponse> {
    const headers = headersAsTheHostSendsThem(req.rawHeaders);
    // Kestrel refuses a request with more than one Host header before anything else sees it.
    if (!headers) return answer(400);
    const url = req.url;
    const q = url.indexOf('?');
    const pathname = q >= 0 ? url.slice(0, q) : url;

    if (pathname.startsWith('/admin/')) {
      const admin = this.#handleAdmin(req, pathname);
      if (admin) return admin;
    }

    let segments = pathname.split('/').slice(1).map(decodePathSegment);
    // Kestrel refuses a path with a NUL in it, as sent or escaped.
    if (segments.some((segment) => segment.includes('\0'))) return answer(400);
    // Kestrel removes dot segments once the path is decoded (`%2E%2E` too): `inventory/..` is no
    // SKU `..` but the path one step up.
    segments = withoutDotSegments(segments);
    if (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
    const prefix = this.#prefixSegments;
    for (let i = 0; i < prefix.length; i++) {
      if (segments[i]?.toLowerCase() !== prefix[i]) return answer(404);
    }
    const method = req.method.toUpperCase();
    const found = this.#routes.resolve(method, prefix.length > 0 ? segments.slice(prefix.length) : segments);
    if (found.kind === 'notFound') return answer(404);
    this.#inFlight++;
    try {
      return await this.#invoke(req, headers, method, found.route.target, found.params);
    } finally {
      this.#inFlight--;
    }
  }

  async #invoke(req: FrontRequest, headers: Record<string, string>, method: string, target: HttpFunction, params: Record<string, string>): Promise<FrontResponse> {
    const url = req.url;
    const fullUrl = `http://${headers['host'] ?? '127.0.0.1'}${url}`;
    // A Host header or target no URL parser accepts is the client's error, not the function's.
    if (!URL.canParse(fullUrl)) return answer(400);
    const http: RpcHttpData = {
      method,
      url: fullUrl,
      headers,
      params,
      nullableQuery: queryAsTheHostSendsIt(new URL(fullUrl).searchParams),
      ...(declaresBody(headers) ? { body: { bytes: req.body } } : {}),
    };
    const { fn, outputName } = target;
    let response: RpcInvocationResponse;
    try {
      response = await this.options.invoker.invoke(fn, {
        inputData: [{ name: fn.triggerName, data: { http } }],
        reason: `HTTP ${method} ${url.split('?')[0]}`,
      });
    } catch {
      // The error is in the host log; the caller gets no stack trace, like on Azure.
      return answer(500);
    }
    const out =
      outputName === undefined
        ? undefined
        : outputName === '$return'
          ? response.returnValue
          : response.outputData?.find((o) => o.name === outputName)?.data;
    const httpOut = out?.http;
    if (!httpOut) return answer(204);
    const status = Number(httpOut.statusCode ?? 200) || 200;
    const bytes = typedDataBytes(httpOut.body);
    const outHeaders: Record<string, string | string[]> = { ...(httpOut.headers ?? {}) };
    if (httpOut.cookies && httpOut.cookies.length > 0) {
      const existing = outHeaders['set-cookie'];
      const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
      outHeaders['set-cookie'] = [...list, ...httpOut.cookies.map(serializeCookie)];
    }
    for (const name of Object.keys(outHeaders)) {
      if (/^(content-length|transfer-encoding)$/i.test(name)) delete outHeaders[name];
    }
    // A HEAD answer says how long the GET answer's body is, and sends none; a 204 or a 304 says nothing of a length.
    const bodiless = BODILESS.includes(status);
    if (!bodiless) outHeaders['content-length'] = String(bytes?.length ?? 0);
    return { status, headers: outHeaders, ...(bodiless || method === 'HEAD' || !bytes ? {} : { body: bytes }) };
  }

  #handleAdmin(req: FrontRequest, pathname: string): FrontResponse | undefined {
    if (pathname === '/admin/host/status') {
      return answerJson(200, { state: this.options.isStopping() ? 'Stopping' : 'Running', version: '4.x-local' });
    }
    const m = /^\/admin\/functions\/([^/]+)$/.exec(pathname);
    if (!m) return undefined;
    const name = decodeURIComponent(m[1]!);
    if (req.method !== 'POST') return answer(405, undefined, { allow: 'POST' });
    let input: string | undefined;
    if (req.body.length > 0) {
      try {
        const text = Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength).toString('utf8');
        const parsed = JSON.parse(text) as { input?: unknown };
        input = parsed.input === undefined || typeof parsed.input === 'string' ? parsed.input : JSON.stringify(parsed.input);
      } catch {
        return answerJson(400, { error: 'body must be JSON: {"input": "..."}' });
      }
    }
    if (!this.options.fireFunction(name, input)) return answerJson(404, { error: `no non-HTTP function named ${name}` });
    return answer(202);
  }
}

/**
 * Whether the Functions host would hand the worker this request's body: only when the request
 * declared a Content-Length above 0 (`ToRpcHttp` checks `request.ContentLength > 0`). A body sent
 * chunked, with no Content-Length, never reaches a Node function on Azure unless the app streams
 * (azure-functions-host#4926, azure-functions-nodejs-worker#524); passing it here would let a
 * client work locally that gets an empty body there.
 */
/**
 * The request's headers as the Functions host hands them to the worker (`ToRpcHttp`): names in
 * lower case, and a header sent more than once as its values joined with a comma
 * (`StringValues.ToString()`). Undefined for a request with two Host headers, which Kestrel refuses.
 */
function headersAsTheHostSendsThem(raw: readonly string[]): Record<string, string> | undefined {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!.toLowerCase();
    const prev = headers[key];
    if (prev !== undefined && key === 'host') return undefined;
    headers[key] = prev === undefined ? raw[i + 1]! : `${prev},${raw[i + 1]}`;
  }
  return headers;
}

export function declaresBody(headers: Record<string, string>): boolean {
  const length = headers['content-length'];
  return length !== undefined && /^\s*\d+\s*$/.test(length) && Number(length) > 0;
}

/**
 * The query as the Functions host hands it to the Node worker (`ToRpcHttp`): one entry per name,
 * names matched in any case as ASP.NET Core's query collection does, and repeated values joined
 * with a comma (`StringValues.ToString()`), so `request.query` gives `?a=1&a=2` as `a=1,2`. The
 * request's URL still carries the query string as sent.
 */
export function queryAsTheHostSendsIt(search: URLSearchParams): Record<string, { value: string }> {
  const byName = new Map<string, { name: string; values: string[] }>();
  for (const [name, value] of search) {
    const key = name.toLowerCase();
    const entry = byName.get(key);
    if (entry) entry.values.push(value);
    else byName.set(key, { name, values: [value] });
  }
  const query: Record<string, { value: string }> = {};
  for (const { name, values } of byName.values()) query[name] = { value: values.join(',') };
  return query;
}

/** RFC 3986's remove_dot_segments over decoded segments: `.` goes, `..` takes the one before it. */
export function withoutDotSegments(segments: string[]): string[] {
  const out: string[] = [];
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') out.pop();
      // A step at the end leaves the path ending in a slash, as `a/b/..` is `a/`.
      if (last) out.push('');
      return;
    }
    out.push(segment);
  });
  return out;
}

/**
 * A path segment decoded as Kestrel decodes a path: escapes of UTF-8 are decoded, an encoded slash
 * stays as sent (`orders/a%2Fb` reaches the function with the id `a%2Fb`, not as a path `a/b` no
 * route has), and an escape that is malformed or no UTF-8 (`%zz`, a lone `%`, `%FF`, an overlong
 * form) is kept as it came rather than refused: the function, not the host, answers for it.
 */
export function decodePathSegment(segment: string): string {
  return segment.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const escapes = run.match(/%[0-9A-Fa-f]{2}/g)!;
    const bytes = escapes.map((e) => parseInt(e.slice(1), 16));
    let out = '';
    for (let i = 0; i < bytes.length; ) {
      const lead = bytes[i]!;
      const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
      const char = length > 0 && i + length <= bytes.length ? utf8Char(bytes.slice(i, i + length)) : undefined;
      if (char === undefined || char === '/') {
        out += escapes[i];
        i += 1;
      } else {
        out += char;
        i += length;
      }
    }
    return out;
  });
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The one character these bytes encode in UTF-8, or undefined (overlong, a surrogate, not one). */
function utf8Char(bytes: number[]): string | undefined {
  try {
    const text = STRICT_UTF8.decode(new Uint8Array(bytes));
    return [...text].length === 1 ? text : undefined;
  } catch {
    return undefined;
  }
}
