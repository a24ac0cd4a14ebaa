/**
 * `npm start`: the whole order system on this machine. Starts the Service Bus emulator and the
 * Cosmos DB stand-in (each its own process), then the Functions host on this repository, wired to
 * the ports the emulators actually took. Ctrl-C stops everything, host first.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stopWhenLauncherGone } from './launcher';
import { ServiceStartError, spawnService, type RunningService, type ServiceSpec } from './service-process';
import {
  cosmosEmulatorProcess,
  EMULATOR_STOP_GRACE_MS,
  emulatorEndpoints,
  emulatorSettings,
  functionsHostProcess,
  HOST_STOP_GRACE_MS,
  hostPort,
  REPO_ROOT,
  serviceBusEmulatorProcess,
  StartupError,
} from './stack';

const HOST = '127.0.0.1';

/** A port we listen on, the variable that moves it, and what it is for (for the "port taken" message). */
interface PortSetting {
  variable: 'FUNCTIONS_HTTP_PORT' | 'SERVICEBUS_EMULATOR_PORT' | 'COSMOS_EMULATOR_PORT';
  what: string;
  fallback: number;
}

const PORTS: PortSetting[] = [
  { variable: 'FUNCTIONS_HTTP_PORT', what: 'the Functions host (HTTP API)', fallback: 7071 },
  { variable: 'SERVICEBUS_EMULATOR_PORT', what: 'the Service Bus emulator (AMQP)', fallback: 5672 },
  { variable: 'COSMOS_EMULATOR_PORT', what: 'the Cosmos DB stand-in (HTTPS)', fallback: 8081 },
];

/**
 * Each service runs in its own session where the system allows it: a Ctrl-C in the terminal then
 * reaches only us, so the host is stopped first and every child is signalled exactly once (the host
 * takes a second signal as "exit now, skip draining"). `setsid` execs in place, so the PID we are
 * given is the service's own.
 */
const SETSID = '/usr/bin/setsid';
function inOwnSession(spec: ServiceSpec): ServiceSpec {
  const ownSession = process.platform === 'linux' && existsSync(SETSID);
  return ownSession ? { ...spec, command: [SETSID, ...spec.command] } : spec;
}

function configuredPort(setting: PortSetting): number {
  const raw = process.env[setting.variable];
  if (raw === undefined || raw === '') return setting.fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new StartupError(`${setting.variable} must be a port number (0-65535), got "${raw}".`);
  }
  return port;
}

