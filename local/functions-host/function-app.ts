/**
 * Reads a v4 Node.js Functions app directory (host.json, package.json `main`,
 * local.settings.json) and loads its code with the core module in place, failing loudly when the
 * library did not register anything.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FunctionsCore } from './core-module';
import { HostConfigurationError } from './invoker';
import { isGlob, resolveMainGlob } from './main-glob';

export interface HostJson {
  version?: string;
  logging?: { logLevel?: Record<string, string> };
  extensions?: {
    http?: { routePrefix?: string };
    serviceBus?: {
      prefetchCount?: number;
      autoCompleteMessages?: boolean;
      maxAutoLockRenewalDuration?: string;
      maxConcurrentCalls?: number;
      maxMessageBatchSize?: number;
      maxWaitTime?: string;
    };
    durableTask?: {
      hubName?: string;
      maxConcurrentActivityFunctions?: number;
      maxConcurrentOrchestratorFunctions?: number;
    };
  };
  functionTimeout?: string;
  /** Dynamic concurrency (applied to Service Bus triggers). */
  concurrency?: { dynamicConcurrencyEnabled?: boolean; maximumFunctionConcurrency?: number };
}

export interface LocalSettings {
  Values?: Record<string, string>;
  Host?: { LocalHttpPort?: number | string };
}

function readJson<T>(file: string, what: string): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new HostConfigurationError(`${what} (${file}) is not valid JSON: ${(err as Error).message}`);
  }
}

export function readHostJson(appDir: string): HostJson {
  const hostJson = readJson<HostJson>(join(appDir, 'host.json'), 'host.json');
  if (!hostJson) throw new HostConfigurationError(`no host.json in ${appDir}: not a Functions app directory`);
  return hostJson;
}

export function readLocalSettings(appDir: string): LocalSettings {
  return readJson<LocalSettings>(join(appDir, 'local.settings.json'), 'local.settings.json') ?? {};
}

/** Like Core Tools: settings become environment variables, but never override ones already set. */
export function applyLocalSettings(settings: LocalSettings, env: NodeJS.ProcessEnv = process.env): string[] {
  const applied: string[] = [];
  for (const [key, value] of Object.entries(settings.Values ?? {})) {
    if (env[key] === undefined) {
      env[key] = String(value);
      applied.push(key);
    }
  }
  return applied;
}

/** The files package.json `main` names, in load order. */
export function resolveEntryFiles(appDir: string): string[] {
  const pkg = readJson<{ main?: string }>(join(appDir, 'package.json'), 'package.json') ?? {};
  const main = pkg.main ?? 'index.js';
  if (isGlob(main)) {
    const files = resolveMainGlob(appDir, main);
    if (files.length === 0) {
      throw new HostConfigurationError(
        `package.json "main" (${main}) matches no file in ${appDir}; build the app first (npm run build)`,
      );
    }
    return files;
  }
  const file = isAbsolute(main) ? main : resolve(appDir, main);
  if (!existsSync(file)) {
    throw new HostConfigurationError(`package.json "main" points at ${file}, which does not exist; build the app first`);
  }
  return [file];
}

const TEST_MODE_TEXT = 'package to test mode';

/** ESM entry files need a real dynamic import, which TypeScript's CommonJS output would rewrite. */
const importModule = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

/**
 * Loads every entry file with `@azure/functions-core` provided, then checks that the library
 * really talked to it: a programming model was set and at least one function was registered.
 */
export async function loadFunctionApp(core: FunctionsCore, files: string[]): Promise<void> {
  let sawTestMode = false;
  const originalWarn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (args.some((a) => typeof a === 'string' && a.includes(TEST_MODE_TEXT))) sawTestMode = true;
    originalWarn.apply(console, args as []);
  };
  try {
    for (const file of files) {
      if (/\.mjs$/.test(file)) await importModule(pathToFileURL(file).href);
      else {
        try {
          require(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ERR_REQUIRE_ESM') await importModule(pathToFileURL(file).href);
          else throw err;
        }
      }
    }
  } finally {
    console.warn = originalWarn;
  }
  if (sawTestMode) {
    throw new HostConfigurationError(
      '@azure/functions switched to "test mode": it could not load @azure/functions-core, so no function was registered. ' +
        'Is a second copy of @azure/functions loaded before the host, or was the app bundled with it resolved at build time?',
    );
  }
  if (core.functions.size === 0) {
    throw new HostConfigurationError(
      `no function was registered by ${files.join(', ')} (v4 apps register with app.http(), app.timer(), ...)`,
    );
  }
  if (!core.programmingModel) {
    throw new HostConfigurationError('functions were registered but no programming model was set by @azure/functions');
  }
}
