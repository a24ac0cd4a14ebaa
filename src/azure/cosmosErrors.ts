/** Recognising the Cosmos DB answers the repositories turn into domain outcomes. */
import type { FeedResponse, Items, SqlQuerySpec } from '@azure/cosmos';
import { PAGE_MAX } from '../domain/validation';
import { statusCodeOf, ValidationError } from '../errors';

export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isPreconditionFailed = (err: unknown): boolean => statusCodeOf(err) === 412;

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

/**
 * One page of a query, its system properties stripped, at most PAGE_MAX items. A continuation
 * token Cosmos DB refuses (400, or one the SDK cannot read) is the caller's mistake, not an outage.
 */
export async function fetchPage<T extends object>(
  items: Items,
  query: string | SqlQuerySpec,
  page: { pageSize: number; continuationToken?: string },
): Promise<{ items: T[]; continuationToken?: string }> {
  const { continuationToken } = page;
  let result: FeedResponse<T>;
  try {
    result = await items.query<T>(query, { maxItemCount: Math.min(Math.max(page.pageSize, 1), PAGE_MAX), continuationToken }).fetchNext();
  } catch (err) {
    const code = statusCodeOf(err);
    if (continuationToken && (code === undefined || code === 400)) {
      throw new ValidationError('invalid continuationToken', [{ path: 'continuationToken', message: 'is not a token this API issued' }]);
    }
    throw err;
  }
  return {
    items: result.resources.map(stripSystemProperties),
    ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}),
  };
}