/** Resolves true when nothing listens on the port; it is released again before returning. */
function isPortFree(port: number): Promise<boolean> {
  if (port === 0) return Promise.resolve(true);
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    });
    probe.listen({ port, host: HOST, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

async function checkPortsFree(ports: Map<PortSetting, number>): Promise<void> {
  const taken: string[] = [];
  for (const [setting, port] of ports) {
    if (!(await isPortFree(port))) {
      taken.push(
        `Port ${port} is already in use; it is for ${setting.what}. ` +
          `Stop whatever holds it or set ${setting.variable} to another port.`,
      );
    }
  }
  if (taken.length > 0) throw new StartupError(taken.join('\n'));
}

function routePrefix(): string {
  try {
    const hostJson = JSON.parse(readFileSync(join(REPO_ROOT, 'host.json'), 'utf8')) as {
      extensions?: { http?: { routePrefix?: string } };
    };
    return hostJson.extensions?.http?.routePrefix ?? 'api';
  } catch {
    return 'api';
  }
}

/**
 * Copies a service's output to ours, each line prefixed with its name: what it printed up to its
 * ready line, then every chunk as it arrives (no polling, so nothing is lost however much it writes).
 * The returned function prints a last unterminated line.
 */
function followOutput(service: RunningService, name: string): () => void {
  const prefix = `[${name}] `;
  let partial = '';
  const print = (text: string, final: boolean): void => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    if (final && partial !== '') lines.push(partial);
    if (final) partial = '';
    for (const line of lines) process.stdout.write(`${prefix}${line}\n`);
  };
  // Synchronous from the read to the subscription: no chunk can fall between them.
  print(service.output(), false);
  service.onOutput((text) => print(text, false));
  const finish = (): void => print('', true);
  void service.exited.then(finish);
  return finish;
}

interface StartedService {
  name: string;
  service: RunningService;
  stopFollowing: () => void;
  stopped?: Promise<void>;
}

class OrderSystem {
  private readonly started: StartedService[] = [];
  private readonly starting = new Set<Promise<unknown>>();
  private shuttingDown = false;

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  async start(spec: ServiceSpec): Promise<RunningService> {
    const pending = spawnService(spec);
    this.starting.add(pending);
    let service: RunningService;
    try {
      service = await pending;
    } finally {
      this.starting.delete(pending);
    }
    const entry: StartedService = { name: spec.name, service, stopFollowing: followOutput(service, spec.name) };
    this.started.push(entry);
    console.log(`started ${spec.name} pid ${service.pid}`);
    if (this.shuttingDown) {
      // Became ready while we were already stopping: stop it too, nothing may be left behind.
      await this.stopOne(entry, 0);
      throw new StartupError('stopped while starting');
    }
    void service.exited.then((code) => this.onExit(entry, code));
    return service;
  }

  private onExit(entry: StartedService, code: number | null): void {
    // Ctrl-C in a terminal reaches every process of the group at once; give our own signal handler
    // a moment to mark the shutdown before calling the exit unexpected.
    setTimeout(() => {
      if (this.shuttingDown) return;
      console.error(
        `${entry.name} (pid ${entry.service.pid}) exited unexpectedly with ${code === null ? 'a signal' : `code ${code}`}; stopping the others.`,
      );
      void this.stopAll().then(() => process.exit(1));
    }, 200);
  }

  /** Idempotent: a service is stopped (and reported) once, however many paths ask for it. */
  private stopOne(entry: StartedService, graceMs: number): Promise<void> {
    entry.stopped ??= entry.service.stop('SIGINT', graceMs).then(async () => {
      const code = await entry.service.exited;
      entry.stopFollowing();
      console.log(`stopped ${entry.name} pid ${entry.service.pid} (exit ${code === null ? 'by signal' : `code ${code}`})`);
    });
    return entry.stopped;
  }

  /** The host first (it still talks to the emulators while draining), then the emulators together. */
  async stopAll(): Promise<void> {
    this.shuttingDown = true;
    // A service still starting is stopped by start() as soon as its launch settles.
    await Promise.allSettled([...this.starting]);
    const host = this.started.filter((s) => s.name === 'functions-host');
    const emulators = this.started.filter((s) => s.name !== 'functions-host');
    await Promise.all(host.map((s) => this.stopOne(s, HOST_STOP_GRACE_MS)));
    await Promise.all(emulators.map((s) => this.stopOne(s, EMULATOR_STOP_GRACE_MS)));
  }

  /**
   * Second Ctrl-C: the user does not want to wait. A service still starting has no PID for us yet;
   * start() kills it the moment its launch settles, so we wait for that rather than orphan it.
   */
  async killAll(): Promise<void> {
    this.shuttingDown = true;
    for (const s of this.started) s.service.kill('SIGKILL');
    await Promise.allSettled([...this.starting]);
  }
}

async function main(): Promise<void> {
  const system = new OrderSystem();
  let signals = 0;
  const stopGracefully = (why: string): void => {
    console.log(`${why}: stopping the order system.`);
    void system.stopAll().then(() => process.exit(0));
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      console.error(`${signal} again: killing all services now.`);
      void system.killAll().then(() => process.exit(1));
      return;
    }
    stopGracefully(`${signal} received`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The terminal closing: the services are in their own sessions and would not hear of it.
  process.on('SIGHUP', onSignal);
  // npm stopped (it signals only the shell of the script) or whatever started this is gone.
  // Counted like a signal: a Ctrl-C after it kills, and after a Ctrl-C it has nothing to add.
  stopWhenLauncherGone((why) => {
    signals += 1;
    if (signals === 1) stopGracefully(why);
  });
  process.on('uncaughtException', (err) => {
    console.error(`npm start failed: ${err.message}; killing all services.`);
    void system.killAll().then(() => process.exit(1));
  });

  try {
    const ports = new Map(PORTS.map((p) => [p, configuredPort(p)] as const));
    await checkPortsFree(ports);
    const portOf = (variable: PortSetting['variable']): number =>
      ports.get(PORTS.find((p) => p.variable === variable)!)!;

    const [serviceBus, cosmos] = await Promise.all([
      system.start(inOwnSession(serviceBusEmulatorProcess({ port: portOf('SERVICEBUS_EMULATOR_PORT') }))),
      system.start(inOwnSession(cosmosEmulatorProcess({ port: portOf('COSMOS_EMULATOR_PORT') }))),
    ]);
    const endpoints = emulatorEndpoints(serviceBus, cosmos);
    const host = await system.start(
      inOwnSession(functionsHostProcess({ FUNCTIONS_HTTP_PORT: String(portOf('FUNCTIONS_HTTP_PORT')), ...emulatorSettings(endpoints) })),
    );
    const api = `http://127.0.0.1:${hostPort(host)}/${routePrefix()}`.replace(/\/$/, '');
    const serviceBusPort = serviceBus.match[1];
    const { endpoint: cosmosEndpoint, caCertificateFile } = endpoints.cosmos;

    console.log('');
    console.log(`  API                 ${api}/orders`);
    console.log(`  Support portal      ${api}/portal/`);
    console.log(`  Service Bus         sb://127.0.0.1:${serviceBusPort}`);
    console.log(`  Cosmos DB stand-in  ${cosmosEndpoint}  (CA certificate ${caCertificateFile})`);
    console.log('');
    console.log(`Order system ready: ${api}`);
    console.log('Press Ctrl-C to stop.');
  } catch (err) {
    if (system.isShuttingDown) return; // a signal arrived during startup; its handler finishes the exit
    if (err instanceof StartupError) console.error(err.message);
    else if (err instanceof ServiceStartError) console.error(`Could not start the order system: ${err.message}`);
    else console.error(`Could not start the order system: ${(err as Error)?.message ?? String(err)}`);
    await system.stopAll();
    process.exit(1);
  }
}

void main();
