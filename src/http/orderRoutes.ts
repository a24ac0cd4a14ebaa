/** HTTP handlers of the order API: intake, support view, list. Triggers bind them to routes. */
import { orderIdFrom } from '../domain/orderId';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { z } from 'zod';
import type { OrderState, ServiceStatus } from '../domain/order';
import { type OrderRequest, orderRequestFingerprint, parseOrderRequest, parseRecordedOrderRequest, searchableText } from '../domain/orderRequest';
import { instant, pageQueryFields, validateQuery } from '../domain/validation';
import { ensureError, type FieldProblem, OrderRecordedError, ValidationError } from '../errors';
import { storeWaitFrom, withinStoreWait, type StoreWait } from '../deadline';
import { createLogger, type Logger } from '../log';
import { storeWaitMs, type OrderSagaDependencies } from '../services/dependencies';
import { acceptOrder, unknownSkus } from '../services/intake';
import type { MonitorClient } from '../services/ports';
import { findOrderSupportView, listOrders, withoutSupportNames } from '../services/queries';
import type { SupportAccess } from '../support/principal';
import { authorizeSupportRequest, isResponse, supportAuthorization } from '../support/routes';
import { issuePageToken, readPageToken } from './pageToken';
import { bodyTooLarge, refuseChunkedBody, notFound, problem, problemFromError, type ProblemDetails } from './problem';

export interface HttpEnvironment {
  deps: OrderSagaDependencies;
  monitor: MonitorClient;
}

/** Built lazily inside the handler so even a settings error becomes a problem response. */
export type EnvironmentFactory = (log: Logger) => HttpEnvironment;

export const ORDERS_PATH = '/api/orders';
export const MAX_BODY_BYTES = 64 * 1024;
/** Refuses bytes that are not UTF-8 rather than replacing them; a leading BOM is dropped. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** How bodies were read before: bytes that are not UTF-8 replaced with U+FFFD. */
const LENIENT_UTF8 = new TextDecoder('utf-8');
/** Seconds a client should wait before polling the status URL. */
export const POLL_AFTER_SECONDS = '1';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function handleCreateOrder(request: HttpRequest, context: InvocationContext, environment: EnvironmentFactory): Promise<HttpResponseInit> {
  const log = createLogger(context).with({ invocationId: context.invocationId });
  const idempotencyKey = request.headers.get('idempotency-key') ?? undefined;
  try {
    const keyShape = idempotencyKey === undefined ? 'none' : idempotencyKeyShape(idempotencyKey);
    if (keyShape === 'invalid') throw idempotencyKeyError('must be 1 to 200 visible ASCII characters');
    if (keyShape === 'repeated') throw idempotencyKeyError(GIVEN_ONCE);
    const suppliedCorrelation = request.headers.get('x-correlation-id') ?? undefined;
    const correlationId = suppliedCorrelation !== undefined && CORRELATION_ID.test(suppliedCorrelation) ? suppliedCorrelation : undefined;

    // A compressed body would otherwise read as "not valid JSON", which sends the client looking
    // in the wrong place.
    const encoding = request.headers.get('content-encoding')?.trim().toLowerCase();
    if (encoding && encoding !== 'identity') {
      return problem(415, 'unsupported-content-encoding', 'Content-Encoding not supported', `the body must be sent uncompressed, not as ${encoding}`);
    }
    const chunked = refuseChunkedBody(request);
    if (chunked) return chunked;
    const bytes = await request.arrayBuffer();
    if (bytes.byteLength > MAX_BODY_BYTES) {
      return bodyTooLarge(MAX_BODY_BYTES);
    }
    const env = environment(log);
    // The request's Cosmos DB calls share one wait, the lookups some requests make before placing included.
    const storeWait = storeWaitFrom(storeWaitMs(env.deps.settings));
    if (keyShape === 'joined' && !(await keyInUse(idempotencyKey!, env.deps, storeWait))) throw idempotencyKeyError(GIVEN_ONCE);
    const order = await readOrderRequest(bytes, idempotencyKey, env.deps, log, storeWait);
    const accepted = await acceptOrder(
      order,
      {
        ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
        ...(correlationId !== undefined ? { correlationId } : {}),
        storeWait,
      },
      env.monitor,
      env.deps,
      log,
    );
    const statusUrl = `${ORDERS_PATH}/${accepted.orderId}`;
    return {
      status: 202,
      jsonBody: { orderId: accepted.orderId, state: 'accepted', statusUrl },
      headers: { Location: statusUrl, 'Retry-After': POLL_AFTER_SECONDS, 'x-correlation-id': accepted.correlationId },
    };
  } catch (err) {
    // Nothing was placed: a client with a key retries with it, one without just retries.
    if (!(err instanceof OrderRecordedError)) return problemFromError(err, log, idempotencyKey !== undefined ? 'with the same Idempotency-Key' : undefined);
    // The order exists whatever the client does next: say which it is and where to follow it.
    const answer = problemFromError(err, log.with({ orderId: err.orderId, correlationId: err.correlationId }));
    answer.jsonBody = { ...(answer.jsonBody as ProblemDetails), orderId: err.orderId, statusUrl: `${ORDERS_PATH}/${err.orderId}` };
    answer.headers = { ...(answer.headers as Record<string, string>), 'x-correlation-id': err.correlationId };
    return answer;
  }
}

