/** Conditional requests (RFC 9110 13.1). */

/**
 * Whether `If-None-Match` holds for a resource with this entity tag, so a GET or HEAD answers 304:
 * `*`, or a list naming the tag, compared weakly (`W/"x"` matches `"x"`), as section 13.1.2 asks.
 */
export function noneMatchHolds(header: string | null | undefined, etag: string): boolean {
  if (header === null || header === undefined) return false;
  if (header.trim() === '*') return true;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  const wanted = opaque(etag);
  return header.split(',').some((tag) => opaque(tag) === wanted);
}
