// The deployable zip, built from the real built tree: what the Functions host needs is in it, what
// stays on the developer's machine is not, and the production dependencies load from it.
// Needs a build first (`npx tsc -p tsconfig.json`, or `npm test` which builds) and the npm cache.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  buildDeploymentPackage,
  PackagingError,
  type DeploymentPackage,
} from '../../infra/deployment-package';
import { FuncIgnore } from '../../infra/funcignore';
import { writeZip } from '../../infra/zip-archive';
import { repositoryRoot } from '../../infra/repository';
import { readZip, type ZipListing } from './zip-reader';

const root = repositoryRoot();
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
const APP_DIRS = ['triggers', 'orchestrators', 'activities'];

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? filesUnder(path.join(dir, d.name)) : [path.join(dir, d.name)],
  );
}
const toArchivePath = (abs: string) => path.relative(root, abs).split(path.sep).join('/');

let tmp: string;
let pkg: DeploymentPackage;
let zip: ZipListing;
let names: Set<string>;

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'triggers'))) {
    throw new Error('no built app in dist/: run `npx tsc -p tsconfig.json` (or `npm run build`) first');
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'order-saga-package-'));
  // One packaging run for the whole file: the dependency install is the slow part.
  pkg = buildDeploymentPackage({ root, zipPath: path.join(tmp, 'order-saga.zip') });
  zip = readZip(pkg.zipPath);
  names = new Set(zip.names);
}, 300_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('deployment package contents', () => {
  it('is a valid zip whose every entry reads back with its CRC', () => {
    expect(zip.names).toEqual(pkg.files);
    for (const name of zip.names) zip.read(name);
  });

  it('has host.json, package.json and package-lock.json at the root, unchanged', () => {
    for (const f of ['host.json', 'package.json', 'package-lock.json']) {
      expect(zip.read(f).equals(fs.readFileSync(path.join(root, f)))).toBe(true);
    }
  });

  it('has every built file the package.json main glob resolves to', () => {
    expect(manifest.main).toBe('dist/{triggers,orchestrators,activities}/**/*.js');
    const entryPoints = APP_DIRS.flatMap((d) => filesUnder(path.join(root, 'dist', d)))
      .filter((f) => f.endsWith('.js'))
      .map(toArchivePath)
      .sort();
    expect(entryPoints.length).toBeGreaterThan(0);
    expect([...pkg.entryPoints].sort()).toEqual(entryPoints);
    for (const f of entryPoints) expect(names).toContain(f);
  });

  it('has everything the entry points require, transitively', () => {
    const visited = new Set<string>();
    const missing: string[] = [];
    const queue = [...pkg.entryPoints];
    while (queue.length) {
      const file = queue.pop()!;
      if (visited.has(file)) continue;
      visited.add(file);
      for (const [, , spec] of zip.read(file).toString('utf8').matchAll(/\brequire\((['"])([^'"]+)\1\)/g)) {
        if (spec.startsWith('.')) {
          const base = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
          const hit = [base, `${base}.js`, `${base}.json`, `${base}/index.js`].find((c) => names.has(c));
          if (!hit) missing.push(`${file} -> ${spec}`);
          else if (hit.endsWith('.js')) queue.push(hit);
        } else if (!spec.startsWith('node:') && !require('node:module').builtinModules.includes(spec)) {
          const pkgName = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
          if (!names.has(`node_modules/${pkgName}/package.json`)) missing.push(`${file} -> ${spec}`);
        }
      }
    }
    expect(missing).toEqual([]);
    expect(visited.size).toBeGreaterThan(pkg.entryPoints.length); // the shared code in dist/src came along
  });

  it('has the built portal the portal function serves', () => {
    const portal = filesUnder(path.join(root, 'dist', 'portal')).map(toArchivePath);
    for (const f of portal) expect(names).toContain(f);
  });

  it('has every production dependency at its locked version', () => {
    for (const dep of Object.keys(manifest.dependencies)) {
      const packaged = JSON.parse(zip.read(`node_modules/${dep}/package.json`).toString('utf8'));
      expect([dep, packaged.version]).toEqual([dep, lock.packages[`node_modules/${dep}`].version]);
    }
    expect(names).toContain('node_modules/@azure/functions/package.json');
  });

  it('has nothing from local/, test/, bench/ or infra/, and no sources or local settings', () => {
    const stray = zip.names.filter(
      (n) =>
        /^(dist\/)?(local|test|bench|infra)\//.test(n) ||
        n === 'local.settings.json' ||
        n.startsWith('cdktf.out/') ||
        (n.endsWith('.ts') && !n.endsWith('.d.ts')) ||
        n.endsWith('.tsbuildinfo'),
    );
    expect(stray).toEqual([]);
    // Only four kinds of top-level entry.
    expect(new Set(zip.names.map((n) => n.split('/')[0]))).toEqual(
      new Set(['host.json', 'package.json', 'package-lock.json', 'dist', 'node_modules']),
    );
  });

  it('has no development-only package', () => {
    const devOnly = Object.entries(lock.packages as Record<string, { dev?: boolean }>)
      .filter(([p, meta]) => p && meta.dev)
      .map(([p]) => p);
    expect(devOnly.length).toBeGreaterThan(0);
    expect(devOnly.filter((p) => names.has(`${p}/package.json`))).toEqual([]);
    for (const dev of ['jest', 'cdktf', '@cdktf/provider-azurerm', 'typescript', 'better-sqlite3', 'esbuild']) {
      expect(zip.names.some((n) => n.startsWith(`node_modules/${dev}/`))).toBe(false);
    }
  });

  it('loads every production dependency from the unpacked package', () => {
    const unpacked = path.join(tmp, 'unpacked');
    for (const name of zip.names) {
      const dest = path.join(unpacked, name);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.writeFileSync(dest, zip.read(name));
    }
    const deps = Object.keys(manifest.dependencies);
    const run = spawnSync(
      process.execPath,
      ['-e', `for (const d of ${JSON.stringify(deps)}) require(d); console.log('loaded', ${deps.length})`],
      { cwd: unpacked, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } },
    );
    expect(run.stderr).not.toMatch(/Cannot find module|Error:/);
    expect(run.stdout.trim()).toBe(`loaded ${deps.length}`);
  }, 60_000);

  it('is reproducible: a second build reuses the installed dependencies and packs them identically', () => {
    const again = buildDeploymentPackage({ root, zipPath: path.join(tmp, 'again.zip') });
    expect(again.dependenciesCached).toBe(true);
    // Only node_modules is compared: dist/ may be rebuilt between the two runs.
    const second = readZip(again.zipPath);
    const deps = (names: string[]) => names.filter((n) => n.startsWith('node_modules/'));
    expect(deps(second.names)).toEqual(deps(zip.names));
    const differing = deps(zip.names).filter((n) => !zip.read(n).equals(second.read(n)));
    expect(differing).toEqual([]);
  }, 120_000);
});

describe('zip writer', () => {
  it('writes the same bytes for the same entries (fixed timestamps), and they read back', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'order-saga-zip-'));
    const entries = [
      { name: 'host.json', data: Buffer.from('{"version":"2.0"}') },
      { name: 'dist/a.js', data: Buffer.from('x'.repeat(10_000)) }, // compresses: deflated
      { name: 'dist/b.bin', data: Buffer.from([0, 1, 2, 3]) }, // does not: stored
      { name: 'dist/empty.txt', data: Buffer.alloc(0) },
    ];
    writeZip(path.join(dir, 'one.zip'), entries);
    writeZip(path.join(dir, 'two.zip'), entries);
    expect(fs.readFileSync(path.join(dir, 'one.zip')).equals(fs.readFileSync(path.join(dir, 'two.zip')))).toBe(true);
    const listing = readZip(path.join(dir, 'one.zip'));
    expect(listing.names).toEqual(entries.map((e) => e.name));
    for (const e of entries) expect(listing.read(e.name).equals(e.data)).toBe(true);
    expect(() => writeZip(path.join(dir, 'dup.zip'), [entries[0], entries[0]])).toThrow(/duplicate zip entry host.json/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('packaging refuses an app that would not run', () => {
  const fixtures: string[] = [];
  afterAll(() => fixtures.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

  function fixture(files: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'order-saga-fixture-'));
    fixtures.push(dir);
    const base: Record<string, string> = {
      'host.json': '{"version":"2.0"}',
      'package.json': JSON.stringify({
        main: manifest.main,
        dependencies: { '@azure/functions': '4.16.5' },
        devDependencies: { cdktf: '0.21.0' },
      }),
      'package-lock.json': '{}',
      '.funcignore': fs.readFileSync(path.join(root, '.funcignore'), 'utf8'),
    };
    for (const [name, text] of Object.entries({ ...base, ...files })) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), text);
    }
    return dir;
  }
  const build = (dir: string) => () => buildDeploymentPackage({ root: dir, zipPath: path.join(dir, 'out.zip') });

  it('when main matches no built file', () => {
    expect(build(fixture({ 'dist/src/x.js': '' }))).toThrow(/matches no built file/);
  });

  it('when a function requires code that stays local', () => {
    const dir = fixture({ 'dist/triggers/a.js': 'require("../local/emulator");', 'dist/local/emulator.js': '' });
    expect(build(dir)).toThrow(PackagingError);
    expect(build(dir)).toThrow(/dist\/triggers\/a\.js requires dist\/local\/emulator\.js, which the package leaves out/);
  });

  it('when a function requires a devDependency', () => {
    expect(build(fixture({ 'dist/triggers/a.js': 'require("cdktf/lib/testing");' }))).toThrow(/requires cdktf\/lib\/testing, a devDependency/);
  });
});

describe('.funcignore rules as Core Tools applies them', () => {
  const ignore = new FuncIgnore(fs.readFileSync(path.join(root, '.funcignore'), 'utf8'));
  it.each([
    ['local', true, true],
    ['dist/local', true, true],
    ['dist/infra', true, true],
    ['node_modules/some-lib/test', true, true],
    ['portal/src', true, true],
    ['dist/portal', true, false],
    ['dist/src', true, false],
    ['local.settings.json', false, true],
    ['src/topology.ts', false, true],
    ['node_modules/zod/index.d.ts', false, false],
    ['dist/src/topology.js', false, false],
    ['tsconfig.test.json', false, true],
    ['host.json', false, false],
  ])('%s (directory: %s) ignored: %s', (p, isDirectory, expected) => {
    expect(ignore.ignores(p, isDirectory)).toBe(expected);
  });
});
