/**
 * Connects durable-functions apps to the local durable engine (local/durable), which runs in a
 * thread of its own (durable-thread.ts): the engine asks this host to run orchestrator and activity
 * functions (DurableFunctionInvoker), this host gives client functions the engine's binding data
 * and passes the engine's paths on its port through to it.
 */
import { isAbsolute, resolve } from 'node:path';
import type { RegisteredFunction } from './core-module';
import type { RpcTypedData } from './core-types';
import { DurableThread, type DurableFunctionRunner, type InvocationResult } from './durable-thread';
import type { HostLog } from './host-log';
import { FunctionInvoker, HostConfigurationError } from './invoker';

export interface DurableEngineLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  clientBindingData(): Record<string, unknown>;
  /** The engine's paths on the host's port and the port that serves them (known once started). */
  passThrough(): { port: number; prefixes: string[] };
}

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

/** The library's typed data back to a JS value (what the extension would deserialize). */
function fromTypedData(data: RpcTypedData | null | undefined): unknown {
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

/** Runs the app's orchestrator and activity functions for the engine, through the invoker. */
export class DurableFunctionInvoker implements DurableFunctionRunner {
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

  get orchestratorNames(): string[] {
    return [...this.#orchestrators.keys()];
  }

  get activityNames(): string[] {
    return [...this.#activities.keys()];
  }

  /**
   * The orchestrator's OrchestratorState or the activity's result; a function's failure comes back
   * as the library's error (name, message, stack as thrown). Never rejects.
   */
  async run(kind: 'orchestrator' | 'activity', name: string, inputJson: string | undefined, instanceId?: string): Promise<InvocationResult> {
    try {
      const fn = (kind === 'orchestrator' ? this.#orchestrators : this.#activities).get(name.toLowerCase());
      if (!fn) throw new HostConfigurationError(`no ${kind} function named ${name}`);
      const response = await this.invoker.invoke(fn, {
        inputData: [{ name: fn.triggerName, data: inputJson === undefined ? undefined : { json: inputJson } }],
        ...(kind === 'activity'
          ? { triggerMetadata: { instanceId: { string: instanceId ?? '' } }, reason: `Activity for ${instanceId}` }
          : { reason: 'Orchestration episode' }),
      });
      const data = response.returnValue;
      // JSON stays text to the engine's thread, which parses it there.
      if (data?.json !== undefined && data.json !== null) return { ok: true, json: data.json };
      return { ok: true, value: fromTypedData(data) };
    } catch (thrown) {
      const err = thrown instanceof Error ? thrown : new Error(String(thrown));
      return { ok: false, error: { name: err.name, message: err.message, ...(err.stack !== undefined ? { stack: err.stack } : {}) } };
    }
  }
}

export interface DurableSetup {
  appDir: string;
  hubName: string | undefined;
  baseUrl: string;
  functions: DurableFunctionInvoker;
  log: HostLog;
  maxConcurrentOrchestrations?: number;
  maxConcurrentActivities?: number;
}

export function createDurableEngine(setup: DurableSetup): DurableEngineLike {
  const dataSetting = process.env['DURABLE_DATA_DIR'] || '.data/durable';
  const dataDir = isAbsolute(dataSetting) ? dataSetting : resolve(setup.appDir, dataSetting);
  return new DurableThread(
    {
      dataDir,
      hubName: setup.hubName || 'TestHubName',
      baseUrl: setup.baseUrl,
      virtualClock: process.env['DURABLE_VIRTUAL_CLOCK'] === 'true',
      ...(setup.maxConcurrentOrchestrations !== undefined ? { maxConcurrentOrchestrations: setup.maxConcurrentOrchestrations } : {}),
      ...(setup.maxConcurrentActivities !== undefined ? { maxConcurrentActivities: setup.maxConcurrentActivities } : {}),
      orchestrators: setup.functions.orchestratorNames,
      activities: setup.functions.activityNames,
    },
    setup.functions,
    (level, text) => setup.log.host(level, text),
  );
}
