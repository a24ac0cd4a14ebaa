/**
 * The whole local system for the browser tests: `npm start`'s entry point (needs a build) on free
 * ports, with a durable store of its own, and Debian's Chromium.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnService, type RunningService } from '../../local/service-process';
import { freeStartPorts } from './ports';

const REPO_ROOT = join(__dirname, '..', '..');
const START = join(REPO_ROOT, 'dist', 'local', 'start.js');
export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots and traces of failed browser tests. */
export const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', 'browser');

export interface PortalSystem {
  system: RunningService;
  /** The API's base URL, `http://127.0.0.1:<port>/api`. */
  api: string;
  serviceBusPort: string;
  /** A folder of the test's own, removed by `stop`. */
  scratch: string;
  stop(): Promise<void>;
}

/** Starts the system with these settings on top of the free ports and its own durable store. */
export async function startPortalSystem(scratchPrefix: string, env: Record<string, string>): Promise<PortalSystem> {
  if (!existsSync(START)) throw new Error(`${START} is missing: build first (npm run build).`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium.`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), `${scratchPrefix}-`));
  const ports = await freeStartPorts();
  const system = await spawnService({
    name: 'order system',
    command: [process.execPath, START],
    cwd: REPO_ROOT,
    env: { ...ports, DURABLE_DATA_DIR: join(scratch, 'durable'), ...env },
    readyLine: /Order system ready: (http:\/\/127\.0\.0\.1:\d+\/api)/,
    timeoutMs: 150_000,
  }).catch((err: unknown) => {
    rmSync(scratch, { recursive: true, force: true });
    throw err;
  });
  return {
    system,
    api: system.match[1]!,
    serviceBusPort: ports.SERVICEBUS_EMULATOR_PORT,
    scratch,
    async stop() {
      await system.stop('SIGINT', 20_000);
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
