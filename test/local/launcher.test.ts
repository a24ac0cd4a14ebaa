/**
 * Local services stop when whatever launched them is gone: a launcher killed with SIGKILL, or npm
 * stopping a script (it signals the script's shell only). A service started by hand is left alone.
 * Uses the built Service Bus emulator CLI: it starts in well under a second on port 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { childPids } from '../support/processes';

const ROOT = join(__dirname, '..', '..');
const EMULATOR_CLI = join(ROOT, 'dist', 'local', 'servicebus-emulator', 'cli.js');
const SERVICE_PROCESS = join(ROOT, 'dist', 'local', 'service-process.js');

/** Alive and not a zombie (an orphan that exited may wait a moment to be reaped). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

/** Resolves with the first stdout line matching `pattern`. */
function lineOf(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern}; output: ${buffered}`)), 15_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const match = pattern.exec(buffered);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    });
  });
}

/** The pids this test started; whatever is still alive at the end is ended, by pid. */
const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

/** The environment without anything that would make the emulator follow its parent. */
function plainEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SERVICEBUS_EMULATOR_PORT: '0' };
  delete env['npm_lifecycle_event'];
  delete env['LOCAL_LAUNCHER_PID'];
  return env;
}

/** `sh -c "node <emulator>"`, as npm runs a script; returns the shell and the emulator's pid. */
async function emulatorUnderShell(env: NodeJS.ProcessEnv): Promise<{ shell: ChildProcess; emulatorPid: number }> {
  const shell = spawn('sh', ['-c', `"${process.execPath}" "${EMULATOR_CLI}"; echo "shell went on"`], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(shell.pid!);
  await lineOf(shell, /listening on sb:\/\/127\.0\.0\.1:\d+/);
  const children = childPids(shell.pid!);
  expect(children).toHaveLength(1);
  started.push(children[0]!);
  return { shell, emulatorPid: children[0]! };
}

describe('local services and their launcher', () => {
  it('a service started with spawnService stops when its launcher is killed with SIGKILL', async () => {
    const script = `
      const { spawnService } = require(${JSON.stringify(SERVICE_PROCESS)});
      spawnService({
        name: 'emulator',
        command: [process.execPath, ${JSON.stringify(EMULATOR_CLI)}],
        env: { SERVICEBUS_EMULATOR_PORT: '0' },
        readyLine: /listening on/,
      }).then((s) => console.log('service pid ' + s.pid));`;
    const launcher = spawn(process.execPath, ['-e', script], { env: plainEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(launcher.pid!);
    const pid = Number((await lineOf(launcher, /service pid (\d+)/))[1]);
    started.push(pid);
    expect(alive(pid)).toBe(true);

    launcher.kill('SIGKILL');
    expect(await gone(pid, 5000)).toBe(true);
  });

  it('a service run by an npm script stops when npm stops the script (its shell ends)', async () => {
    const { shell, emulatorPid } = await emulatorUnderShell({ ...plainEnvironment(), npm_lifecycle_event: 'servicebus-emulator' });
    shell.kill('SIGTERM');
    expect(await gone(emulatorPid, 5000)).toBe(true);
  });

  it('a service started by hand keeps running when the shell that started it ends', async () => {
    const { shell, emulatorPid } = await emulatorUnderShell(plainEnvironment());
    shell.kill('SIGTERM');
    expect(await gone(shell.pid!, 5000)).toBe(true);
    // Two of its checks later, it is still there.
    await new Promise((r) => setTimeout(r, 2500));
    expect(alive(emulatorPid)).toBe(true);
  });
});
