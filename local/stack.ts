/**
 * The local system's wiring in one place: how the Service Bus emulator, the Cosmos DB stand-in and
 * the Functions host are started as processes, and the app settings that point the host at the
 * emulators. `npm start`, the benchmarks and the end-to-end tests all start the system through it.
 * Stopping ends only the PIDs started here.
 *
 * Loads neither emulator: `npm start` imports this only to start them as processes.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { COSMOS_CA_LINE_PREFIX, COSMOS_EMULATOR_KEY, COSMOS_READY_LINE_PREFIX } from './cosmos-emulator/account';
import { readLocalSettings } from './functions-host/function-app';
import { spawnService, type RunningService, type ServiceSpec } from './service-process';

/** The repository root, whether this runs from local/ (ts-jest) or dist/local/ (node). */
export const REPO_ROOT = resolve(__dirname, '..').replace(/[\\/]dist$/, '');
const DIST_LOCAL = join(REPO_ROOT, 'dist', 'local');
const FUNCTIONS_HOST_CLI = join(DIST_LOCAL, 'functions-host', 'cli.js');
const HOST_READY = /Functions host listening on (http:\/\/127\.0\.0\.1:(\d+))/;
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Loading the app (and, the first time, the durable store) takes longer than an emulator start. */
const HOST_START_TIMEOUT_MS = 90_000;
/** Stopping the host lets in-flight invocations finish; emulators stop at once. */
export const HOST_STOP_GRACE_MS = 10_000;
export const EMULATOR_STOP_GRACE_MS = 5_000;

/** Something the user must fix before the system can start; printed without a stack trace. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** Where the emulators listen, as much as the Functions host (or a test's client) needs to reach them. */
export interface EmulatorEndpoints {
  serviceBusConnectionString: string;
  cosmos: { endpoint: string; key: string; caCertificateFile: string };
}

/** The emulator's development key pair, the same as in local.settings.json. */
export function serviceBusConnectionString(port: number | string): string {
  return (
    `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;` +
    'SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true'
  );
}

/** The app settings that point the Functions host at the emulators. */
export function emulatorSettings(endpoints: EmulatorEndpoints): Record<string, string> {
  return {
    ServiceBusConnection: endpoints.serviceBusConnectionString,
    CosmosDbConnection__accountEndpoint: endpoints.cosmos.endpoint,
    CosmosDbConnection__accountKey: endpoints.cosmos.key,
    CosmosDbConnection__caCertificateFile: endpoints.cosmos.caCertificateFile,
  };
}

/** A system that lives for one run (benchmarks, tests): its own durable store, fault injection on, the catalog seeded. */
export function disposableSettings(durableDataDir: string): Record<string, string> {
  return { DURABLE_DATA_DIR: durableDataDir, FAULT_INJECTION_ENABLED: 'true', SEED_CATALOG: 'true' };
}

export interface ProcessOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Node flags before the script, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  /** Environment on top of the port, e.g. the Service Bus emulator's `SERVICEBUS_EMULATOR_LOCK_DURATION`. */
  env?: Record<string, string>;
}

function emulatorProcess(name: string, portVariable: string, readyLine: RegExp, { port = 0, nodeArgs = [], env = {} }: ProcessOptions): ServiceSpec {
  return {
    name,
    command: [process.execPath, ...nodeArgs, join(DIST_LOCAL, name, 'cli.js')],
    cwd: REPO_ROOT,
    env: { ...env, [portVariable]: String(port) },
    readyLine,
  };
}

export const serviceBusEmulatorProcess = (options: ProcessOptions = {}): ServiceSpec =>
  emulatorProcess('servicebus-emulator', 'SERVICEBUS_EMULATOR_PORT', /Service Bus emulator listening on sb:\/\/127\.0\.0\.1:(\d+)/, options);

export const cosmosEmulatorProcess = (options: ProcessOptions = {}): ServiceSpec =>
  emulatorProcess('cosmos-emulator', 'COSMOS_EMULATOR_PORT', new RegExp(`${escapeRegExp(COSMOS_READY_LINE_PREFIX)}(\\S+)`), options);

