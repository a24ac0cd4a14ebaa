/** Starts the built Functions host (dist/) on a free port for one fixture app, as a user runs it. */
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

export async function startHost(app: string, env: NodeJS.ProcessEnv = {}): Promise<HostUnderTest> {
  const service = await spawnService({
    name: `functions host (${app})`,
    command: [process.execPath, HOST_CLI, '--app-dir', fixtureDir(app)],
    env: { FUNCTIONS_HTTP_PORT: '0', ...env },
    readyLine: /^Functions host listening on (http:\/\/127\.0\.0\.1:\d+)$/,
    timeoutMs: 20_000,
  });
  return { url: service.match[1]!, service, stop: () => service.stop('SIGINT', 5000) };
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
