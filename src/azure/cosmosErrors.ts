/** Recognising the Cosmos DB answers the repositories turn into domain outcomes. */
import type { HttpClient } from '@azure/core-rest-pipeline';
import type { FeedResponse, Items, SqlQuerySpec } from '@azure/cosmos';
import { invalidContinuationToken, PAGE_MAX } from '../domain/validation';
import { statusCodeOf } from '../errors';
import type { CallOptions } from '../services/ports';

export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isPreconditionFailed = (err: unknown): boolean => statusCodeOf(err) === 412;

/** Cosmos DB answers that say "not now" about the service, never about the request. */
const UNAVAILABLE_STATUS = new Set([
  408, // request timeout
  429, // throttled past the SDK's own retries
  449, // retry with
  502, // bad gateway: something on the way got no answer from the service
  503, // service unavailable
  504, // gateway timeout: the same
]);
/** Where no answer came: the SDK's request timeout, and the connection errors of Node's sockets. */
const NO_ANSWER_CODES = new Set(['TimeoutError', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Cosmos DB did not serve the call: it throttled it, was unavailable, or did not answer. Such a
 * failure says nothing about the step that made the call, and the same call can succeed once the
 * service is back; a caller that bounds its retries can wait it out instead of counting it.
 */
export function isStoreUnavailable(err: unknown): boolean {
  return failedWith(err, UNAVAILABLE_STATUS, NO_ANSWER_CODES);
}

/** Whether a failure is an answer with one of `statuses`, or, with no answer, a socket or SDK error of one of `codes`. */
function failedWith(err: unknown, statuses: ReadonlySet<number>, codes: ReadonlySet<string>): boolean {
  const status = statusCodeOf(err);
  if (status !== undefined) return statuses.has(status);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.has(code);
}

/**
 * A write that failed this way may still have been applied: it was sent and no answer came back
 * (the SDK's request timeout, a connection reset or broken on the way), or the answer came from
 * something that may have passed it on (a gateway's 502 or 504, Cosmos DB's own 408, 500 or 503).
 * A 429 or 449, a refused connection or an unknown host say it was not applied.
 */
const WRITE_UNKNOWN_STATUS = new Set([408, 500, 502, 503, 504]);
const WRITE_UNKNOWN_CODES = new Set(['TimeoutError', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']);

export function writeOutcomeUnknown(err: unknown): boolean {
  return failedWith(err, WRITE_UNKNOWN_STATUS, WRITE_UNKNOWN_CODES);
}

/** How much of a body that is not JSON an error's message quotes. */
const QUOTED_BODY_CHARS = 200;

/**
 * Statuses by which Cosmos DB says something about the document (not there, already there, changed
 * since): the repositories take them for answers. Only Cosmos DB's own answer, with its JSON body,
 * means that.
 */
const DOCUMENT_ANSWER_STATUS = new Set([404, 409, 412]);

/** Cosmos DB's wait before a throttled call is tried again, which the SDK's retries of a 429 follow. */
const RETRY_AFTER_MS = 'x-ms-retry-after-ms';
/** The wait for a 429 from something on the way that names none, and the longest one taken from it. */
const GATEWAY_RETRY_AFTER_MS = { fallback: 1_000, max: 10_000 };

/**
 * The wait a 429 that is not Cosmos DB's asks for with the standard `Retry-After` (seconds, or a
 * date), within GATEWAY_RETRY_AFTER_MS.
 */
function gatewayRetryAfterMs(retryAfter: string | undefined): number {
  const text = retryAfter?.trim() ?? '';
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : text ? Date.parse(text) - Date.now() : Number.NaN;
  if (!Number.isFinite(ms)) return GATEWAY_RETRY_AFTER_MS.fallback;
  return Math.min(GATEWAY_RETRY_AFTER_MS.max, Math.max(0, ms));
}

/**
 * Cosmos DB's error answers carry a JSON body, and the SDK (4.9) parses every answer's body before
 * it looks at the status: an error answer whose body is not JSON (a gateway's or a proxy's HTML
 * page, a 503 with nothing in it) became a SyntaxError or a TypeError with no status, which no
 * caller can tell from a bug, so an outage was not waited out. This client gives such an answer a
 * JSON body naming its status, so the SDK raises its usual error with the status (`code`).
 *
 * Such an answer came from something on the way, not from Cosmos DB: a 404, 409 or 412 of its own
 * says nothing about the document (read as Cosmos DB's, an existing order would read as missing,
 * a write as one already made, a refused patch as a race lost). It becomes a 502, the call not
 * served, and its message keeps the status it came with. A 429 of its own names its wait, if at
 * all, in the standard `Retry-After`, not in Cosmos DB's `x-ms-retry-after-ms` that the SDK's
 * retries of a 429 wait for: without one they would all go out at once, to the very thing that
 * asked for fewer calls. It gets one from `Retry-After` (1 s when it names none, 10 s at most).
 */
export function withJsonErrorBodies(inner: HttpClient): HttpClient {
  return {
    async sendRequest(request) {
      const response = await inner.sendRequest(request);
      if (response.status >= 400 && !isJsonObjectText(response.bodyAsText)) {
        const answered = response.status;
        const body = (response.bodyAsText ?? '').replace(/\s+/g, ' ').trim().slice(0, QUOTED_BODY_CHARS);
        if (DOCUMENT_ANSWER_STATUS.has(answered)) response.status = 502;
        if (answered === 429 && !response.headers.has(RETRY_AFTER_MS)) {
          response.headers.set(RETRY_AFTER_MS, String(gatewayRetryAfterMs(response.headers.get('retry-after'))));
        }
        response.bodyAsText = JSON.stringify({
          code: String(response.status),
          message: `a ${answered} on the way to Cosmos DB, with ${body ? `a body that is not JSON: ${body}` : 'no body'}`,
        });
      }
      return response;
    },
  };
}

function isJsonObjectText(text: string | null | undefined): boolean {
  if (!text) return false;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null;
  } catch {
    return false;
  }
}

/**
 * Values placed inside a patch condition. The stand-in lower-cases whole conditions, and real
 * Cosmos DB has no parameters for patch filters: only lower-case word characters are allowed,
 * which also rules out injection.
 */
export function conditionLiteral(value: string): string {
  if (!/^[a-z0-9_-]+$/.test(value)) throw new Error(`not a safe condition literal: ${JSON.stringify(value)}`);
  return value;
}

export function stripSystemProperties<T extends object>(doc: T): T {
  const { _rid, _self, _etag, _attachments, _ts, ...rest } = doc as Record<string, unknown>;
  void _rid;
  void _self;
  void _etag;
  void _attachments;
  void _ts;
  return rest as T;
}

/** Reads of a page that came back empty while the query went on, before an empty page is answered. */
const MAX_EMPTY_READS = 20;

/**
 * One page of a query, its system properties stripped, at most PAGE_MAX items. A continuation
 * token Cosmos DB refuses (400, or one the SDK cannot read) is the caller's mistake, not an outage;
 * a Cosmos DB that did not serve the page (no answer, throttled), or a wait given up, is an outage
 * with a token as without one: the client retries the same page rather than start over.
 */
export async function fetchPage<T extends object>(
  items: Items,
  query: string | SqlQuerySpec,
  page: { pageSize: number; continuationToken?: string },
  options: CallOptions = {},
): Promise<{ items: T[]; continuationToken?: string }> {
  const { continuationToken } = page;
  // A cross-partition ORDER BY is not served by Cosmos DB's gateway: the SDK runs it per partition
  // range itself, and gives a continuation token (or takes one) only with query control on. Then
  // a page may come back short, or empty while ranges are still being read: read on until it
  // holds something or the query is done.
  const iterator = items.query<T>(query, {
    maxItemCount: Math.min(Math.max(page.pageSize, 1), PAGE_MAX),
    continuationToken,
    enableQueryControl: true,
    ...(options.signal ? { abortSignal: options.signal } : {}),
  });
  const found: T[] = [];
  let result: FeedResponse<T>;
  let reads = 0;
  try {
    do {
      result = await iterator.fetchNext();
      found.push(...result.resources);
    } while (found.length === 0 && result.hasMoreResults && result.continuationToken && ++reads < MAX_EMPTY_READS);
  } catch (err) {
    const code = statusCodeOf(err);
    const outage = isStoreUnavailable(err) || options.signal?.aborted === true;
    if (continuationToken && !outage && (code === undefined || code === 400)) {
      throw invalidContinuationToken();
    }
    throw err;
  }
  return {
    items: found.map(stripSystemProperties),
    ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}),
  };
}
