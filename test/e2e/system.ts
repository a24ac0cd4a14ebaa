/**
 * The whole system on loopback for end-to-end tests and benchmarks: the Service Bus emulator and
 * the Cosmos DB stand-in in this process, the Functions host (built app in dist/) as a child
 * process wired to them by app settings only. Every port is picked free; stop() ends only what
 * this call started.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCosmosEmulator } from '../../local/cosmos-emulator';
import { startServiceBusEmulator } from '../../local/servicebus-emulator';
import type { RunningService } from '../../local/service-process';
import { disposableSettings, emulatorSettings, startFunctionsHost, type EmulatorEndpoints } from '../../local/stack';

export { REPO_ROOT } from '../../local/stack';

export interface SystemOptions {
  /** Extra app settings for the Functions host (override the wiring and `disposableSettings`). */
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

/** Both emulators in this process on free ports; `stop` ends them. */
export async function startEmulatorsInProcess(certDir: string): Promise<EmulatorEndpoints & { stop(): Promise<void> }> {
  const serviceBus = await startServiceBusEmulator({ port: 0 });
  try {
    const cosmos = await startCosmosEmulator({ port: 0, certDir });
    return {
      serviceBusConnectionString: serviceBus.connectionString,
      cosmos: { endpoint: cosmos.endpoint, key: cosmos.key, caCertificateFile: cosmos.caCertificateFile },
      async stop() {
        await cosmos.stop();
        await serviceBus.stop();
      },
    };
  } catch (err) {
    await serviceBus.stop();
    throw err;
  }
}

/** One HTTP call to the host; a JSON body is sent and read back as JSON, anything else as text. */
export async function callHost<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<HttpAnswer<T>> {
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
}

/** Polls GET /api/orders/{id} on the host every `intervalMs` until `done(order)` or the timeout. */
export async function waitForOrder<T = any>(baseUrl: string, id: string, done: (order: T) => boolean, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: HttpAnswer<T> | undefined;
  while (Date.now() < deadline) {
    last = await callHost<T>(baseUrl, 'GET', `/api/orders/${encodeURIComponent(id)}`);
    if (last.status === 200 && done(last.body)) return last.body;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`order ${id} did not reach the expected state in ${timeoutMs} ms; last answer ${last?.status}: ${JSON.stringify(last?.body)}`);
}

export async function startSystem(options: SystemOptions = {}): Promise<RunningSystem> {
  const cleanups: (() => Promise<void> | void)[] = [];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups.length = 0;
  };
  try {
    const scratch = mkdtempSync(join(tmpdir(), 'order-saga-e2e-'));
    cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
    const emulators = await startEmulatorsInProcess(join(scratch, 'cosmos'));
    cleanups.push(() => emulators.stop());

    const functionsHost = await startFunctionsHost({
      settings: { ...emulatorSettings(emulators), ...disposableSettings(join(scratch, 'durable')), ...options.env },
      timeoutMs: 60_000,
      echo: options.echo ?? false,
    });
    cleanups.push(() => functionsHost.stop());
    const host = functionsHost.current();
    const baseUrl = functionsHost.baseUrl;

    const request = <T>(method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
      callHost<T>(baseUrl, method, path, body, headers);
    const getOrder = <T>(id: string) => request<T>('GET', `/api/orders/${encodeURIComponent(id)}`);

    return {
      baseUrl,
      serviceBusConnectionString: emulators.serviceBusConnectionString,
      cosmos: emulators.cosmos,
      host,
      request,
      postOrder: <T>(body: unknown, headers?: Record<string, string>) => request<T>('POST', '/api/orders', body, headers),
      getOrder,
      waitForOrder: <T>(id: string, done: (order: T) => boolean, timeoutMs?: number, intervalMs?: number) => waitForOrder<T>(baseUrl, id, done, timeoutMs, intervalMs),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
