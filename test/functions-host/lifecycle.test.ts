/**
 * Host lifecycle as a user sees it: refusing apps it cannot serve (with a clear message and a
 * non-zero exit), timers (runOnStartup, NCRONTAB with seconds, %setting% schedules), and a
 * graceful SIGINT that lets a running request finish and exits 0.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { spawnService, ServiceStartError } from '../../local/service-process';
import { HOST_CLI, eventually, fixtureDir, startHost, logShows } from './host-process';

async function startupFailure(app: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const started = await startHost(app, env);
    await started.stop();
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceStartError);
    expect((err as ServiceStartError).exitCode).toBe(1);
    return (err as ServiceStartError).output;
  }
  throw new Error(`${app} started, but the host should have refused it`);
}

describe('apps the host refuses', () => {
  it.each([
    { app: 'test-mode-app', message: /Functions host failed to start: HostConfigurationError: @azure\/functions switched to "test mode"/ },
    { app: 'empty-app', message: /Functions host failed to start: HostConfigurationError: no function was registered/ },
    { app: 'missing-main-app', message: /package\.json "main" \(dist\/\{triggers,activities\}\/\*\*\/\*\.js\) matches no file/ },
  ])('$app: exits non-zero with a clear message', async ({ app, message }) => {
    const output = await startupFailure(app);
    expect(output).toMatch(message);
  });

  it('names the port when it is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address() as AddressInfo;
    try {
      const output = await startupFailure('timer-app', { FUNCTIONS_HTTP_PORT: String(port) });
      expect(output).toContain(`port ${port} is already in use`);
    } finally {
      blocker.close();
    }
  });

  it('exits non-zero, naming the cause, when the durable engine cannot open its store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'durable-blocked-'));
    const file = join(dir, 'not-a-directory');
    writeFileSync(file, '');
    try {
      const output = await startupFailure('durable-app', { DURABLE_DATA_DIR: join(file, 'durable') });
      expect(output).toMatch(/Functions host failed to start: .*ENOTDIR/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an app dir without host.json', async () => {
    const err = await spawnService({
      name: 'host without app',
      command: [process.execPath, HOST_CLI, '--app-dir', fixtureDir('timer-app/src')],
      env: { FUNCTIONS_HTTP_PORT: '0' },
      readyLine: /listening/,
    }).catch((e: ServiceStartError) => e);
    expect(err).toBeInstanceOf(ServiceStartError);
    expect((err as ServiceStartError).output).toMatch(/no host\.json in .*timer-app\/src: not a Functions app directory/);
  });
});

describe('timer triggers', () => {
  it('runs on startup, then on its NCRONTAB schedule, with the timer input the extension sends', async () => {
    const host = await startHost('timer-app');
    try {
      const ticks = await eventually(
        async () => {
          const list = (await (await fetch(`${host.url}/api/ticks`)).json()) as {
            fn: string;
            at: string;
            isPastDue: boolean;
            scheduleStatus: { last: string; next: string; lastUpdated: string };
          }[];
          return list.length >= 3 ? list : undefined;
        },
        8000,
        'three timer runs',
      );
      expect(ticks[0]!.isPastDue).toBe(false);
      for (const t of ticks) {
        expect(new Date(t.scheduleStatus.next).getTime()).toBeGreaterThan(new Date(t.scheduleStatus.lastUpdated).getTime());
        // Every second, on the second.
        expect(new Date(t.scheduleStatus.next).getUTCMilliseconds()).toBe(0);
      }
      const gaps = ticks.slice(1).map((t, i) => new Date(t.at).getTime() - new Date(ticks[i]!.at).getTime());
      for (const gap of gaps.slice(1)) expect(gap).toBeGreaterThan(500);
      await logShows(host, /\[tick\] Executed 'tick' \(Succeeded.*Reason='Timer runOnStartup'\)/);
      await logShows(host, /\[tick\] Executed 'tick' \(Succeeded.*Reason='Timer fired'\)/);
    } finally {
      await host.stop();
    }
  });

  it('fires a timer by hand through the admin API', async () => {
    const host = await startHost('timer-app', { TICK_SCHEDULE: '0 0 0 1 1 *' });
    try {
      // runOnStartup gives the first run; the schedule (once a year) gives none in this test.
      await eventually(async () => ((await (await fetch(`${host.url}/api/ticks`)).json()) as unknown[]).length === 1 || undefined, 5000, 'startup run');
      const res = await fetch(`${host.url}/admin/functions/tick`, { method: 'POST', body: '{}' });
      expect(res.status).toBe(202);
      await eventually(async () => ((await (await fetch(`${host.url}/api/ticks`)).json()) as unknown[]).length === 2 || undefined, 5000, 'manual run');
      await logShows(host, /Reason='Manual invoke'/);
    } finally {
      await host.stop();
    }
  });
});

describe('timer schedule monitor', () => {
  let statusDir: string;
  beforeEach(() => {
    statusDir = mkdtempSync(join(tmpdir(), 'timer-status-'));
  });
  afterEach(() => rmSync(statusDir, { recursive: true, force: true }));

  async function ticksOf(url: string, fn: string): Promise<{ isPastDue: boolean; scheduleStatus: { last: string } }[]> {
    const all = (await (await fetch(`${url}/api/ticks`)).json()) as { fn: string; isPastDue: boolean; scheduleStatus: { last: string } }[];
    return all.filter((t) => t.fn === fn);
  }

  it('runs a timer whose occurrence passed while the host was down, with isPastDue true', async () => {
    const last = '2026-01-01T00:00:00.000Z';
    writeFileSync(
      join(statusDir, 'yearly.json'),
      JSON.stringify({ Last: last, Next: new Date(Date.now() - 3600_000).toISOString(), LastUpdated: last }),
    );
    const host = await startHost('timer-app', { TIMER_STATUS_DIR: statusDir, TICK_SCHEDULE: '0 0 0 1 1 *' });
    try {
      const [run] = await eventually(async () => {
        const runs = await ticksOf(host.url, 'yearly');
        return runs.length > 0 ? runs : undefined;
      }, 5000, 'the past-due run');
      expect(run!.isPastDue).toBe(true);
      expect(run!.scheduleStatus.last).toBe(last);
      await eventually(async () => {
        const status = JSON.parse(readFileSync(join(statusDir, 'yearly.json'), 'utf8')) as { Next: string };
        return new Date(status.Next).getTime() > Date.now() ? status : undefined;
      }, 5000, 'the recorded next occurrence to move to the future');
    } finally {
      await host.stop();
    }
  });

  it('records the next occurrence and does not run a timer that is not due', async () => {
    const host = await startHost('timer-app', { TIMER_STATUS_DIR: statusDir, TICK_SCHEDULE: '0 0 0 1 1 *' });
    try {
      await eventually(async () => ((await ticksOf(host.url, 'tick')).length > 0 ? true : undefined), 5000, 'startup');
      expect(await ticksOf(host.url, 'yearly')).toEqual([]);
      const status = JSON.parse(readFileSync(join(statusDir, 'yearly.json'), 'utf8')) as { Next: string };
      expect(new Date(status.Next).getUTCMonth()).toBe(0);
      expect(new Date(status.Next).getUTCDate()).toBe(1);
    } finally {
      await host.stop();
    }
  });
});

describe('functionTimeout', () => {
  it('fails an invocation that runs past host.json functionTimeout with a 500', async () => {
    const host = await startHost('timer-app', { TICK_SCHEDULE: '0 0 0 1 1 *' });
    try {
      const res = await fetch(`${host.url}/api/slow?ms=1500`);
      expect(res.status).toBe(500);
      expect(await res.text()).toBe('');
      const timeoutLine = /FunctionTimeoutError: Timeout value of 1000 ms \(host\.json functionTimeout\) was exceeded by function 'slow'/;
      await eventually(async () => (timeoutLine.test(host.service.output()) ? true : undefined), 3000, 'the timeout in the log');
      // A quick invocation of the same function still succeeds.
      expect((await fetch(`${host.url}/api/slow?ms=10`)).status).toBe(200);
    } finally {
      await host.stop();
    }
  });
});

describe('shutdown', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('on %s finishes the running request, stops, and exits 0', async (signal) => {
    const host = await startHost('timer-app', { TICK_SCHEDULE: '0 0 0 1 1 *' });
    const slow = fetch(`${host.url}/api/slow?ms=700`).then(async (r) => ({ status: r.status, text: await r.text() }));
    await eventually(async () => (/Executed 'tick'/.test(host.service.output()) ? true : undefined), 5000, 'startup');
    await new Promise((r) => setTimeout(r, 150));
    host.service.kill(signal);
    const code = await host.service.exited;
    expect(await slow).toEqual({ status: 200, text: 'slept, 1 finished' });
    expect(code).toBe(0);
    expect(host.service.output()).toContain('Functions host stopped');
    await host.stop();
  });
});
