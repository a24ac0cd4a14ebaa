/**
 * Connects durable-functions apps to the local durable engine (local/durable): the engine asks this
 * host to run orchestrator and activity functions (DurableInvoker), this host gives client
 * functions the engine's binding data and routes the engine's HTTP paths to it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAbsolute, join, resolve } from 'node:path';
// Types only: the engine module itself is loaded at run time (loadEngineClass).
import type { DurableEngineOptions, DurableInvoker } from '../durable';
import type { RegisteredFunction } from './core-module';
import type { RpcTypedData } from './core-types';
import type { HostLog } from './host-log';
import { FunctionInvoker, HostConfigurationError } from './invoker';

/** What the engine calls back into the host with; the engine owns this contract. */
export type { DurableInvoker };

export interface DurableEngineLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  clientBindingData(): Record<string, unknown>;
  handleHttp(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean>;
}

type DurableEngineClass = new (o: DurableEngineOptions) => DurableEngineLike;
/** The engine module's real types: a change to its contract fails this build, not a run. */
type DurableModule = typeof import('../durable');
const contractCheck: (m: DurableModule) => DurableEngineClass = (m) => m.DurableEngine;
void contractCheck;

const ORCHESTRATION_TRIGGER = 'orchestrationtrigger';
const ACTIVITY_TRIGGER = 'activitytrigger';
const ENTITY_TRIGGER = 'entitytrigger';
const CLIENT_BINDING = new Set(['durableclient', 'orchestrationclient']);

function triggerType(fn: RegisteredFunction): string {
  return fn.trigger.type?.toLowerCase() ?? '';
}

export function isDurableTrigger(fn: RegisteredFunction): boolean {
  const t = triggerType(fn);
  return t === ORCHESTRATION_TRIGGER || t === ACTIVITY_TRIGGER || t === ENTITY_TRIGGER;
}

/** Input bindings of a function that take the durable client. */
export function durableClientBindings(fn: RegisteredFunction): string[] {
  return Object.entries(fn.metadata.bindings)
    .filter(([, b]) => b.direction === 'in' && CLIENT_BINDING.has(b.type?.toLowerCase() ?? ''))
    .map(([name]) => name);
}

export function usesDurable(functions: Iterable<RegisteredFunction>): boolean {
  for (const fn of functions) if (isDurableTrigger(fn) || durableClientBindings(fn).length > 0) return true;
  return false;
}

function toTypedJson(value: unknown): RpcTypedData | undefined {
  return value === undefined ? undefined : { json: JSON.stringify(value) };
}

/** The library's typed data back to a JS value (what the extension would deserialize). */
export function fromTypedData(data: RpcTypedData | null | undefined): unknown {
  if (!data) return undefined;
  if (data.json !== undefined && data.json !== null) return JSON.parse(data.json);
  if (data.string !== undefined && data.string !== null) {
    try {
      return JSON.parse(data.string);
    } catch {
      return data.string;
    }
  }
  if (data.int !== undefined && data.int !== null) return Number(data.int);
  if (data.double !== undefined && data.double !== null) return data.double;
  if (data.bytes) return Buffer.from(data.bytes);
  return undefined;
}

export class DurableFunctionInvoker implements DurableInvoker {
  readonly #orchestrators = new Map<string, RegisteredFunction>();
  readonly #activities = new Map<string, RegisteredFunction>();

  constructor(
    functions: Iterable<RegisteredFunction>,
    private readonly invoker: FunctionInvoker,
  ) {
    for (const fn of functions) {
      const t = triggerType(fn);
      // The extension matches function names case-insensitively.
      if (t === ORCHESTRATION_TRIGGER) this.#orchestrators.set(fn.name.toLowerCase(), fn);
      else if (t === ACTIVITY_TRIGGER) this.#activities.set(fn.name.toLowerCase(), fn);
    }
  }

  hasOrchestrator(name: string): boolean {
    return this.#orchestrators.has(name.toLowerCase());
  }

  hasActivity(name: string): boolean {
    return this.#activities.has(name.toLowerCase());
  }

  /** Resolves with the OrchestratorState; an orchestrator failure rejects with the library's error as-is. */
  async invokeOrchestrator(name: string, payload: unknown): Promise<unknown> {
    const fn = this.#orchestrators.get(name.toLowerCase());
    if (!fn) throw new HostConfigurationError(`no orchestrator function named ${name}`);
    const response = await this.invoker.invoke(fn, {
      inputData: [{ name: fn.triggerName, data: toTypedJson(payload) }],
      reason: 'Orchestration episode',
    });
    return fromTypedData(response.returnValue);
  }

  async invokeActivity(name: string, input: unknown, instanceId: string): Promise<unknown> {
    const fn = this.#activities.get(name.toLowerCase());
    if (!fn) throw new HostConfigurationError(`no activity function named ${name}`);
    const response = await this.invoker.invoke(fn, {
      inputData: [{ name: fn.triggerName, data: toTypedJson(input) }],
      triggerMetadata: { instanceId: { string: instanceId } },
      reason: `Activity for ${instanceId}`,
    });
    return fromTypedData(response.returnValue);
  }
}

function loadEngineClass(): DurableEngineClass {
  // Resolved at run time so the host builds and runs apps without durable functions even where the
  // engine is absent; an app that needs it gets a clear error instead.
  const modulePath = join(__dirname, '..', 'durable');
  let mod: { DurableEngine?: DurableEngineClass };
  try {
    mod = require(modulePath) as { DurableEngine?: DurableEngineClass };
  } catch (err) {
    throw new HostConfigurationError(
      `the app uses durable functions but the durable engine could not be loaded from ${modulePath}: ${(err as Error).message}`,
    );
  }
  if (typeof mod.DurableEngine !== 'function') {
    throw new HostConfigurationError(`${modulePath} does not export DurableEngine`);
  }
  return mod.DurableEngine;
}

export interface DurableSetup {
  appDir: string;
  hubName: string | undefined;
  baseUrl: string;
  invoker: DurableInvoker;
  log: HostLog;
  maxConcurrentOrchestrations?: number;
  maxConcurrentActivities?: number;
}

export function createDurableEngine(setup: DurableSetup): DurableEngineLike {
  const Engine = loadEngineClass();
  const dataSetting = process.env['DURABLE_DATA_DIR'] || '.data/durable';
  const dataDir = isAbsolute(dataSetting) ? dataSetting : resolve(setup.appDir, dataSetting);
  const levels = { debug: 'debug', info: 'information', warn: 'warning', error: 'error' } as const;
  return new Engine({
    dataDir,
    hubName: setup.hubName || 'TestHubName',
    invoker: setup.invoker,
    baseUrl: setup.baseUrl,
    virtualClock: process.env['DURABLE_VIRTUAL_CLOCK'] === 'true',
    maxConcurrentOrchestrations: setup.maxConcurrentOrchestrations,
    maxConcurrentActivities: setup.maxConcurrentActivities,
    log: (level, msg, props) =>
      setup.log.host(levels[level], props ? `[durable] ${msg} ${JSON.stringify(props)}` : `[durable] ${msg}`),
  });
}