/** Where the two emulator processes listen, read from what they printed when ready. */
export function emulatorEndpoints(serviceBus: RunningService, cosmos: RunningService): EmulatorEndpoints {
  const caLine = cosmos.output().split('\n').find((l) => l.startsWith(COSMOS_CA_LINE_PREFIX));
  if (!caLine) throw new StartupError('the Cosmos DB stand-in did not say which certificate it serves');
  return {
    serviceBusConnectionString: serviceBusConnectionString(serviceBus.match[1]!),
    cosmos: {
      endpoint: cosmos.match[1]!,
      key: COSMOS_EMULATOR_KEY,
      caCertificateFile: caLine.slice(COSMOS_CA_LINE_PREFIX.length).trim(),
    },
  };
}

export interface HostProcessOptions {
  nodeArgs?: string[];
  /** How long to wait for the ready line (default 90 s). */
  timeoutMs?: number;
  /** Echo the host's output to stderr. */
  echo?: boolean;
}

/** The app setting whose Node flags the Functions host starts its Node worker with (e.g. a heap limit). */
export const WORKER_ARGUMENTS_SETTING = 'languageWorkers__node__arguments';

/**
 * The Node flags the app asks its worker to run with: `languageWorkers__node__arguments` from
 * these settings, else the environment, else local.settings.json. The local host is the worker
 * too, so it is started with them, as the Functions host starts the Node worker on Azure.
 */
export function workerArguments(settings: Record<string, string>): string[] {
  const value =
    settings[WORKER_ARGUMENTS_SETTING] ?? process.env[WORKER_ARGUMENTS_SETTING] ?? readLocalSettings(REPO_ROOT).Values?.[WORKER_ARGUMENTS_SETTING];
  const args = (value ?? '').split(/\s+/).filter((a) => a !== '');
  const notFlag = args.find((a) => !a.startsWith('--'));
  if (notFlag !== undefined) throw new StartupError(`${WORKER_ARGUMENTS_SETTING} takes Node flags only (each starting with --), got "${notFlag}"`);
  return args;
}

/** The Functions host serving this repository's app with these app settings (FUNCTIONS_HTTP_PORT among them). */
export function functionsHostProcess(settings: Record<string, string>, options: HostProcessOptions = {}): ServiceSpec {
  return {
    name: 'functions-host',
    command: [process.execPath, ...workerArguments(settings), ...(options.nodeArgs ?? []), FUNCTIONS_HOST_CLI, '--app-dir', REPO_ROOT],
    cwd: REPO_ROOT,
    env: settings,
    readyLine: HOST_READY,
    timeoutMs: options.timeoutMs ?? HOST_START_TIMEOUT_MS,
    echo: options.echo ?? false,
  };
}

/** The port in a running host's ready line, e.g. to print or to come back on. */
export function hostPort(host: RunningService): string {
  return host.match[2]!;
}

export interface FunctionsHostOptions extends HostProcessOptions {
  /** Its app settings; FUNCTIONS_HTTP_PORT defaults to 0, a free port. */
  settings: Record<string, string>;
  /**
   * A restart comes back on the port the first start took, so clients keep their base URL
   * (default). Otherwise it takes a free port again and `baseUrl` moves.
   */
  keepPort?: boolean;
}

/** A Functions host child process that can be killed and started again with the same settings and task hub. */
export interface FunctionsHost {
  /** `http://127.0.0.1:<port>` of the running host. */
  readonly baseUrl: string;
  /** The settings it runs with; FUNCTIONS_HTTP_PORT is the port it took when that port is kept. */
  readonly settings: Record<string, string>;
  current(): RunningService;
  /** Output of every host process started so far, oldest first (killed ones included). */
  outputs(): string[];
  /** SIGKILL: no graceful shutdown, in-flight invocations and locks are simply lost. */
  kill(): Promise<void>;
  /** Starts it again (after `kill`); the previous process's output stays in `outputs()`. */
  restart(): Promise<void>;
  /** SIGTERM, then SIGKILL if it has not drained within the grace period. */
  stop(): Promise<void>;
}

