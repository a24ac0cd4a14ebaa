/**
 * Serves the support portal's static files (built into dist/portal by portal/build.js) from the
 * Functions app itself, at /api/portal/. Nothing here touches orders: the portal's script calls
 * the order API like any other client.
 */
import { app, HttpRequest, HttpResponseInit } from '@azure/functions';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { noneMatchHolds } from '../src/http/conditional';
import { ROUTES } from '../src/http/routes';

/** This file compiles to dist/triggers/portal.js; the bundle sits next to it in dist/portal. */
const PORTAL_ROOT = path.join(__dirname, '..', 'portal');
const INDEX = 'index.html';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

// The portal loads only its own files and talks only to this app: the policy makes that a rule.
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * Maps the route's `{*path}` to a file below the portal root, or null when the path tries to
 * leave it (`..`, absolute paths, backslashes, NUL) or is not decodable.
 */
export function resolvePortalFile(requested: string | undefined): string | null {
  let relative: string;
  try {
    relative = decodeURIComponent(requested ?? '');
  } catch {
    return null;
  }
  if (relative === '' || relative.endsWith('/')) relative += INDEX;
  if (relative.includes('\0') || relative.includes('\\') || relative.startsWith('/')) return null;
  if (relative.split('/').some((segment) => segment === '..' || segment === '.' || segment === '')) return null;
  const file = path.join(PORTAL_ROOT, relative);
  return file.startsWith(PORTAL_ROOT + path.sep) ? file : null;
}

/**
 * index.html is always revalidated so a deploy shows at once; the assets it references carry a
 * content hash in `?v=` (see portal/build.js), so those exact URLs can be cached for good.
 */
function cacheControl(file: string, url: URL): string {
  if (path.basename(file) === INDEX) return 'no-cache';
  return url.searchParams.has('v') ? 'public, max-age=31536000, immutable' : 'public, max-age=300';
}

function notFound(): HttpResponseInit {
  return {
    status: 404,
    headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' },
    body: 'Not found',
  };
}

export async function servePortal(request: HttpRequest): Promise<HttpResponseInit> {
  const url = new URL(request.url);
  const requested = request.params.path ?? '';
  // Relative asset URLs in index.html only resolve below /api/portal/ with its trailing slash.
  if (requested === '' && !url.pathname.endsWith('/')) {
    return { status: 308, headers: { Location: `${url.pathname}/${url.search}`, 'Cache-Control': 'no-cache' } };
  }

  const file = resolvePortalFile(requested);
  if (!file) return notFound();
  let content: Buffer;
  try {
    content = await fs.readFile(file);
  } catch {
    // A missing file, or a directory asked for without its trailing slash.
    return notFound();
  }

  const etag = `"${createHash('sha256').update(content).digest('base64url').slice(0, 27)}"`;
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'Content-Type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Cache-Control': cacheControl(file, url),
    ETag: etag,
  };
  if (noneMatchHolds(request.headers.get('if-none-match'), etag)) return { status: 304, headers };
  return { status: 200, headers, body: new Uint8Array(content) };
}

app.http('portal', {
  ...ROUTES.portal,
  authLevel: 'anonymous',
  handler: servePortal,
});