const GIVEN_ONCE = 'must be given once (keys joined by a comma are several)';

function idempotencyKeyError(message: string): ValidationError {
  return new ValidationError('the Idempotency-Key header is not valid', [{ path: 'headers/Idempotency-Key', message }]);
}

/**
 * A header sent twice reaches the app as its values joined: by "," from the Functions host on
 * Azure (`StringValues.ToString()`) and from the local host, by ", " from Node's own parser.
 * `repeated`: not one key (a key has no space), but keys joined; `joined`: a key that reads as
 * keys joined by ",", which is one key only if an order was already placed under it (the rules
 * allowed it once); `invalid`: not a key at all.
 */
function idempotencyKeyShape(value: string): 'key' | 'joined' | 'repeated' | 'invalid' {
  const parts = value.split(/, ?/);
  const several = parts.length > 1 && parts.every((part) => IDEMPOTENCY_KEY.test(part));
  if (!IDEMPOTENCY_KEY.test(value)) return several ? 'repeated' : 'invalid';
  return several ? 'joined' : 'key';
}

/** Whether an order was placed under this exact key. */
async function keyInUse(idempotencyKey: string, deps: OrderSagaDependencies, wait: StoreWait): Promise<boolean> {
  return withinStoreWait(wait, async (signal) => (await deps.idempotency.find(idempotencyKey, { signal })) !== undefined);
}

/** The order in a POST body, by today's rules; a `ValidationError` naming each bad field otherwise. */
async function readOrderRequest(
  bytes: ArrayBuffer,
  idempotencyKey: string | undefined,
  deps: OrderSagaDependencies,
  log: Logger,
  storeWait: StoreWait,
): Promise<OrderRequest> {
  let problems: FieldProblem[];
  let summary: string | undefined;
  /** A JSON body the rules refused. */
  let refused: unknown;
  const raw = strictUtf8(bytes);
  if (raw === undefined) {
    problems = [{ path: '(body)', message: 'must be JSON in UTF-8' }];
    summary = 'the body is not UTF-8';
  } else {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      throw new ValidationError('the body is not valid JSON', [{ path: '(body)', message: 'must be a JSON object' }]);
    }
    const parsed = parseOrderRequest(body, { faultInjectionEnabled: deps.settings.faultInjectionEnabled });
    if (parsed.ok) return parsed.value;
    problems = parsed.problems;
    refused = body;
  }
  // A retry, with its Idempotency-Key, of an order earlier versions accepted by looser rules (read
  // as they read it) is still that order: the client is told so, not that the order is not valid.
  if (idempotencyKey !== undefined) {
    const recorded = recordedOrderRequest(bytes, deps.settings.faultInjectionEnabled);
    if (recorded && (await isRecordedOrder(idempotencyKey, recorded, deps, log, storeWait))) return recorded;
  }
  if (refused !== undefined) {
    problems = [...problems, ...(await unknownSkusBeside(refused, problems, deps, log, storeWait))];
    summary = `the order is not valid: ${problems.map((p) => p.path).join(', ')}`;
  }
  throw new ValidationError(summary ?? 'the order is not valid', problems);
}

/**
 * How long a refused body's answer waits for the catalog to name its unknown SKUs. A body that is
 * not valid is answered without Cosmos DB otherwise: while it does not answer, the request's whole
 * wait (10 s) would hold up every 400 for a check that then finds nothing.
 */
const SKU_CHECK_WAIT_MS = 1_000;

/**
 * Unknown SKUs among the well-formed items of a body refused for other reasons (at most the items an
 * order may have). Best effort: a catalog Cosmos DB does not serve within `SKU_CHECK_WAIT_MS` leaves
 * the other problems to answer.
 */
async function unknownSkusBeside(body: unknown, problems: FieldProblem[], deps: OrderSagaDependencies, log: Logger, storeWait: StoreWait): Promise<FieldProblem[]> {
  const items = (body as { items?: unknown } | null)?.items;
  if (!Array.isArray(items) || problems.some((p) => p.path === 'items')) return [];
  const bad = new Set(problems.map((p) => p.path));
  const wellFormed = items.flatMap((item: unknown, index) => {
    const sku = (item as { sku?: unknown } | null)?.sku;
    return typeof sku === 'string' && !bad.has(`items/${index}`) && !bad.has(`items/${index}/sku`) ? [{ sku, index }] : [];
  });
  if (wellFormed.length === 0) return [];
  try {
    return await withinStoreWait(Math.min(storeWait.leftMs(), SKU_CHECK_WAIT_MS), (signal) => unknownSkus(wellFormed, deps, log, { signal }));
  } catch (err) {
    log.warn('order-skus-not-checked', { error: ensureError(err).message });
    return [];
  }
}

