/**
 * Headers every API answer carries. The answers hold customers' orders and support's names, and a
 * problem echoes what the caller sent (`no order "<...>"`), so: never stored by a browser or a
 * cache on the way (`no-store`), and never read as anything but the type they declare (`nosniff`).
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';

export const API_HEADERS: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

/** The handler with `API_HEADERS` on each of its answers; a header the handler set itself wins. */
export function withApiHeaders(handler: Handler): Handler {
  return async (request, context) => {
    const answer = await handler(request, context);
    const given = answer.headers;
    const own: Record<string, string> =
      given instanceof Headers || Array.isArray(given) ? Object.fromEntries(new Headers(given)) : ((given ?? {}) as Record<string, string>);
    const ownNames = new Set(Object.keys(own).map((name) => name.toLowerCase()));
    const added = Object.fromEntries(Object.entries(API_HEADERS).filter(([name]) => !ownNames.has(name.toLowerCase())));
    return { ...answer, headers: { ...added, ...own } };
  };
}
