/**
 * The HTTP API of the Durable extension, as durable-functions' DurableClient calls it: under the
 * client binding's rpcBaseUrl (`/durabletask/`) and the management webhooks
 * (`/runtime/webhooks/durabletask/`, what createCheckStatusResponse links to). Status codes and
 * payloads follow the extension's HttpApiHandler. With a virtual clock, `/admin/durable/` lets
 * tests move time and wait for the engine to go idle.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DurableEngine } from './engine';
import { ClientRequestError } from './errors';
import { historyView, parseJsonText, type HistoryEvent } from './history';
import type { InstanceQuery, InstanceRow, RuntimeStatus } from './store';

const RPC_PREFIX = '/durabletask/';
const WEBHOOK_PREFIX = '/runtime/webhooks/durabletask/';
const ADMIN_PREFIX = '/admin/durable/';

/** The path prefixes handleClientRequest serves: `/admin/durable/` only on a virtual clock. */
export function clientApiPrefixes(virtualClock: boolean): string[] {
  return virtualClock ? [RPC_PREFIX, WEBHOOK_PREFIX, ADMIN_PREFIX] : [RPC_PREFIX, WEBHOOK_PREFIX];
}
const DEFAULT_PAGE_SIZE = 100;
const RUNTIME_STATUSES: readonly RuntimeStatus[] = [
  'Pending',
  'Running',
  'Completed',
  'ContinuedAsNew',
  'Failed',
  'Canceled',
  'Terminated',
  'Suspended',
];

export async function handleClientRequest(
  engine: DurableEngine,
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
): Promise<boolean> {
  let rest: string;
  if (pathname.startsWith(RPC_PREFIX)) rest = pathname.slice(RPC_PREFIX.length);
  else if (pathname.startsWith(WEBHOOK_PREFIX)) rest = pathname.slice(WEBHOOK_PREFIX.length);
  else if (pathname === RPC_PREFIX.slice(0, -1) || pathname === WEBHOOK_PREFIX.slice(0, -1)) rest = '';
  else if (pathname.startsWith(ADMIN_PREFIX) && engine.usesVirtualClock) {
    await handleAdmin(engine, req, res, pathname.slice(ADMIN_PREFIX.length));
    return true;
  } else return false;

  const url = new URL(req.url ?? '/', 'http://localhost');
  const segments = rest.split('/').map((s) => safeDecode(s));
  if (segments[segments.length - 1] === '') segments.pop();
  const method = (req.method ?? 'GET').toUpperCase();
  try {
    await route(engine, req, res, method, segments, url.searchParams);
  } catch (err) {
    if (err instanceof ClientRequestError) sendJson(res, err.status, { Message: err.message });
    else sendJson(res, 500, { Message: 'Something went wrong while processing your request', ExceptionMessage: String(err) });
  }
  return true;
}

async function route(
  engine: DurableEngine,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  seg: string[],
  query: URLSearchParams,
): Promise<void> {
  if (seg[0] === 'orchestrators' && seg.length >= 2 && seg.length <= 3) {
    if (method !== 'POST') return sendJson(res, 404, null);
    const body = await readBody(req);
    const input = body.trim() === '' ? null : validJson(body);
    const id = await engine.startOrchestration(seg[1], seg[2], input);
    const payload = managementPayload(engine, id);
    return sendJson(res, 202, payload, { Location: payload.statusQueryGetUri, 'Retry-After': '10' });
  }
  if (seg[0] !== 'instances') return sendJson(res, 404, null);
  const id = seg[1];
  if (id === undefined) {
    if (method === 'GET') return listInstances(engine, req, res, query);
    if (method === 'DELETE') return purgeWhere(engine, res, query);
    return sendJson(res, 404, null);
  }
  if (seg.length === 2) {
    if (method === 'GET') return getStatus(engine, res, id, query);
    if (method === 'DELETE') return sendJson(res, 200, { instancesDeleted: await engine.purge(id) });
    return sendJson(res, 404, null);
  }
  if (method !== 'POST') return sendJson(res, 404, null);
  const reason = query.get('reason') ?? undefined;
  if (seg[2] === 'raiseEvent' && seg.length === 4) {
    const body = await readBody(req);
    await engine.raiseEvent(id, seg[3], body.trim() === '' ? undefined : validJson(body));
    return sendJson(res, 202, null);
  }
  if (seg.length !== 3) return sendJson(res, 404, null);
  switch (seg[2]) {
    case 'terminate':
    case 'suspend':
    case 'resume':
      engine.control(id, seg[2], reason);
      return sendJson(res, 202, null);
    case 'rewind':
      try {
        await engine.rewind(id, reason);
      } catch (err) {
        // The extension answers rewind refusals with a bare JSON string, which the client shows as the error.
        if (err instanceof ClientRequestError) return sendJson(res, err.status, err.message);
        throw err;
      }
      return sendJson(res, 202, null);
    default:
      return sendJson(res, 404, null);
  }
}

