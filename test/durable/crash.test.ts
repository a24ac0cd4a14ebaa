/**
 * Crash safety: the host process is killed with SIGKILL at the worst moments and restarted on the
 * same data directory; every orchestration still finishes with the output it would have had.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as df from 'durable-functions';
import { spawnService, type RunningService } from '../../local/service-process';
import { durableClientForBinding } from './harness';

const HOUR = 3600_000;
const FIXTURE = path.join(__dirname, 'fixtures', 'crash-host.js');

interface Host {
  service: RunningService;
  client: df.DurableClient;
  baseUrl: string;
}

const started: RunningService[] = [];

async function startHost(dataDir: string, env: Record<string, string> = {}): Promise<Host> {
  const service = await spawnService({
    name: 'crash-host',
    command: [process.execPath, FIXTURE],
    env: { DURABLE_DATA_DIR: dataDir, ...env },
    readyLine: /^READY (\d+) (.*)$/,
    timeoutMs: 30_000,
  });
  started.push(service);
  const binding = JSON.parse(service.match[2]) as Record<string, unknown>;
  return { service, client: durableClientForBinding(binding), baseUrl: `http://127.0.0.1:${service.match[1]}` };
}

async function kill(host: Host): Promise<void> {
  host.service.kill('SIGKILL');
  await host.service.exited;
}

async function idle(host: Host): Promise<void> {
  const res = await fetch(`${host.baseUrl}/admin/durable/idle`, { method: 'POST' });
  expect(res.status).toBe(200);
}

async function advance(host: Host, ms: number): Promise<void> {
  const res = await fetch(`${host.baseUrl}/admin/durable/advance?ms=${ms}`, { method: 'POST' });
  expect(res.status).toBe(200);
}

async function waitForLine(host: Host, pattern: RegExp, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(host.service.output())) {
    if (Date.now() > deadline) throw new Error(`no output matching ${pattern}; got:\n${host.service.output()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const runs = (output: string, activity: string): number =>
  output.split('\n').filter((l) => l.startsWith(`RAN ${activity} `)).length;

const dirs: string[] = [];
function freshDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-crash-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const s of started.splice(0)) await s.stop('SIGKILL', 0);
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

it('resumes an orchestration killed while it waits on a timer; the timer still fires', async () => {
  const dir = freshDir();
  let host = await startHost(dir);
  await host.client.startNew('crashTimer', { instanceId: 'timer-1', input: 'x' });
  await idle(host);
  expect((await host.client.getStatus('timer-1')).runtimeStatus).toBe('Running');
  await kill(host);

  host = await startHost(dir);
  await idle(host);
  expect((await host.client.getStatus('timer-1')).runtimeStatus).toBe('Running');
  await advance(host, HOUR);
  const status = await host.client.getStatus('timer-1');
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual(['A:x', 'B:x']);
  expect(runs(host.service.output(), 'stepA')).toBe(0);
});

it('runs an activity again when the host was killed while it ran', async () => {
  const dir = freshDir();
  let host = await startHost(dir, { CRASH_HANG_ACTIVITY: 'stepB' });
  await host.client.startNew('crashChain', { instanceId: 'chain-1', input: 'y' });
  await waitForLine(host, /^RAN stepB /m);
  await kill(host);

  host = await startHost(dir);
  await idle(host);
  const status = await host.client.getStatus('chain-1');
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual(['A:y', 'B:A:y', 'C:B:A:y']);
  expect(runs(host.service.output(), 'stepA')).toBe(0);
  expect(runs(host.service.output(), 'stepB')).toBe(1);
});

it('does not run an activity again once its result was recorded, even if the host dies right after', async () => {
  const dir = freshDir();
  let host = await startHost(dir, { CRASH_AFTER_RECORD: 'stepA' });
  await host.client.startNew('crashChain', { instanceId: 'chain-2', input: 'z' });
  await host.service.exited;
  expect(host.service.output()).toMatch(/^RECORDED stepA$/m);

  host = await startHost(dir);
  await idle(host);
  const status = await host.client.getStatus('chain-2');
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual(['A:z', 'B:A:z', 'C:B:A:z']);
  expect(runs(host.service.output(), 'stepA')).toBe(0);
});

it('runs an activity again when the host died after its work but before its result was recorded', async () => {
  const dir = freshDir();
  let host = await startHost(dir, { CRASH_BEFORE_RECORD: 'stepC' });
  await host.client.startNew('crashChain', { instanceId: 'chain-3', input: 'w' });
  await host.service.exited;
  expect(runs(host.service.output(), 'stepC')).toBe(1);

  host = await startHost(dir);
  await idle(host);
  const status = await host.client.getStatus('chain-3');
  expect(status.runtimeStatus).toBe('Completed');
  expect(status.output).toEqual(['A:w', 'B:A:w', 'C:B:A:w']);
  expect(runs(host.service.output(), 'stepC')).toBe(1);
  expect(runs(host.service.output(), 'stepB')).toBe(0);
});

it('loses nothing when killed at random moments under load', async () => {
  const dir = freshDir();
  const ids = Array.from({ length: 20 }, (_, i) => `fan-${i}`);
  let host = await startHost(dir);
  for (const id of ids) await host.client.startNew('crashFanOut', { instanceId: id, input: 8 });
  let ranBeforeKills = 0;
  for (let round = 0; round < 4; round++) {
    await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 80)));
    await kill(host);
    ranBeforeKills += runs(host.service.output(), 'square') + runs(host.service.output(), 'stepA');
    host = await startHost(dir);
  }
  // The kills landed while work was under way.
  expect(ranBeforeKills).toBeGreaterThan(0);
  await idle(host);
  for (const id of ids) {
    const status = await host.client.getStatus(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual({ sum: 204, a: 'A:204' });
  }
});
