import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpRequest } from '@azure/functions';
import { handleUnmatched, methodsAt } from '../../src/http/routes';

describe('the route table', () => {
  it.each([
    ['orders', ['POST', 'GET', 'HEAD']],
    ['orders/', ['POST', 'GET', 'HEAD']],
    ['Orders', ['POST', 'GET', 'HEAD']],
    ['orders/any-id', ['GET', 'HEAD']],
    ['orders/any-id/requeue', ['POST']],
    ['orders/any-id/compensate', ['POST']],
    ['orders/any-id/cancel', []],
    ['orders//requeue', []],
    ['inventory', ['GET', 'HEAD']],
    ['inventory/MOUSE-01', ['GET', 'HEAD']],
    ['inventory/MOUSE-01/x', []],
    ['support/faults', ['GET', 'HEAD', 'POST']],
    ['support/deadletters', ['GET', 'HEAD']],
    ['portal', ['GET', 'HEAD']],
    ['portal/assets/app.js', ['GET', 'HEAD']],
    ['', []],
    ['ordres', []],
  ])('%j takes %j', (path, methods) => {
    expect(methodsAt(path)).toEqual(methods);
  });

});

describe('handleUnmatched', () => {
  const unmatched = (method: string, path: string) =>
    handleUnmatched(new HttpRequest({ method, url: `http://localhost:7071/api/${path}`, params: path ? { path } : {} }));

  it('answers a method the path does not take with 405 naming the ones it does', () => {
    const res = unmatched('DELETE', 'orders/abc');
    expect(res.status).toBe(405);
    expect(res.headers).toMatchObject({ Allow: 'GET, HEAD', 'Content-Type': 'application/problem+json' });
    expect(res.jsonBody).toMatchObject({ status: 405, title: 'Method not allowed', detail: '/api/orders/abc takes GET, HEAD, not DELETE' });
  });

  it('answers 404, not a 405 naming the very method, for a path the routes did not take though the table has it', () => {
    // `/api/orders//` reaches the catch-all as `orders/`: no route took it in that spelling.
    expect(unmatched('GET', 'orders/').status).toBe(404);
    expect(unmatched('HEAD', 'inventory/MOUSE-01/').status).toBe(404);
  });

  it('answers a path no route has with 404', () => {
    expect(unmatched('GET', 'nowhere/at/all')).toMatchObject({ status: 404, jsonBody: { detail: 'no route /api/nowhere/at/all' } });
    expect(unmatched('GET', '')).toMatchObject({ status: 404, jsonBody: { detail: 'no route /api/' } });
  });
});

it("is on the function whose name sorts last: the Functions host tries routes in function-name order", () => {
  const dir = join(__dirname, '..', '..', 'triggers');
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/app\.http\(\s*'([^']+)'/g)].map((m) => m[1]!));
  expect(names.length).toBeGreaterThan(10);
  const key = (name: string) => name.toUpperCase();
  expect([...names].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)).at(-1)).toBe('unmatched');
});