export async function startFunctionsHost(options: FunctionsHostOptions): Promise<FunctionsHost> {
  if (!existsSync(FUNCTIONS_HOST_CLI)) throw new Error(`${FUNCTIONS_HOST_CLI} is missing: build first (npx tsc -p tsconfig.json)`);
  const keepPort = options.keepPort ?? true;
  const settings: Record<string, string> = { FUNCTIONS_HTTP_PORT: '0', ...options.settings };
  const spawnHost = () => spawnService(functionsHostProcess(settings, options));
  let host = await spawnHost();
  if (keepPort) settings.FUNCTIONS_HTTP_PORT = hostPort(host);
  const earlierOutputs: string[] = [];
  return {
    get baseUrl() {
      return host.match[1]!;
    },
    settings,
    current: () => host,
    outputs: () => [...earlierOutputs, host.output()],
    kill: () => host.stop('SIGKILL', 0),
    async restart() {
      // A kept port was just released by a killed process; a moment of retrying covers the gap.
      const attempts = keepPort ? 5 : 1;
      for (let attempt = 1; ; attempt++) {
        try {
          const next = await spawnHost();
          earlierOutputs.push(host.output());
          host = next;
          return;
        } catch (err) {
          if (attempt >= attempts) throw err;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
    },
    stop: () => host.stop('SIGTERM', HOST_STOP_GRACE_MS),
  };
}

export interface LocalStackOptions {
  /** App settings for the host on top of the wiring (latency profile, monitor policy, ...). */
  hostEnv?: Record<string, string>;
  /** Echo the host's output to stderr. */
  echoHost?: boolean;
  hostTimeoutMs?: number;
  /** Node flags for each process, e.g. to write CPU profiles. */
  nodeArgs?: (process: 'servicebus' | 'cosmos' | 'host') => string[];
  /** Runs once the emulators are up, before the host starts: data the host must find already there. */
  beforeHost?: (endpoints: EmulatorEndpoints) => Promise<void>;
  /** ISO 8601 lock duration for every subscription instead of the topology's minute (the emulator's `SERVICEBUS_EMULATOR_LOCK_DURATION`). */
  serviceBusLockDuration?: string;
}

/** The whole system, each part in its own process, on free ports and with its own durable store. */
export interface LocalStack extends EmulatorEndpoints {
  /** Stable across host restarts: the host comes back on the same port. */
  baseUrl: string;
  /** The host's settings as it was started with them (for a stand-in that talks to the same stores). */
  hostEnv: Record<string, string>;
  host(): RunningService;
  /** Output of every host process started so far, oldest first (killed ones included). */
  hostOutputs(): string[];
  serviceBusEmulator: RunningService;
  cosmosEmulator: RunningService;
  /** SIGKILL: no graceful shutdown, in-flight invocations and locks are simply lost. */
  killHost(): Promise<void>;
  /** Starts the host again on the same port and the same durable task hub directory. */
  startHost(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Separate processes (as `npm start` runs them) so each one's memory and CPU can be read, and so
 * the host can be killed and started again while the emulators keep their state.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const scratch = mkdtempSync(join(tmpdir(), 'order-saga-stack-'));
  const nodeArgs = options.nodeArgs ?? (() => []);
  const emulators: RunningService[] = [];
  let host: FunctionsHost | undefined;
  const stop = async (): Promise<void> => {
    if (host) await host.stop();
    for (const service of emulators.reverse()) await service.stop('SIGTERM', EMULATOR_STOP_GRACE_MS);
    emulators.length = 0;
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    const serviceBusEmulator = await spawnService(
      serviceBusEmulatorProcess({
        nodeArgs: nodeArgs('servicebus'),
        ...(options.serviceBusLockDuration ? { env: { SERVICEBUS_EMULATOR_LOCK_DURATION: options.serviceBusLockDuration } } : {}),
      }),
    );
    emulators.push(serviceBusEmulator);
    const cosmosEmulator = await spawnService(cosmosEmulatorProcess({ nodeArgs: nodeArgs('cosmos') }));
    emulators.push(cosmosEmulator);
    const endpoints = emulatorEndpoints(serviceBusEmulator, cosmosEmulator);
    await options.beforeHost?.(endpoints);
    const started = await startFunctionsHost({
      settings: { ...emulatorSettings(endpoints), ...disposableSettings(join(scratch, 'durable')), ...options.hostEnv },
      nodeArgs: nodeArgs('host'),
      timeoutMs: options.hostTimeoutMs,
      echo: options.echoHost,
    });
    host = started;
    return {
      ...endpoints,
      baseUrl: started.baseUrl,
      hostEnv: started.settings,
      host: () => started.current(),
      hostOutputs: () => started.outputs(),
      serviceBusEmulator,
      cosmosEmulator,
      killHost: () => started.kill(),
      startHost: () => started.restart(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
