/** Recognising the Cosmos DB answers the repositories turn into domain outcomes. */
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
  503, // service unavailable
]);
/** Where no answer came: the SDK's request timeout, and the connection errors of Node's sockets. */
const NO_ANSWER_CODES = new Set(['TimeoutError', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Cosmos DB did not serve the call: it throttled it, was unavailable, or did not answer. Such a
 * failure says nothing about the step that made the call, and the same call can succeed once the
 * service is back; a caller that bounds its retries can wait it out instead of counting it.
 */
export function isStoreUnavailable(err: unknown): boolean {
  const status = statusCodeOf(err);
  if (status !== undefined) return UNAVAILABLE_STATUS.has(status);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NO_ANSWER_CODES.has(code);
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
 * token Cosmos DB refuses (400, or one the SDK cannot read) is the caller's mistake, not an outage.
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
    if (continuationToken && (code === undefined || code === 400)) {
      throw invalidContinuationToken();
    }
    throw err;
  }
  return {
    items: found.map(stripSystemProperties),
    ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}),
  };
}
