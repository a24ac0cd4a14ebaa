/**
 * Runs the durable engine in-process for tests, with the real durable-functions library: the
 * worker's `@azure/functions-core` module is provided (as the Functions worker does), so
 * `df.app.orchestration` / `df.app.activity` register for real and the engine invokes the captured
 * handlers. The client side is the real DurableClient talking HTTP to the engine.
 *
 * Usage: import this module before registering functions, then `const hub = await startTestHub()`.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { DurableEngine, type DurableEngineOptions } from '../../local/durable';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const coreModule = require('./fixtures/functions-core.js') as {
  createFunctionsCore(): { core: unknown; functions: Map<string, { metadata: unknown; handler: unknown }> };
  createInvoker(functions: unknown, ctor: typeof InvocationContext): DurableEngineOptions['invoker'];
};

const registry = coreModule.createFunctionsCore();
jest.mock('@azure/functions-core', () => registry.core, { virtual: true });

export const registeredFunctions = registry.functions;

export interface TestHub {
  engine: DurableEngine;
  client: df.DurableClient;
  baseUrl: string;
  dataDir: string;
  /** Moves virtual time forward, firing due timers one by one, then waits until idle. */
  advance(ms: number): Promise<void>;
  idle(): Promise<void>;
  /** Waits until idle and returns the instance's status (through the real client). */
  status(instanceId: string, options?: df.GetStatusOptions): Promise<df.DurableOrchestrationStatus>;
  stop(): Promise<void>;
}

export interface TestHubOptions extends Partial<Omit<DurableEngineOptions, 'invoker' | 'baseUrl'>> {
  /** Reuse a data directory (restart scenarios); a fresh temp dir otherwise. */
  dataDir?: string;
  /** Stands between the engine and the registered functions (to slow one down, say). */
  wrapInvoker?: (invoker: DurableEngineOptions['invoker']) => DurableEngineOptions['invoker'];
}

export async function startTestHub(options: TestHubOptions = {}): Promise<TestHub> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'durable-test-'));
  let engine: DurableEngine | undefined;
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    (engine as DurableEngine)
      .handleHttp(req, res, pathname)
      .then((handled) => {
        if (!handled) {
          res.statusCode = 404;
          res.end();
        }
      })
      .catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { wrapInvoker, ...engineOptions } = options;
  const invoker = coreModule.createInvoker(registry.functions, InvocationContext);
  engine = new DurableEngine({
    hubName: 'TestHub',
    virtualClock: true,
    ...engineOptions,
    dataDir,
    baseUrl,
    invoker: wrapInvoker ? wrapInvoker(invoker) : invoker,
  });
  await engine.start();
  const client = durableClientFor(engine);
  const hub: TestHub = {
    engine,
    client,
    baseUrl,
    dataDir,
    advance: async (ms) => {
      await (engine as DurableEngine).clock.advance?.(ms);
    },
    idle: () => (engine as DurableEngine).whenIdle(),
    status: async (id, opts) => {
      await (engine as DurableEngine).whenIdle();
      return client.getStatus(id, opts);
    },
    stop: async () => {
      await (engine as DurableEngine).stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return hub;
}

/** The real DurableClient, built the way a client function gets it: from the durableClient binding data. */
export function durableClientFor(engine: DurableEngine): df.DurableClient {
  const clientInput = df.input.durableClient();
  const context = new InvocationContext({ functionName: 'testClient', options: { extraInputs: [clientInput] } });
  context.extraInputs.set(clientInput, engine.clientBindingData());
  return df.getClient(context);
}

/** The real DurableClient for binding data received from another process (crash tests). */
export function durableClientForBinding(binding: Record<string, unknown>): df.DurableClient {
  const clientInput = df.input.durableClient();
  const context = new InvocationContext({ functionName: 'testClient', options: { extraInputs: [clientInput] } });
  context.extraInputs.set(clientInput, binding);
  return df.getClient(context);
}
