/**
 * RFC 9457 problem details at the HTTP edge. Every error thrown inside becomes one of these; a
 * caller's mistake is a 4xx naming what was wrong, a dependency outage is a 503 the caller may
 * retry. Nothing a client sends can produce another 5xx.
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import { ensureError, type FieldProblem, OrderSagaError, statusCodeOf } from '../errors';
import type { Logger } from '../log';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: FieldProblem[];
  [extension: string]: unknown;
}

export function problem(
  status: number,
  slug: string,
  title: string,
  detail: string,
  extensions: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): HttpResponseInit {
  const body: ProblemDetails = { type: `/problems/${slug}`, title, status, detail, ...extensions };
  return { status, jsonBody: body, headers: { 'Content-Type': PROBLEM_CONTENT_TYPE, ...headers } };
}

export function invalidRequest(detail: string, errors: FieldProblem[]): HttpResponseInit {
  return problem(400, 'invalid-request', 'The request is not valid', detail, { errors });
}

/** 413 for a body over a route's limit: one problem type for the condition on every route. */
export function bodyTooLarge(maxBytes: number): HttpResponseInit {
  return problem(413, 'body-too-large', 'Request body too large', `the body must be at most ${maxBytes} bytes`);
}

/**
 * 411 for a body sent in chunks, with no Content-Length; nothing for any other request. The
 * Functions host hands a Node function the body only when Content-Length declares one
 * (azure-functions-host#4926), so such a body never arrives: read, it is empty, and the client
 * would be told its order is not JSON. It can send the same body with its length.
 */
export function refuseChunkedBody(request: HttpRequest): HttpResponseInit | undefined {
  if (!request.headers.has('transfer-encoding') || request.headers.has('content-length')) return undefined;
  return problem(411, 'length-required', 'Content-Length required', 'the body must be sent with a Content-Length; a body sent in chunks does not reach this API');
}

export function notFound(detail: string): HttpResponseInit {
  return problem(404, 'not-found', 'Not found', detail);
}

/**
 * Maps anything thrown to a problem response, logging system faults (credentials stripped).
 * `retryHint` says how to retry a request the service could not serve (placing an order: with
 * the same Idempotency-Key).
 */
export function problemFromError(err: unknown, log: Logger, retryHint?: string): HttpResponseInit {
  if (err instanceof OrderSagaError) {
    switch (err.kind) {
      case 'validation':
        return invalidRequest(err.message, (err as { problems?: FieldProblem[] }).problems ?? []);
      case 'business':
        return problem(400, 'business-rule', 'The request breaks a business rule', err.message, {
          errors: (err as { problems?: FieldProblem[] }).problems ?? [],
        });
      case 'conflict':
        return problem(422, 'idempotency-key-reused', 'Idempotency-Key reused with a different request', err.message);
      case 'notFound':
        return notFound(err.message);
      default:
        break;
    }
  }
  // Everything else is ours or a dependency's: the caller can only retry later.
  const error = ensureError(err);
  log.error('request-failed', error);
  const throttled = throttledFor(err);
  const detail =
    err instanceof OrderSagaError && err.kind === 'transient'
      ? error.message
      : throttled !== undefined
        ? `Cosmos DB is throttling this app's requests; retry in ${throttled} s${retryHint ? ` ${retryHint}` : ''}`
        : `a service this API depends on is unavailable; retry later${retryHint ? ` ${retryHint}` : ''}`;
  return problem(503, 'service-unavailable', 'Service temporarily unavailable', detail, {}, { 'Retry-After': String(throttled ?? DEFAULT_RETRY_AFTER_S) });
}

const DEFAULT_RETRY_AFTER_S = 2;
const MAX_RETRY_AFTER_S = 60;

/**
 * For a throttled Cosmos DB call (429, which the SDK gave up retrying): the seconds its last answer
 * asked to wait (`x-ms-retry-after-ms`), whole and at least 1, so a client does not come back sooner.
 */
function throttledFor(err: unknown): number | undefined {
  if (statusCodeOf(err) !== 429) return undefined;
  const ms = (err as { retryAfterInMs?: unknown }).retryAfterInMs;
  const seconds = typeof ms === 'number' && Number.isFinite(ms) ? Math.ceil(ms / 1000) : DEFAULT_RETRY_AFTER_S;
  return Math.min(Math.max(seconds, 1), MAX_RETRY_AFTER_S);
}
