/**
 * The whole order system for benchmarks and the fault-injection run, each part in its own process
 * (as `npm start` runs it): the Service Bus emulator, the Cosmos DB stand-in and the Functions
 * host on free ports. Separate processes so each one's memory can be read, and so the host can be
 * killed and started again while the emulators keep their state. Stopping ends only these PIDs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { COSMOS_CA_LINE_PREFIX, COSMOS_EMULATOR_KEY, COSMOS_READY_LINE_PREFIX } from '../local/cosmos-emulator';
import { spawnService, type RunningService } from '../local/service-process';

/** The repository root, whether this runs from bench/ (ts-jest) or dist/bench/ (node). */
export const REPO_ROOT = resolve(__dirname, '..').replace(/[\\/]dist$/, '');
const DIST_LOCAL = join(REPO_ROOT, 'dist', 'local');
const HOST_READY = /Functions host listening on (http:\/\/127\.0\.0\.1:(\d+))/;
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface StackOptions {
  /** App settings for the host on top of the wiring (latency profile, monitor policy, ...). */
  hostEnv?: Record<string, string>;
  /** Echo the host's output to stderr. */
  echoHost?: boolean;
}

export interface LocalStack {
  /** Stable across host restarts: the host comes back on the same port. */
  baseUrl: string;
  serviceBusConnectionString: string;
  cosmos: { endpoint: string; key: string; caCertificateFile: string };
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

export async function startLocalStack(options: StackOptions = {}): Promise<LocalStack> {
  const scratch = mkdtempSync(join(tmpdir(), 'order-saga-stack-'));
  const started: RunningService[] = [];
  let host: RunningService | undefined;
  const earlierHostOutputs: string[] = [];
  const stop = async (): Promise<void> => {
    if (host) await host.stop('SIGTERM', 10_000);
    for (const service of started.reverse()) await service.stop('SIGTERM', 5_000);
    started.length = 0;
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    const serviceBusEmulator = await spawnService({
      name: 'servicebus-emulator',
      command: [process.execPath, join(DIST_LOCAL, 'servicebus-emulator', 'cli.js')],
      cwd: REPO_ROOT,
      env: { SERVICEBUS_EMULATOR_PORT: '0' },
      readyLine: /Service Bus emulator listening on sb:\/\/127\.0\.0\.1:(\d+)/,
    });
    started.push(serviceBusEmulator);
    const cosmosEmulator = await spawnService({
      name: 'cosmos-emulator',
      command: [process.execPath, join(DIST_LOCAL, 'cosmos-emulator', 'cli.js')],
      cwd: REPO_ROOT,
      env: { COSMOS_EMULATOR_PORT: '0' },
      readyLine: new RegExp(`${escape(COSMOS_READY_LINE_PREFIX)}(\\S+)`),
    });
    started.push(cosmosEmulator);
    const caLine = cosmosEmulator.output().split('\n').find((l) => l.startsWith(COSMOS_CA_LINE_PREFIX));
    if (!caLine) throw new Error(`cosmos-emulator printed no CA certificate line:\n${cosmosEmulator.output()}`);
    const cosmos = {
      endpoint: cosmosEmulator.match[1]!,
      key: COSMOS_EMULATOR_KEY,
      caCertificateFile: caLine.slice(COSMOS_CA_LINE_PREFIX.length).trim(),
    };
    const serviceBusConnectionString =
      `Endpoint=sb://127.0.0.1:${serviceBusEmulator.match[1]};SharedAccessKeyName=RootManageSharedAccessKey;` +
      `SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`;

    const hostEnv: Record<string, string> = {
      FUNCTIONS_HTTP_PORT: '0',
      ServiceBusConnection: serviceBusConnectionString,
      CosmosDbConnection__accountEndpoint: cosmos.endpoint,
      CosmosDbConnection__accountKey: cosmos.key,
      CosmosDbConnection__caCertificateFile: cosmos.caCertificateFile,
      DURABLE_DATA_DIR: join(scratch, 'durable'),
      FAULT_INJECTION_ENABLED: 'true',
      SEED_CATALOG: 'true',
      ...options.hostEnv,
    };
    const spawnHost = () =>
      spawnService({
        name: 'functions-host',
        command: [process.execPath, join(DIST_LOCAL, 'functions-host', 'cli.js'), '--app-dir', REPO_ROOT],
        cwd: REPO_ROOT,
        env: hostEnv,
        readyLine: HOST_READY,
        timeoutMs: 90_000,
        echo: options.echoHost ?? false,
      });
    host = await spawnHost();
    // Later starts take the port the first one was given, so clients keep their base URL.
    hostEnv.FUNCTIONS_HTTP_PORT = host.match[2]!;
    const baseUrl = host.match[1]!;

    return {
      baseUrl,
      serviceBusConnectionString,
      cosmos,
      hostEnv,
      host: () => host!,
      hostOutputs: () => [...earlierHostOutputs, host!.output()],
      serviceBusEmulator,
      cosmosEmulator,
      async killHost() {
        await host!.stop('SIGKILL', 0);
        earlierHostOutputs.push(host!.output());
      },
      async startHost() {
        // The port was just released by a killed process; a moment of retrying covers the gap.
        for (let attempt = 1; ; attempt++) {
          try {
            host = await spawnHost();
            return;
          } catch (err) {
            if (attempt >= 5) throw err;
            await new Promise((r) => setTimeout(r, 500 * attempt));
          }
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Resident memory of a process in MB (VmRSS from /proc), or NaN where /proc is not available. */
export async function residentMegabytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return kb ? Number(kb[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}
