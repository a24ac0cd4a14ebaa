/**
 * The local Functions host: loads a v4 Node.js app directory and serves its triggers (HTTP,
 * Service Bus, timer, durable). Used by cli.ts and, in-process, by anything that wants a host.
 */
import { resolve } from 'node:path';
import { ConcurrencyManager } from './concurrency';
import { FunctionsCore, type RegisteredFunction } from './core-module';
import type { RpcParameterBinding } from './core-types';
import {
  createDurableEngine,
  DurableFunctionInvoker,
  type DurableEngineLike,
  durableClientBindings,
  isDurableTrigger,
  usesDurable,
} from './durable-bridge';
import {
  applyLocalSettings,
  loadFunctionApp,
  readHostJson,
  readLocalSettings,
  resolveEntryFiles,
  type HostJson,
} from './function-app';
import { HostLog } from './host-log';
import { HttpHost } from './http-host';
import { FunctionInvoker, HostConfigurationError } from './invoker';
import { ServiceBusConnections, ServiceBusOutputs, ServiceBusTriggers, serviceBusSettings } from './service-bus-triggers';
import { parseTimeSpan, TimerTriggers } from './timer-triggers';

export interface FunctionsHostOptions {
  appDir: string;
  /** Overrides FUNCTIONS_HTTP_PORT / local.settings.json Host.LocalHttpPort / 7071. 0 = a free port. */
  port?: number;
  /** Where log lines go (default stdout). */
  write?: (line: string) => void;
}

const DEFAULT_PORT = 7071;
const SUPPORTED_TRIGGERS = new Set(['httptrigger', 'timertrigger', 'servicebustrigger', 'orchestrationtrigger', 'activitytrigger']);

const LOG_LEVEL_OVERRIDE = /^AzureFunctionsJobHost__logging__logLevel__(.+)$/i;

/**
 * host.json log levels an app setting overrides, as on Azure:
 * `AzureFunctionsJobHost__logging__logLevel__<category>` (e.g. `..._Function.deadLetterSweeper`),
 * so an operator can hear more from one function without a new package.
 */
export function logLevelOverrides(env: NodeJS.ProcessEnv): Record<string, string> {
  const levels: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    const m = LOG_LEVEL_OVERRIDE.exec(key);
    if (m && value) levels[m[1]!] = value;
  }
  return levels;
}

/** `AzureWebJobs.<name>.Disabled` = true or 1, as in Azure: the function is not triggered at all. */
function isDisabled(name: string): boolean {
  const value = process.env[`AzureWebJobs.${name}.Disabled`]?.trim().toLowerCase();
  return value === 'true' || value === '1';
}

/** Only one app per process: `@azure/functions-core` is process-wide, like in the worker. */
let coreInUse = false;

function resolvePort(option: number | undefined, hostPort: number | string | undefined): number {
  if (option !== undefined) return option;
  const raw = process.env['FUNCTIONS_HTTP_PORT'] ?? (hostPort === undefined ? undefined : String(hostPort));
  if (raw === undefined || raw === '') return DEFAULT_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new HostConfigurationError(`FUNCTIONS_HTTP_PORT must be a port number (0 = any free port), got "${raw}"`);
  }
  return port;
}

/** Bindings this host does not serve still load; say so once, at start, rather than fail later. */
function warnUnsupported(fn: RegisteredFunction, log: HostLog): void {
  const type = fn.trigger.type?.toLowerCase() ?? '';
  if (!SUPPORTED_TRIGGERS.has(type) && type !== 'entitytrigger') {
    log.host('warning', `${fn.name}: trigger type ${fn.trigger.type} is not supported by this host; it only runs via /admin/functions/${fn.name}`);
  }
  for (const [name, b] of Object.entries(fn.metadata.bindings)) {
    const t = b.type?.toLowerCase() ?? '';
    if (b.direction === 'in' && !/trigger$/.test(t) && t !== 'durableclient' && t !== 'orchestrationclient') {
      log.host('warning', `${fn.name}: input binding ${name} of type ${b.type} is not supported by this host and will be empty`);
    }
    if (b.direction === 'out' && t !== 'http' && t !== 'servicebus' && name !== '$return') {
      log.host('warning', `${fn.name}: output binding ${name} of type ${b.type} is not supported by this host and is ignored`);
    }
  }
}

function describeFunction(fn: RegisteredFunction): string {
  return fn.trigger.type ?? 'unknown';
}

