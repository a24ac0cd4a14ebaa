/**
 * The app's HTTP routes (below host.json's `routePrefix`, `api`) and their methods, in one place:
 * the triggers register them from here, and `unmatched` answers a request none of them takes.
 */
import type { HttpMethod, HttpRequest, HttpResponseInit } from '@azure/functions';
import { problem } from './problem';

export interface AppRoute {
  /** An ASP.NET route template: literal segments, `{name}` for one segment, `{*name}` for the rest. */
  route: string;
  methods: HttpMethod[];
}

/** What reads a resource: HEAD is GET without the body (the web server drops it), as HTTP asks of every GET. */
const READ: HttpMethod[] = ['GET', 'HEAD'];

export const ROUTES = {
  createOrder: { route: 'orders', methods: ['POST'] },
  listOrders: { route: 'orders', methods: READ },
  getOrder: { route: 'orders/{id}', methods: READ },
  supportRequeueOrder: { route: 'orders/{id}/requeue', methods: ['POST'] },
  supportCompensateOrder: { route: 'orders/{id}/compensate', methods: ['POST'] },
  supportFaults: { route: 'support/faults', methods: [...READ, 'POST'] },
  supportDeadLetters: { route: 'support/deadletters', methods: READ },
  listInventory: { route: 'inventory', methods: READ },
  getInventoryItem: { route: 'inventory/{sku}', methods: READ },
  portal: { route: 'portal/{*path}', methods: READ },
} satisfies Record<string, AppRoute>;

/**
 * The methods the fallback takes when the routes above do not. Not TRACE or CONNECT: the library
 * builds every request as a fetch `Request`, which refuses them (the invocation would fail), so
 * those stay the host's empty 404.
 */
export const EVERY_METHOD: HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

/**
 * The route that takes what no other does. The Functions host tries routes in the order of their
 * functions' names, not by template precedence, so the function on it must be named to sort last
 * (`unmatched`; a test holds every other HTTP function's name before it).
 */
export const UNMATCHED_ROUTE: AppRoute = { route: '{*path}', methods: EVERY_METHOD };

function matches(template: string, segments: string[]): boolean {
  const parts = template.split('/');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.startsWith('{*')) return true;
    const segment = segments[i];
    if (segment === undefined || segment === '') return false;
    if (!part.startsWith('{') && part.toLowerCase() !== segment.toLowerCase()) return false;
  }
  return segments.length === parts.length;
}

/** The methods the app's routes take at this path (below the prefix), in the table's order. */
export function methodsAt(path: string): HttpMethod[] {
  const segments = path.split('/').filter((s, i, all) => s !== '' || i < all.length - 1);
  const methods = Object.values(ROUTES).flatMap((r: AppRoute) => (matches(r.route, segments) ? r.methods : []));
  return [...new Set(methods)];
}

/**
 * A request no route takes: 405 with `Allow` when the path has routes for other methods, 404
 * otherwise, both as problem+json. The Functions host itself answers both with an empty 404.
 */
export function handleUnmatched(request: HttpRequest): HttpResponseInit {
  const path = request.params.path ?? '';
  const allow = methodsAt(path);
  const where = `/api/${path}`;
  // A path the table would give this very method is one the routes themselves did not take
  // (spelled another way, e.g. with an empty segment): no route has it.
  if (allow.length > 0 && !allow.includes(request.method as HttpMethod)) {
    return problem(405, 'method-not-allowed', 'Method not allowed', `${where} takes ${allow.join(', ')}, not ${request.method}`, {}, { Allow: allow.join(', ') });
  }
  return problem(404, 'not-found', 'Not found', `no route ${where}`);
}