/** The body's text, or undefined for bytes that are not UTF-8 (which would otherwise be stored as U+FFFD, silently changed). */
function strictUtf8(bytes: ArrayBuffer): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The body as earlier versions read it: UTF-8 with bad bytes replaced, and their rules. */
function recordedOrderRequest(bytes: ArrayBuffer, faultInjectionEnabled: boolean): OrderRequest | undefined {
  try {
    return parseRecordedOrderRequest(JSON.parse(LENIENT_UTF8.decode(bytes)), { faultInjectionEnabled });
  } catch {
    return undefined;
  }
}

/**
 * Whether this key's record, written before the strict rules, is this body's and its order was
 * written: only then is the retry that order. A key claimed whose order never got written is no order to find, and today's rules apply
 * to writing it. A store that cannot be read, or not within the store wait (throttling), leaves the
 * body judged by today's rules: a 400, never a 5xx for a body that breaks them.
 */
async function isRecordedOrder(idempotencyKey: string, request: OrderRequest, deps: OrderSagaDependencies, log: Logger, wait: StoreWait): Promise<boolean> {
  try {
    return await withinStoreWait(wait, async (signal) => {
      const record = await deps.idempotency.find(idempotencyKey, { signal });
      // Only a record written before the strict rules: a later one's body was held to them.
      if (!record || record.strictBody || record.fingerprint !== orderRequestFingerprint(request)) return false;
      return (await deps.orders.get(record.orderId, { signal })) !== undefined;
    });
  } catch (err) {
    log.warn('idempotency-lookup-failed', { error: ensureError(err).message });
    return false;
  }
}

/**
 * One order, everything about it, to whoever holds its id: the client that placed it polls its
 * `statusUrl`. Only a caller with the support role also sees which support person did what.
 */
export async function handleGetOrder(
  request: HttpRequest,
  context: InvocationContext,
  environment: EnvironmentFactory,
  access: SupportAccess,
): Promise<HttpResponseInit> {
  let log = createLogger(context).with({ invocationId: context.invocationId });
  try {
    const asked = request.params.id ?? '';
    const id = orderIdFrom(asked);
    if (id === undefined) return notFound(`no order ${JSON.stringify(asked)}`);
    log = log.with({ orderId: id });
    const env = environment(log);
    const view = await findOrderSupportView(id, env.monitor, env.deps, storeWaitMs(env.deps.settings));
    if (!view) return notFound(`no order ${id}`);
    const support = supportAuthorization(request, access).ok;
    return { status: 200, jsonBody: support ? view : withoutSupportNames(view) };
  } catch (err) {
    return problemFromError(err, log);
  }
}

const STATES: [OrderState, ...OrderState[]] = ['accepted', 'processing', 'completed', 'compensating', 'cancelled', 'attention'];
const STATUSES: [ServiceStatus, ...ServiceStatus[]] = ['pending', 'processing', 'done', 'failed', 'deadlettered', 'compensated'];

const listQuerySchema = z.strictObject({
  state: z.enum(STATES).optional(),
  customerId: searchableText(z.string().trim().min(1).max(128)).optional(),
  'status.inventory': z.enum(STATUSES).optional(),
  'status.billing': z.enum(STATUSES).optional(),
  'status.notification': z.enum(STATUSES).optional(),
  updatedBefore: instant.optional(),
  ...pageQueryFields,
});

/**
 * The orders list, to support only: it is every customer's orders, and finds them by customer id.
 * (One order's own view is answered to whoever holds its id, the client that placed it polling
 * its `statusUrl`.)
 */
export async function handleListOrders(
  request: HttpRequest,
  context: InvocationContext,
  dependencies: () => OrderSagaDependencies,
  access: SupportAccess,
): Promise<HttpResponseInit> {
  const log = createLogger(context).with({ invocationId: context.invocationId });
  try {
    const principal = authorizeSupportRequest(request, access);
    if (isResponse(principal)) return principal;
    const parsed = validateQuery(listQuerySchema, request.url);
    if (!parsed.ok) throw new ValidationError('invalid query parameters', parsed.problems);
    const q = parsed.value;
    const filter = {
      ...(q.state ? { state: q.state } : {}),
      ...(q.customerId ? { customerId: q.customerId } : {}),
      status: {
        ...(q['status.inventory'] ? { inventory: q['status.inventory'] } : {}),
        ...(q['status.billing'] ? { billing: q['status.billing'] } : {}),
        ...(q['status.notification'] ? { notification: q['status.notification'] } : {}),
      },
      ...(q.updatedBefore ? { updatedBefore: q.updatedBefore } : {}),
    };
    const continuationToken = q.continuationToken ? readPageToken(filter, q.continuationToken) : undefined;
    const deps = dependencies();
    const page = await withinStoreWait(storeWaitMs(deps.settings), (signal) =>
      listOrders(filter, { pageSize: q.pageSize, ...(continuationToken ? { continuationToken } : {}) }, deps, { signal }),
    );
    return {
      status: 200,
      jsonBody: { ...page, ...(page.continuationToken ? { continuationToken: issuePageToken(filter, page.continuationToken) } : {}) },
    };
  } catch (err) {
    return problemFromError(err, log);
  }
}