export class FunctionsHost {
  readonly log: HostLog;
  #stopping = false;
  #concurrency: ConcurrencyManager | undefined;
  #stopped: Promise<void> | undefined;
  #http!: HttpHost;
  #timers!: TimerTriggers;
  #serviceBus!: ServiceBusTriggers;
  #outputs!: ServiceBusOutputs;
  #connections = new ServiceBusConnections();
  #engine: DurableEngineLike | undefined;
  #invoker!: FunctionInvoker;
  #core!: FunctionsCore;
  port = 0;
  functions: RegisteredFunction[] = [];
  hostJson!: HostJson;

  private constructor(
    readonly appDir: string,
    write?: (line: string) => void,
    logLevel?: Record<string, string>,
  ) {
    this.log = new HostLog(logLevel, write);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(options: FunctionsHostOptions): Promise<FunctionsHost> {
    if (coreInUse) throw new HostConfigurationError('a Functions host is already running in this process');
    coreInUse = true;
    const appDir = resolve(options.appDir);
    const hostJson = readHostJson(appDir);
    const host = new FunctionsHost(appDir, options.write, { ...hostJson.logging?.logLevel, ...logLevelOverrides(process.env) });
    host.hostJson = hostJson;
    try {
      await host.#start(options);
    } catch (err) {
      // Whatever did start (the HTTP listener, receivers, the engine) must not outlive a failed start.
      await host.stop(1000).catch(() => undefined);
      throw err;
    }
    return host;
  }

  async #start(options: FunctionsHostOptions): Promise<void> {
    const settings = readLocalSettings(this.appDir);
    applyLocalSettings(settings);
    const port = resolvePort(options.port, settings.Host?.LocalHttpPort);

    const core = new FunctionsCore();
    this.#core = core;
    core.onLog = (level, category, message) => this.log.host(level, `[${category}] ${message}`);
    core.install();
    await loadFunctionApp(core, resolveEntryFiles(this.appDir));

    const model = core.programmingModel!;
    const capabilities = (await model.getCapabilities?.({})) ?? {};
    if (capabilities['HttpUri']) {
      throw new HostConfigurationError(
        'the app enabled HTTP streaming (app.setup({ enableHttpStream: true })), which this host does not support',
      );
    }
    for (const hook of core.hooksFor('appStart')) {
      await hook({ hookData: core.appLevelHookData, appHookData: core.appHookData, functionAppDirectory: this.appDir });
    }
    core.startupFinished = true;
    const all = [...core.functions.values()];
    const disabled = all.filter((fn) => isDisabled(fn.name));
    this.functions = all.filter((fn) => !disabled.includes(fn));
    this.log.host('information', `Loaded ${all.length} function(s) with ${model.name} ${model.version}`);
    for (const fn of disabled) this.log.always(`  ${fn.name}: disabled (AzureWebJobs.${fn.name}.Disabled)`);

    this.functions.forEach((fn) => warnUnsupported(fn, this.log));

    this.#invoker = new FunctionInvoker(core, this.log);
    if (this.hostJson.functionTimeout && this.hostJson.functionTimeout !== '-1') {
      const ms = parseTimeSpan(this.hostJson.functionTimeout);
      if (ms === undefined) {
        throw new HostConfigurationError(`host.json functionTimeout must be a TimeSpan such as 00:10:00, got "${this.hostJson.functionTimeout}"`);
      }
      this.#invoker.timeoutMs = ms;
    }
    this.#outputs = new ServiceBusOutputs(this.#connections);
    if (this.functions.some((fn) => ServiceBusOutputs.hasOutputs(fn))) {
      this.#invoker.outputSink = (fn, response) => this.#outputs.send(fn, response);
    }

    this.#http = new HttpHost({
      routePrefix: this.hostJson.extensions?.http?.routePrefix ?? 'api',
      functions: this.functions,
      invoker: this.#invoker,
      log: this.log,
      fireFunction: (name, input) => this.fire(name, input),
      isStopping: () => this.#stopping,
    });
    const timerStatus = process.env['TIMER_STATUS_DIR'] || '.data/timers';
    this.#timers = new TimerTriggers(this.functions, this.#invoker, this.log, resolve(this.appDir, timerStatus));
    const concurrency = this.hostJson.concurrency;
    if (concurrency?.dynamicConcurrencyEnabled === true) {
      const maximum = concurrency.maximumFunctionConcurrency;
      if (maximum !== undefined && !(Number.isInteger(maximum) && maximum >= 1)) {
        throw new HostConfigurationError(`host.json concurrency.maximumFunctionConcurrency must be a whole number >= 1, got ${JSON.stringify(maximum)}`);
      }
      const http = this.#http;
      this.#concurrency = new ConcurrencyManager({ maximumFunctionConcurrency: maximum, httpInFlight: () => http.functionRequestsInFlight });
    }
    this.#serviceBus = new ServiceBusTriggers(
      this.functions,
      this.#invoker,
      this.#connections,
      serviceBusSettings(this.hostJson),
      this.log,
      this.#concurrency,
    );

    try {
      this.port = await this.#http.listen(port);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') {
        throw new HostConfigurationError(`port ${port} is already in use (set FUNCTIONS_HTTP_PORT to another port, or 0)`);
      }
      throw err;
    }

    if (usesDurable(this.functions)) await this.#startDurable();

    this.#concurrency?.start();
    this.#serviceBus.start();
    this.#timers.start();
    if (this.#concurrency) this.log.always('Dynamic concurrency is on for Service Bus triggers (host.json concurrency.dynamicConcurrencyEnabled)');

    this.log.always(`Functions host listening on ${this.baseUrl}`);
    const routes = this.#http.describeRoutes(this.baseUrl);
    for (const fn of this.functions) {
      const detail = routes.get(fn.name) ?? this.#serviceBus.describe(fn.name) ?? this.#timers.describe(fn.name) ?? describeFunction(fn);
      this.log.always(`  ${fn.name}: ${detail}`);
    }
  }

  async #startDurable(): Promise<void> {
    const durableInvoker = new DurableFunctionInvoker(this.functions, this.#invoker);
    const durableTask = this.hostJson.extensions?.durableTask;
    const engine = createDurableEngine({
      appDir: this.appDir,
      hubName: durableTask?.hubName,
      baseUrl: this.baseUrl,
      functions: durableInvoker,
      log: this.log,
      maxConcurrentOrchestrations: durableTask?.maxConcurrentOrchestratorFunctions,
      maxConcurrentActivities: durableTask?.maxConcurrentActivityFunctions,
    });
    this.#engine = engine;
    const clientInputs = new Map<string, string[]>();
    for (const fn of this.functions) {
      const names = durableClientBindings(fn);
      if (names.length > 0) clientInputs.set(fn.name, names);
    }
    if (clientInputs.size > 0) {
      // The binding data never changes while the host runs: serialized once, not per invocation.
      let bindingData: string | undefined;
      this.#invoker.extraInputs = (fn): RpcParameterBinding[] => {
        const names = clientInputs.get(fn.name);
        if (!names) return [];
        bindingData ??= JSON.stringify(engine.clientBindingData());
        return names.map((name) => ({ name, data: { string: bindingData } }));
      };
    }
    await engine.start();
    const { port, prefixes } = engine.passThrough();
    this.#http.passThrough(port, prefixes);
  }

  /** Fires a non-HTTP function by hand, like the real host's admin API. False if there is none. */
  fire(name: string, input: string | undefined): boolean {
    const fn = this.functions.find((f) => f.name.toLowerCase() === name.toLowerCase());
    if (!fn || fn.trigger.type?.toLowerCase() === 'httptrigger' || isDurableTrigger(fn)) return false;
    if (this.#timers.has(fn.name)) return this.#timers.fire(fn.name);
    void this.#invoker
      .invoke(fn, {
        inputData: [{ name: fn.triggerName, data: input === undefined ? undefined : { string: input } }],
        reason: 'Manual invoke',
      })
      .catch(() => {
        // Logged by the invoker.
      });
    return true;
  }

  /** Stop accepting work, let running invocations finish (bounded), close receivers and the engine. */
  stop(graceMs = 10_000): Promise<void> {
    this.#stopped ??= this.#stop(graceMs);
    return this.#stopped;
  }

  async #stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.log.host('information', 'Stopping the Functions host');
    const httpClosed = this.#http?.close();
    await this.#timers?.stop();
    await this.#serviceBus?.stop(graceMs);
    this.#concurrency?.stop();
    if (this.#engine) {
      try {
        await this.#engine.stop();
      } catch (err) {
        this.log.host('error', `durable engine did not stop cleanly: ${String(err)}`);
      }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#invoker?.idle(),
      new Promise((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const hook of this.#core?.hooksFor('appTerminate') ?? []) {
      try {
        await hook({ hookData: this.#core.appLevelHookData, appHookData: this.#core.appHookData });
      } catch (err) {
        this.log.host('error', `appTerminate hook failed: ${String(err)}`);
      }
    }
    await this.#outputs?.close();
    await this.#connections.close();
    this.#http?.closeAllConnections();
    await httpClosed;
    this.log.host('information', 'Functions host stopped');
  }
}
