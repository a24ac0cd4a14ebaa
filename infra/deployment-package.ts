/**
 * The deployable zip of the function app: host.json, package.json, package-lock.json, the built code
 * under dist/ and the production node_modules, filtered by .funcignore exactly like a Core Tools
 * publish. Nothing from local/, test/, bench/ or infra/ (source or built) and no devDependencies.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { FuncIgnore, globToRegExpSource } from './funcignore';
import { writeZip, type ZipEntry } from './zip-archive';

/** Root files the Functions host reads; the built code and node_modules come on top. */
const ROOT_FILES = ['host.json', 'package.json', 'package-lock.json'];
/** Incremental-build bookkeeping, not code. */
const BUILD_CACHE = /(^|\/)[^/]*\.tsbuildinfo$/;

export interface PackageManifest {
  main: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

export interface DeploymentPackage {
  zipPath: string;
  /** Archive paths, in archive order. */
  files: string[];
  bytes: number;
  /** Files the `main` glob resolves to: the function registrations the host loads. */
  entryPoints: string[];
  /** Whether the production dependencies came from the cache of an earlier identical lockfile. */
  dependenciesCached: boolean;
}

export class PackagingError extends Error {
  override name = 'PackagingError';
}

function readManifest(root: string): PackageManifest {
  return JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as PackageManifest;
}

/** `a/{b,c}/d` -> `a/b/d`, `a/c/d` (one level of braces is all package.json globs use). */
function expandBraces(glob: string): string[] {
  const m = /\{([^{}]*)\}/.exec(glob);
  if (!m) return [glob];
  return m[1].split(',').flatMap((alt) => expandBraces(glob.slice(0, m.index) + alt + glob.slice(m.index + m[0].length)));
}

export function mainGlobMatcher(glob: string): (relativePath: string) => boolean {
  const regexes = expandBraces(glob).map((g) => new RegExp(`^${globToRegExpSource(g)}$`));
  return (p) => regexes.some((r) => r.test(p));
}

/** Every file under `dir` (posix paths relative to `base`), skipping what `skipDir` rejects. */
function walk(base: string, dir: string, skipDir: (rel: string) => boolean, skipFile: (rel: string) => boolean): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    for (const dirent of fs.readdirSync(path.join(base, rel), { withFileTypes: true })) {
      const childRel = rel ? `${rel}/${dirent.name}` : dirent.name;
      // Follow symlinks the way the runtime would read through them.
      const stat = dirent.isSymbolicLink() ? fs.statSync(path.join(base, childRel)) : dirent;
      if (stat.isDirectory()) {
        if (!skipDir(childRel)) visit(childRel);
      } else if (stat.isFile() && !skipFile(childRel)) {
        out.push(childRel);
      }
    }
  };
  visit(dir);
  return out.sort();
}

function packageNameOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const REQUIRE = /\brequire\(\s*(['"])([^'"]+)\1\s*\)/g;
const BUILTINS = new Set(builtinModules);

/**
 * Follows the relative `require`s of the entry points through the packaged files, and checks each
 * package they name is a production dependency. A trigger that reaches into local/ or a
 * devDependency would deploy fine and then fail on Azure at load; this fails the build instead.
 */
export function checkRequireClosure(
  root: string,
  packaged: Set<string>,
  entryPoints: string[],
  manifest: PackageManifest,
): string[] {
  const problems: string[] = [];
  const production = new Set(Object.keys(manifest.dependencies ?? {}));
  const visited = new Set<string>();
  const queue = [...entryPoints];
  while (queue.length) {
    const file = queue.pop()!;
    if (visited.has(file)) continue;
    visited.add(file);
    const source = fs.readFileSync(path.join(root, file), 'utf8');
    for (const [, , specifier] of source.matchAll(REQUIRE)) {
      if (specifier.startsWith('.')) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
        const resolved = [target, `${target}.js`, `${target}.json`, `${target}/index.js`].find((c) =>
          fs.existsSync(path.join(root, c)) && fs.statSync(path.join(root, c)).isFile(),
        );
        if (!resolved) problems.push(`${file} requires ${specifier}, which does not exist`);
        else if (!packaged.has(resolved)) problems.push(`${file} requires ${resolved}, which the package leaves out`);
        else if (resolved.endsWith('.js')) queue.push(resolved);
      } else if (!specifier.startsWith('node:') && !BUILTINS.has(specifier)) {
        const name = packageNameOf(specifier);
        if (!production.has(name)) {
          const kind = manifest.devDependencies?.[name] ? 'a devDependency' : 'not a dependency';
          problems.push(`${file} requires ${specifier}, ${kind}: it is not deployed`);
        }
      }
    }
  }
  return problems;
}

/**
 * Production node_modules from package-lock.json, via `npm ci --omit=dev --ignore-scripts` in a
 * staging directory (registry or npm cache only). Kept under node_modules/.cache keyed by the lock
 * and manifest, so a repeat package with unchanged dependencies skips the install.
 */
export function stageProductionDependencies(root: string): { dir: string; cached: boolean } {
  const lock = fs.readFileSync(path.join(root, 'package-lock.json'));
  const manifestText = fs.readFileSync(path.join(root, 'package.json'));
  const key = createHash('sha256').update(lock).update(manifestText).digest('hex').slice(0, 16);
  const dir = path.join(root, 'node_modules', '.cache', 'order-saga-package', key);
  const done = path.join(dir, '.installed');
  if (fs.existsSync(done)) return { dir, cached: true };

  // Install beside the final directory and rename, so a concurrent or interrupted run never sees
  // (or reuses) a half-installed tree.
  const staging = `${dir}.${process.pid}.partial`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  fs.writeFileSync(path.join(staging, 'package.json'), manifestText);
  fs.writeFileSync(path.join(staging, 'package-lock.json'), lock);
  try {
    execFileSync(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
      { cwd: staging, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    fs.writeFileSync(path.join(staging, '.installed'), new Date().toISOString());
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(staging, dir);
    // One copy is enough: installs for earlier lockfiles are ~130 MB each and never reused.
    for (const other of fs.readdirSync(path.dirname(dir))) {
      if (other !== key && !other.endsWith('.partial')) fs.rmSync(path.join(path.dirname(dir), other), { recursive: true, force: true });
    }
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    if (fs.existsSync(done)) return { dir, cached: true }; // another run finished first
    throw err;
  }
  return { dir, cached: false };
}

export interface BuildOptions {
  root: string;
  zipPath: string;
}

export function buildDeploymentPackage({ root, zipPath }: BuildOptions): DeploymentPackage {
  const manifest = readManifest(root);
  const funcignoreFile = path.join(root, '.funcignore');
  const ignore = new FuncIgnore(fs.existsSync(funcignoreFile) ? fs.readFileSync(funcignoreFile, 'utf8') : '');
  const skipDir = (rel: string) => ignore.ignores(rel, true);
  const skipFile = (rel: string) => ignore.ignores(rel, false) || BUILD_CACHE.test(rel);

  if (!fs.existsSync(path.join(root, 'dist'))) {
    throw new PackagingError('no dist/: build first (npm run build)');
  }
  const appFiles = walk(root, 'dist', skipDir, skipFile);
  const isEntryPoint = mainGlobMatcher(manifest.main);
  const entryPoints = appFiles.filter(isEntryPoint);
  if (entryPoints.length === 0) {
    throw new PackagingError(`package.json main (${manifest.main}) matches no built file: the app would have no functions`);
  }

  const rootFiles = ROOT_FILES.filter((f) => !skipFile(f));
  for (const f of ROOT_FILES) {
    if (!rootFiles.includes(f) || !fs.existsSync(path.join(root, f))) {
      throw new PackagingError(`${f} is missing or excluded by .funcignore: the host cannot start without it`);
    }
  }

  const problems = checkRequireClosure(root, new Set([...rootFiles, ...appFiles]), entryPoints, manifest);
  if (problems.length) throw new PackagingError(`the deployed code would not load:\n  ${problems.join('\n  ')}`);

  const staged = stageProductionDependencies(root);
  const dependencyFiles = walk(
    staged.dir,
    'node_modules',
    // .bin holds CLI shims (symlinks to devtools' entry points), never loaded by the app.
    (rel) => rel.endsWith('/.bin') || skipDir(rel),
    skipFile,
  );

  const entries: ZipEntry[] = [
    ...rootFiles.map((name) => ({ name, data: fs.readFileSync(path.join(root, name)) })),
    ...appFiles.map((name) => ({ name, data: fs.readFileSync(path.join(root, name)) })),
    ...dependencyFiles.map((name) => ({ name, data: fs.readFileSync(path.join(staged.dir, name)) })),
  ];
  fs.mkdirSync(path.dirname(zipPath), { recursive: true });
  const summary = writeZip(zipPath, entries);
  return {
    zipPath,
    files: entries.map((e) => e.name),
    bytes: summary.bytes,
    entryPoints,
    dependenciesCached: staged.cached,
  };
}
