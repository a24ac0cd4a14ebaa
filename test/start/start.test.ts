/**
 * `npm start` as a user runs it: the built launcher, real child processes, real ports.
 * Needs a build (`npm test` builds first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeStartPorts } from '../support/ports';

const REPO_ROOT = join(__dirname, '..', '..');
const START = join(REPO_ROOT, 'dist', 'local', 'start.js');
const READY = /Order system ready: (http:\/\/127\.0\.0\.1:(\d+)\/api)/;
const CHILDREN = ['servicebus-emulator', 'cosmos-emulator', 'functions-host'];

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface StartRun {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves with the first match of `pattern` in the output; rejects if start exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  childPids(): Map<string, number>;
}

const runs: StartRun[] = [];

/** `detached` puts start in its own process group, so the test can Ctrl-C it the way a terminal does. */
function runStart(env: NodeJS.ProcessEnv, options: { detached?: boolean } = {}): StartRun {
  const child = spawn(process.execPath, [START], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer): void => {
    output += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    for (const l of listeners) l();
  });

  const run: StartRun = {
    child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 90_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`no ${pattern} within ${timeoutMs} ms:\n${output}`)), timeoutMs);
        const check = (): void => {
          const m = pattern.exec(output);
          if (m) done(undefined, m);
          else if (hasExited) done(new Error(`start exited before ${pattern}:\n${output}`));
        };
        const done = (err?: Error, m?: RegExpMatchArray): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolve(m!);
        };
        listeners.add(check);
        check();
      });
    },
    childPids() {
      const pids = new Map<string, number>();
      for (const m of output.matchAll(/^started (\S+) pid (\d+)$/gm)) pids.set(m[1], Number(m[2]));
      return pids;
    },
  };
  runs.push(run);
  return run;
}

const tempDirs: string[] = [];
function durableDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'start-durable-'));
  tempDirs.push(dir);
  return dir;
}

async function freePorts(): Promise<NodeJS.ProcessEnv> {
  return {
    // Its own durable store, so a run beside other suites never shares their SQLite file.
    DURABLE_DATA_DIR: durableDir(),
    ...(await freeStartPorts()),
  };
}

afterEach(async () => {
  // Whatever a failed test left running goes, by PID only.
  for (const run of runs.splice(0)) {
    for (const pid of run.childPids().values()) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    if (run.child.exitCode === null && run.child.signalCode === null) {
      run.child.kill('SIGKILL');
      await run.exited;
    }
  }
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('starts the emulators and the host, serves the API, and leaves nothing behind on Ctrl-C', async () => {
    const env = await freePorts();
    const run = runStart(env, { detached: true });
    const [, api, port] = await run.waitFor(READY);
    expect(port).toBe(env.FUNCTIONS_HTTP_PORT);
    expect(run.output()).toContain(`${api}/orders`);
    expect(run.output()).toContain(`${api}/portal/`);
    expect(run.output()).toContain(`sb://127.0.0.1:${env.SERVICEBUS_EMULATOR_PORT}`);
    expect(run.output()).toContain(`https://127.0.0.1:${env.COSMOS_EMULATOR_PORT}/`);

    const pids = run.childPids();
    expect([...pids.keys()].sort()).toEqual([...CHILDREN].sort());
    for (const pid of pids.values()) expect(isAlive(pid)).toBe(true);

    const status = await fetch(`http://127.0.0.1:${port}/admin/host/status`);
    expect(status.status).toBe(200);

    // The app reaches Cosmos through the stand-in: the inventory comes from the seeded catalog.
    const inventory = await fetch(`${api}/inventory`);
    expect(inventory.status).toBe(200);
    expect(Array.isArray(await inventory.json())).toBe(true);

    // Ctrl-C in a terminal signals the whole foreground process group.
    process.kill(-run.child.pid!, 'SIGINT');
    expect(await run.exited).toBe(0);
    for (const [name, pid] of pids) expect({ name, alive: isAlive(pid) }).toEqual({ name, alive: false });
    const out = run.output();
    // Each service got one signal and shut down cleanly (a second signal makes the host skip draining).
    for (const name of CHILDREN) expect(out).toMatch(new RegExp(`^stopped ${name} pid \\d+ \\(exit code 0\\)$`, 'm'));
    // Host first: it still talks to the emulators while it drains.
    expect(out.indexOf('stopped functions-host')).toBeGreaterThan(-1);
    expect(out.indexOf('stopped functions-host')).toBeLessThan(out.indexOf('stopped servicebus-emulator'));
    expect(out.indexOf('stopped functions-host')).toBeLessThan(out.indexOf('stopped cosmos-emulator'));
  }, 120_000);

  it('says which port is taken and which variable changes it, and starts nothing', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as { port: number }).port;
    try {
      const run = runStart({ ...(await freePorts()), COSMOS_EMULATOR_PORT: String(taken) });
      expect(await run.exited).not.toBe(0);
      expect(run.output()).toContain(`Port ${taken} is already in use`);
      expect(run.output()).toContain('set COSMOS_EMULATOR_PORT to another port');
      expect(run.childPids().size).toBe(0);
    } finally {
      blocker.close();
    }
  });

  it('stops the others and exits non-zero when one service dies', async () => {
    const run = runStart(await freePorts());
    await run.waitFor(READY);
    const pids = run.childPids();
    process.kill(pids.get('cosmos-emulator')!, 'SIGKILL');

    expect(await run.exited).not.toBe(0);
    expect(run.output()).toMatch(/cosmos-emulator \(pid \d+\) exited unexpectedly/);
    for (const [name, pid] of pids) expect({ name, alive: isAlive(pid) }).toEqual({ name, alive: false });
  }, 120_000);
});
