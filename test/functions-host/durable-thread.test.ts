/**
 * The durable engine's thread when it cannot start. The host stops whatever it started after a
 * failed start; by then the thread may already have ended on its own, and stopping it must still
 * finish (it once waited for an answer from a thread that was gone, and the host exited 0).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DurableThread as DurableThreadType } from '../../local/functions-host/durable-thread';

// The built module: the thread runs dist/.../durable-worker.js next to it.
const { DurableThread } = require(join(__dirname, '..', '..', 'dist', 'local', 'functions-host', 'durable-thread.js')) as {
  DurableThread: typeof DurableThreadType;
};

describe('durable engine thread that cannot open its store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'durable-thread-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function blockedThread(): DurableThreadType {
    const file = join(dir, 'not-a-directory');
    writeFileSync(file, '');
    return new DurableThread(
      {
        dataDir: join(file, 'durable'),
        hubName: 'TestHubName',
        baseUrl: 'http://127.0.0.1:1',
        virtualClock: false,
        orchestrators: [],
        activities: [],
      },
      { run: () => Promise.reject(new Error('nothing runs on a thread that failed to start')) },
      () => undefined,
    );
  }

  it('rejects its start with the cause, and stops after the thread has already ended', async () => {
    const thread = blockedThread();
    await expect(thread.start()).rejects.toThrow(/ENOTDIR/);
    await thread.exited;
    await expect(thread.stop()).resolves.toBeUndefined();
  });

  it('stops when asked right after the failed start, while the thread may still be ending', async () => {
    const thread = blockedThread();
    await expect(thread.start()).rejects.toThrow(/ENOTDIR/);
    await expect(thread.stop()).resolves.toBeUndefined();
    await thread.exited;
  });
});
