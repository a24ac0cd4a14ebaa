/**
 * The durable engine's thread. On Azure the Durable extension runs in the Functions host process,
 * not in the Node worker: its store, dispatch and client API cost the app's event loop nothing.
 * Here it runs in a worker thread of the host for the same reason. It serves the client API
 * (the binding's rpcBaseUrl) on a port of its own, as the extension does, and asks the host's main
 * thread to run orchestrator and activity functions (the app's code lives there).
 *
 * Started by DurableThread (durable-thread.ts), which owns the messages exchanged with it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { DurableEngine, DurableInvoker } from '../durable';
import type { EngineThreadSettings, FromEngineThread, InvocationResult, ToEngineThread } from './durable-thread';

if (!parentPort) throw new Error('durable-worker.js runs only as a worker thread of the Functions host');
const port: MessagePort = parentPort;
const settings = workerData as EngineThreadSettings;

const LEVELS = { debug: 'debug', info: 'information', warn: 'warning', error: 'error' } as const;

const post = (message: FromEngineThread): void => port.postMessage(message);

/** Invocations the main thread has not answered yet. */
const pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
let nextId = 1;

function invoke(kind: 'orchestrator' | 'activity', name: string, input: unknown, instanceId?: string): Promise<unknown> {
  const id = nextId++;
  // Serialized here, not on the main thread: the app's thread only hands the text to the library.
  const inputJson = input === undefined ? undefined : JSON.stringify(input);
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    post({ type: 'invoke', id, kind, name, inputJson, instanceId });
  });
}

function settle(id: number, result: InvocationResult): void {
  const waiter = pending.get(id);
  if (!waiter) return;
  pending.delete(id);
  if (result.ok) {
    waiter.resolve(result.json !== undefined ? JSON.parse(result.json) : result.value);
  } else {
    // The engine reads only these three (failure details, the SDK's out-of-proc marker).
    const err = new Error(result.error.message);
    err.name = result.error.name;
    err.stack = result.error.stack;
    waiter.reject(err);
  }
}

const orchestrators = new Set(settings.orchestrators);
const activities = new Set(settings.activities);
const invoker: DurableInvoker = {
  hasOrchestrator: (name) => orchestrators.has(name.toLowerCase()),
  hasActivity: (name) => activities.has(name.toLowerCase()),
  invokeOrchestrator: (name, payload) => invoke('orchestrator', name, payload),
  invokeActivity: (name, input, instanceId) => invoke('activity', name, input, instanceId),
};

function loadEngine(): typeof DurableEngine {
  try {
    return (require('../durable') as typeof import('../durable')).DurableEngine;
  } catch (err) {
    throw new Error(`the app uses durable functions but the durable engine could not be loaded: ${(err as Error).message}`);
  }
}

let engine: DurableEngine | undefined;
let server: Server | undefined;

async function start(): Promise<void> {
  const Engine = loadEngine();
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    if (!engine) {
      // Nobody has the port before the engine is ready; answer anything early all the same.
      req.resume();
      res.writeHead(503).end();
      return;
    }
    void engine.handleHttp(req, res, q >= 0 ? url.slice(0, q) : url).then((handled) => {
      if (!handled) {
        req.resume();
        res.writeHead(404).end();
      }
    });
  });
  // The app's client keeps its connections: as long as the host's own server does.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject);
    server!.listen(0, '127.0.0.1', () => resolve());
  });
  const rpcPort = (server.address() as AddressInfo).port;
  engine = new Engine({
    dataDir: settings.dataDir,
    hubName: settings.hubName,
    invoker,
    baseUrl: settings.baseUrl,
    rpcBaseUrl: `http://127.0.0.1:${rpcPort}/durabletask/`,
    virtualClock: settings.virtualClock,
    maxConcurrentOrchestrations: settings.maxConcurrentOrchestrations,
    maxConcurrentActivities: settings.maxConcurrentActivities,
    log: (level, msg, props) =>
      post({ type: 'log', level: LEVELS[level], text: props ? `[durable] ${msg} ${JSON.stringify(props)}` : `[durable] ${msg}` }),
  });
  await engine.start();
  post({ type: 'ready', rpcPort, bindingData: engine.clientBindingData(), httpPrefixes: engine.httpPrefixes() });
}

async function stop(graceMs: number | undefined): Promise<void> {
  let error: string | undefined;
  try {
    await engine?.stop(graceMs);
  } catch (err) {
    error = String(err);
  }
  await new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  post({ type: 'stopped', ...(error !== undefined ? { error } : {}) });
  port.close();
}

port.on('message', (message: ToEngineThread) => {
  if (message.type === 'result') settle(message.id, message.result);
  else if (message.type === 'stop') void stop(message.graceMs);
});

start().catch((err: unknown) => {
  post({ type: 'startFailed', message: err instanceof Error ? err.message : String(err) });
  server?.close();
  port.close();
});
