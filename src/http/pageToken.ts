/**
 * The orders list's continuation tokens, bound to the filters they were issued for. A store's own
 * token, sent back with other filters, would go on with a different query's position (or be
 * refused by the store as malformed); bound, the API says what went wrong.
 */
import { createHash } from 'node:crypto';
import { invalidContinuationToken } from '../domain/validation';

const VERSION = 'p1';

function fingerprint(filters: unknown): string {
  return createHash('sha256').update(JSON.stringify(filters)).digest('base64url').slice(0, 16);
}

/** Wraps the store's token for the next page of the listing with these filters. */
export function issuePageToken(filters: unknown, storeToken: string): string {
  return `${VERSION}.${fingerprint(filters)}.${Buffer.from(storeToken, 'utf8').toString('base64url')}`;
}

/** The store's token inside `token`; a 400 when it is not one of ours, or was issued for other filters. */
export function readPageToken(filters: unknown, token: string): string {
  const [version, issuedFor, inner, ...rest] = token.split('.');
  if (version !== VERSION || !issuedFor || !inner || rest.length > 0 || !/^[A-Za-z0-9_-]+$/.test(inner)) {
    throw invalidContinuationToken();
  }
  if (issuedFor !== fingerprint(filters)) {
    throw invalidContinuationToken('was issued for other filters; ask for the first page again without it');
  }
  return Buffer.from(inner, 'base64url').toString('utf8');
}
