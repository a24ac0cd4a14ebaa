// Locates the repository root from wherever infra runs: infra/ under ts-jest, dist/infra/ when built.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function repositoryRoot(from: string = __dirname): string {
  let dir = from;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'host.json')) && fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no host.json + package.json above ${from}: not inside the order saga repository`);
    dir = parent;
  }
}

/** The Functions host's HTTP route prefix (`api` unless host.json says otherwise). */
export function httpRoutePrefix(root: string = repositoryRoot()): string {
  const host = JSON.parse(fs.readFileSync(path.join(root, 'host.json'), 'utf8')) as {
    extensions?: { http?: { routePrefix?: string } };
  };
  return host.extensions?.http?.routePrefix ?? 'api';
}
