/**
 * The HTTP side of the host: app routes under the routePrefix, the admin endpoints the real host
 * exposes (`/admin/host/status`, `/admin/functions/{name}`), and the durable engine's endpoints.
 * Requests and responses go through the library's own HTTP conversions (RpcHttpData).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RegisteredFunction } from './core-module';
import type { RpcHttpCookie, RpcHttpData, RpcInvocationResponse, RpcTypedData } from './core-types';
import type { HostLog } from './host-log';
import { RouteTable } from './http-routes';
import type { FunctionInvoker } from './invoker';

export interface HttpEndpointHandler {
  /** Serves the request and returns true when the path is its own. */
  handleHttp(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean>;
}

export interface HttpHostOptions {
  routePrefix: string;
  functions: RegisteredFunction[];
  invoker: FunctionInvoker;
  log: HostLog;
  /** Fires a non-HTTP function by hand; resolves false when there is no such function. */
  fireFunction(name: string, input: string | undefined): boolean;
  isStopping(): boolean;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body?: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const payload = body === undefined ? undefined : Buffer.from(body);
  res.writeHead(status, { ...headers, 'content-length': String(payload?.length ?? 0) });
  res.end(payload);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value), { 'content-type': 'application/json; charset=utf-8' });
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
  readonly server: Server;
  readonly #routes = new RouteTable<HttpFunction>();
  readonly #prefixSegments: string[];
  readonly #endpoints: HttpEndpointHandler[] = [];

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
      this.#routes.add(route, methods, { fn, outputName });
    }
    this.server = createServer({ keepAlive: true }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        options.log.host('error', `HTTP ${req.method} ${req.url} failed in the host: ${String(err)}`);
        send(res, 500);
      });
    });
    this.server.keepAliveTimeout = 65_000;
  }

  #inFlight = 0;

  /** HTTP function requests being served now (not the admin or durable endpoints). */
  get functionRequestsInFlight(): number {
    return this.#inFlight;
  }

  /** Something with its own paths (the durable engine): asked before the app routes. */
  addEndpoint(handler: HttpEndpointHandler): void {
    this.#endpoints.push(handler);
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

  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting connections; idle keep-alive connections are closed now, busy ones after their response. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  closeAllConnections(): void {
    this.server.closeAllConnections();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q >= 0 ? url.slice(0, q) : url;
    if (this.options.isStopping()) res.setHeader('connection', 'close');

    if (pathname.startsWith('/admin/')) {
      if (await this.#handleAdmin(req, res, pathname)) return;
    }
    for (const endpoint of this.#endpoints) {
      if (await endpoint.handleHttp(req, res, pathname)) return;
    }

    let segments: string[];
    try {
      segments = pathname
        .split('/')
        .slice(1)
        .map((s) => decodeURIComponent(s));
    } catch {
      send(res, 400);
      return;
    }
    if (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
    const prefix = this.#prefixSegments;
    for (let i = 0; i < prefix.length; i++) {
      if (segments[i]?.toLowerCase() !== prefix[i]) {
        req.resume();
        send(res, 404);
        return;
      }
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const found = this.#routes.resolve(method, prefix.length > 0 ? segments.slice(prefix.length) : segments);
    if (found.kind === 'notFound') {
      req.resume();
      send(res, 404);
      return;
    }
    if (found.kind === 'methodNotAllowed') {
      req.resume();
      send(res, 405, undefined, { allow: found.allow.join(', ') });
      return;
    }
    this.#inFlight++;
    try {
      const body = await readBody(req);
      await this.#invoke(req, res, url, method, found.route.target, found.params, body);
    } finally {
      this.#inFlight--;
    }
  }

  async #invoke(
    req: IncomingMessage,
    res: ServerResponse,
    url: string,
    method: string,
    target: HttpFunction,
    params: Record<string, string>,
    body: Buffer,
  ): Promise<void> {
    const headers: Record<string, string> = {};
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i]!.toLowerCase();
      const prev = headers[key];
      headers[key] = prev === undefined ? raw[i + 1]! : `${prev}${key === 'cookie' ? '; ' : ', '}${raw[i + 1]}`;
    }
    const fullUrl = `http://${headers['host'] ?? '127.0.0.1'}${url}`;
    // A Host header or target no URL parser accepts is the client's error, not the function's.
    if (!URL.canParse(fullUrl)) {
      send(res, 400);
      return;
    }
    const http: RpcHttpData = {
      method,
      url: fullUrl,
      headers,
      params,
      body: { bytes: body },
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
      send(res, 500);
      return;
    }
    const out =
      outputName === undefined
        ? undefined
        : outputName === '$return'
          ? response.returnValue
          : response.outputData?.find((o) => o.name === outputName)?.data;
    const httpOut = out?.http;
    if (!httpOut) {
      send(res, 204);
      return;
    }
    const status = Number(httpOut.statusCode ?? 200) || 200;
    const bytes = typedDataBytes(httpOut.body);
    const outHeaders: Record<string, string | string[]> = { ...(httpOut.headers ?? {}) };
    if (httpOut.cookies && httpOut.cookies.length > 0) {
      const existing = outHeaders['set-cookie'];
      const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
      outHeaders['set-cookie'] = [...list, ...httpOut.cookies.map(serializeCookie)];
    }
    const noBody = status === 204 || status === 304 || method === 'HEAD';
    outHeaders['content-length'] = String(noBody ? 0 : (bytes?.length ?? 0));
    delete outHeaders['transfer-encoding'];
    res.writeHead(status, outHeaders);
    res.end(noBody ? undefined : bytes);
  }

  async #handleAdmin(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean> {
    if (pathname === '/admin/host/status') {
      req.resume();
      sendJson(res, 200, { state: this.options.isStopping() ? 'Stopping' : 'Running', version: '4.x-local' });
      return true;
    }
    const m = /^\/admin\/functions\/([^/]+)$/.exec(pathname);
    if (!m) return false;
    const name = decodeURIComponent(m[1]!);
    if (req.method !== 'POST') {
      req.resume();
      send(res, 405, undefined, { allow: 'POST' });
      return true;
    }
    const body = await readBody(req);
    let input: string | undefined;
    if (body.length > 0) {
      try {
        const parsed = JSON.parse(body.toString('utf8')) as { input?: unknown };
        input =
          parsed.input === undefined || typeof parsed.input === 'string' ? parsed.input : JSON.stringify(parsed.input);
      } catch {
        sendJson(res, 400, { error: 'body must be JSON: {"input": "..."}' });
        return true;
      }
    }
    if (!this.options.fireFunction(name, input)) {
      sendJson(res, 404, { error: `no non-HTTP function named ${name}` });
      return true;
    }
    send(res, 202);
    return true;
  }
}
