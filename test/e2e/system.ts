/**
 * The whole system on loopback for end-to-end tests and benchmarks: the Service Bus emulator and
 * the Cosmos DB stand-in in this process, the Functions host (built app in dist/) as a child
 * process wired to them by app settings only. Every port is picked free; stop() ends only what
 * this call started.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos-emulator';
import { startServiceBusEmulator, type RunningServiceBusEmulator } from '../../local/servicebus-emulator';
import { spawnService, type RunningService } from '../../local/service-process';

export const REPO_ROOT = resolve(__dirname, '..', '..').replace(/[\\/]dist$/, '');
const HOST_CLI = join(REPO_ROOT, 'dist', 'local', 'functions-host', 'cli.js');
const READY = /Functions host listening on (http:\/\/127\.0\.0\.1:\d+)/;

export interface SystemOptions {
  /** Extra app settings for the Functions host (override the defaults below). */
  env?: Record<string, string>;
  /** Echo the host's output to stderr (debugging). */
  echo?: boolean;
}

export interface HttpAnswer<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface RunningSystem {
  baseUrl: string;
  serviceBusConnectionString: string;
  cosmos: { endpoint: string; key: string; caCertificateFile: string };
  host: RunningService;
  request<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpAnswer<T>>;
  postOrder<T = any>(body: unknown, headers?: Record<string, string>): Promise<HttpAnswer<T>>;
  getOrder<T = any>(id: string): Promise<HttpAnswer<T>>;
  /** Polls GET /api/orders/{id} every `intervalMs` until `done(order)` or the timeout. */
  waitForOrder<T = any>(id: string, done: (order: T) => boolean, timeoutMs?: number, intervalMs?: number): Promise<T>;
  stop(): Promise<void>;
}

export async function startSystem(options: SystemOptions = {}): Promise<RunningSystem> {
  if (!existsSync(HOST_CLI)) throw new Error(`${HOST_CLI} is missing: build first (npx tsc -p tsconfig.json)`);
  const cleanups: (() => Promise<void> | void)[] = [];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups.length = 0;
  };
  try {
    const scratch = mkdtempSync(join(tmpdir(), 'order-saga-e2e-'));
    cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
    const serviceBus: RunningServiceBusEmulator = await startServiceBusEmulator({ port: 0 });
    cleanups.push(() => serviceBus.stop());
    const cosmos: CosmosEmulator = await startCosmosEmulator({ port: 0, certDir: join(scratch, 'cosmos') });
    cleanups.push(() => cosmos.stop());

    const host = await spawnService({
      name: 'functions-host',
      command: [process.execPath, HOST_CLI, '--app-dir', REPO_ROOT],
      cwd: REPO_ROOT,
      env: {
        FUNCTIONS_HTTP_PORT: '0',
        ServiceBusConnection: serviceBus.connectionString,
        CosmosDbConnection__accountEndpoint: cosmos.endpoint,
        CosmosDbConnection__accountKey: cosmos.key,
        CosmosDbConnection__caCertificateFile: cosmos.caCertificateFile,
        DURABLE_DATA_DIR: join(scratch, 'durable'),
        FAULT_INJECTION_ENABLED: 'true',
        SEED_CATALOG: 'true',
        ...options.env,
      },
      readyLine: READY,
      timeoutMs: 60_000,
      echo: options.echo ?? false,
    });
    cleanups.push(() => host.stop('SIGTERM', 10_000));
    const baseUrl = host.match[1]!;

    const request = async <T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer<T>> => {
      const init: RequestInit = { method, headers: { ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${baseUrl}${path}`, init);
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // Not JSON: the raw text is the body.
      }
      return { status: res.status, headers: res.headers, body: parsed as T };
    };

    const getOrder = <T>(id: string) => request<T>('GET', `/api/orders/${encodeURIComponent(id)}`);

    return {
      baseUrl,
      serviceBusConnectionString: serviceBus.connectionString,
      cosmos: { endpoint: cosmos.endpoint, key: cosmos.key, caCertificateFile: cosmos.caCertificateFile },
      host,
      request,
      postOrder: <T>(body: unknown, headers?: Record<string, string>) => request<T>('POST', '/api/orders', body, headers),
      getOrder,
      async waitForOrder<T>(id: string, done: (order: T) => boolean, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
        const deadline = Date.now() + timeoutMs;
        let last: HttpAnswer<T> | undefined;
        while (Date.now() < deadline) {
          last = await getOrder<T>(id);
          if (last.status === 200 && done(last.body)) return last.body;
          await new Promise((r) => setTimeout(r, intervalMs));
        }
        throw new Error(`order ${id} did not reach the expected state in ${timeoutMs} ms; last answer ${last?.status}: ${JSON.stringify(last?.body)}`);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