function getStatus(engine: DurableEngine, res: ServerResponse, id: string, query: URLSearchParams): void {
  const inst = engine.getInstance(id);
  if (!inst) return sendJson(res, 404, null);
  const showHistory = query.get('showHistory') === 'true';
  const showHistoryOutput = query.get('showHistoryOutput') === 'true';
  const showInput = query.get('showInput') !== 'false';
  const history = showHistory ? historyView(engine.historyOf(id), showHistoryOutput) : undefined;
  const body = statusPayload(inst, showInput, history);
  const running = ['Running', 'Pending', 'ContinuedAsNew', 'Suspended'].includes(inst.status);
  if (running) {
    return sendJson(res, 202, body, { Location: managementPayload(engine, id).statusQueryGetUri, 'Retry-After': '5' });
  }
  const failedAs500 = inst.status === 'Failed' && query.get('returnInternalServerErrorOnFailure') === 'true';
  return sendJson(res, failedAs500 ? 500 : 200, body);
}

function listInstances(engine: DurableEngine, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
  const q = instanceQuery(query);
  const top = Number(query.get('top'));
  const pageSize = Number.isInteger(top) && top > 0 ? top : DEFAULT_PAGE_SIZE;
  const token = headerValue(req, 'x-ms-continuation-token');
  const showInput = query.get('showInput') !== 'false';
  const page = engine.listInstances(q, pageSize, token && token !== 'null' ? token : undefined);
  const headers: Record<string, string> = {};
  if (page.continuationToken) headers['x-ms-continuation-token'] = page.continuationToken;
  sendJson(res, 200, page.rows.map((r) => statusPayload(r, showInput)), headers);
}

async function purgeWhere(engine: DurableEngine, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const q = instanceQuery(query);
  if (q.createdTimeFrom === undefined) {
    return sendJson(res, 400, { Message: "Please provide value for 'createdTimeFrom' parameter." });
  }
  const deleted = await engine.purgeWhere(q);
  if (deleted === 0) return sendJson(res, 404, null);
  sendJson(res, 200, { instancesDeleted: deleted });
}

function instanceQuery(query: URLSearchParams): InstanceQuery {
  const q: InstanceQuery = {};
  const statuses = query
    .getAll('runtimeStatus')
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v): v is RuntimeStatus => (RUNTIME_STATUSES as readonly string[]).includes(v));
  if (statuses.length > 0) q.runtimeStatus = statuses;
  const from = Date.parse(query.get('createdTimeFrom') ?? '');
  if (Number.isFinite(from)) q.createdTimeFrom = from;
  const to = Date.parse(query.get('createdTimeTo') ?? '');
  if (Number.isFinite(to)) q.createdTimeTo = to;
  const prefix = query.get('instanceIdPrefix');
  if (prefix) q.instanceIdPrefix = prefix;
  return q;
}

/** The extension's StatusResponsePayload (times to the second, as DateTime.ToString("s") + "Z"). */
function statusPayload(inst: InstanceRow, showInput: boolean, history?: Record<string, unknown>[]): Record<string, unknown> {
  return {
    name: inst.name,
    instanceId: inst.instance_id,
    runtimeStatus: inst.status,
    input: showInput ? parseJsonText(inst.input) : null,
    customStatus: parseJsonText(inst.custom_status),
    output: parseJsonText(inst.output),
    createdTime: secondsIso(inst.created_at),
    lastUpdatedTime: secondsIso(inst.updated_at),
    // The extension names this field historyEvents; durable-functions' status object reads `history`.
    ...(history ? { historyEvents: history, history } : {}),
  };
}

export function managementPayload(engine: DurableEngine, instanceId: string): Record<string, string> {
  const urls = engine.clientBindingData().managementUrls as Record<string, string>;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(urls)) out[k] = v.replace('INSTANCEID', encodeURIComponent(instanceId));
  out.id = instanceId;
  return out;
}

async function handleAdmin(engine: DurableEngine, req: IncomingMessage, res: ServerResponse, op: string): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  try {
    if (op === 'advance') {
      const body = req.method === 'POST' ? await readBody(req) : '';
      const fromBody = body.trim() ? (JSON.parse(body) as { ms?: number }).ms : undefined;
      const ms = Number(url.searchParams.get('ms') ?? fromBody);
      if (!Number.isFinite(ms) || ms < 0) return sendJson(res, 400, { Message: 'advance needs ms >= 0' });
      await engine.clock.advance?.(ms);
      return sendJson(res, 200, { now: new Date(engine.clock.now()).toISOString() });
    }
    if (op === 'idle') {
      await engine.whenIdle();
      return sendJson(res, 200, { now: new Date(engine.clock.now()).toISOString() });
    }
    if (op === 'clock') return sendJson(res, 200, { now: new Date(engine.clock.now()).toISOString() });
    return sendJson(res, 404, null);
  } catch (err) {
    sendJson(res, 500, { Message: String(err) });
  }
}

function validJson(text: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch {
    throw new ClientRequestError(400, 'Invalid JSON content');
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function secondsIso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === null || body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(text ? { 'Content-Type': 'application/json; charset=utf-8' } : {}),
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export type { HistoryEvent };
