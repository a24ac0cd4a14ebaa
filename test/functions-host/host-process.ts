/** Starts the built Functions host (dist/) on a free port for one fixture app, as a user runs it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnService, type RunningService } from '../../local/service-process';

export const REPO_ROOT = join(__dirname, '..', '..');
export const HOST_CLI = join(REPO_ROOT, 'dist', 'local', 'functions-host', 'cli.js');

export function fixtureDir(name: string): string {
  return join(REPO_ROOT, 'test', 'fixtures', name);
}

export interface HostUnderTest {
  url: string;
  service: RunningService;
  stop(): Promise<void>;
}

/** Host state (timer status, durable store) goes to a fresh directory, never into the fixtures. */
export async function startHost(app: string, env: NodeJS.ProcessEnv = {}): Promise<HostUnderTest> {
  const stateDir = mkdtempSync(join(tmpdir(), `host-${app}-`));
  const removeState = (): void => rmSync(stateDir, { recursive: true, force: true });
  let service: RunningService;
  try {
    service = await spawnService({
      name: `functions host (${app})`,
      command: [process.execPath, HOST_CLI, '--app-dir', fixtureDir(app)],
      env: {
        FUNCTIONS_HTTP_PORT: '0',
        TIMER_STATUS_DIR: join(stateDir, 'timers'),
        DURABLE_DATA_DIR: join(stateDir, 'durable'),
        ...env,
      },
      readyLine: /^Functions host listening on (http:\/\/127\.0\.0\.1:\d+)$/,
      timeoutMs: 20_000,
    });
  } catch (err) {
    removeState();
    throw err;
  }
  return {
    url: service.match[1]!,
    service,
    stop: async () => {
      await service.stop('SIGINT', 5000);
      removeState();
    },
  };
}

/** Polls until `probe` returns a value other than undefined, or fails with what it last saw. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Host log lines reach the pipe a moment after the response: wait for one instead of racing it. */
export async function logShows(host: HostUnderTest, pattern: RegExp, timeoutMs = 5000): Promise<void> {
  await eventually(async () => (pattern.test(host.service.output()) ? true : undefined), timeoutMs, `a log line matching ${pattern}`);
}

/** A queue for the emulator's topology in these tests: 30 s locks, a day's TTL, no duplicate detection. */
export const testQueue = (name: string, maxDeliveryCount = 10) => ({
  name,
  maxDeliveryCount,
  lockDuration: 'PT30S',
  defaultMessageTimeToLive: 'P1D',
  deadLetteringOnMessageExpiration: false,
  requiresDuplicateDetection: false,
  duplicateDetectionHistoryTimeWindow: 'PT10M',
});
