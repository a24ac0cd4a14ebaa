/**
 * The task hub store's checkpoint thread: commits on the engine's thread only append to the WAL,
 * and the WAL is copied into the database file without that thread's help.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TaskHubStore } from '../../local/durable/store';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function newStore(): { store: TaskHubStore; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durable-store-'));
  dirs.push(dir);
  const file = path.join(dir, 'hub.db');
  return { store: new TaskHubStore(file), file };
}

test('the WAL is copied into the database file by its own thread, though commits here never checkpoint', async () => {
  const { store, file } = newStore();
  const before = fs.statSync(file).size;
  const event = 'x'.repeat(3000);
  // About a thousand pages: far below the WAL size at which a commit would checkpoint by itself.
  store.transaction(() => {
    for (let i = 0; i < 1000; i++) store.appendHistory(`instance-${i % 50}`, Math.floor(i / 50), [event]);
  });
  // Committed pages live in the WAL until a checkpoint copies them into the database file.
  expect(fs.statSync(file).size).toBe(before);
  expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(3_000_000);

  const deadline = Date.now() + 5000;
  while (fs.statSync(file).size < 3_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(fs.statSync(file).size).toBeGreaterThan(3_000_000);
  expect(store.history('instance-7')).toHaveLength(20);
  // Closed twice at once (a shutdown and a teardown, say), the second call waits for the same end
  // of the running thread as the first.
  const first = store.close();
  expect(store.close()).toBe(first);
  await first;
});

test('closing the store ends its checkpoint thread, which leaves a clean database file behind', async () => {
  const { store, file } = newStore();
  store.appendHistory('one', 0, ['{"EventType":0}']);
  // close() resolves once the thread has ended; the last connection to close folds the WAL into
  // the database and removes it, so nothing of the store is left running or half-written after it.
  await store.close();
  expect(fs.existsSync(`${file}-wal`)).toBe(false);
  const reopened = new TaskHubStore(file);
  expect(reopened.history('one')).toEqual(['{"EventType":0}']);
  await reopened.close();
});
