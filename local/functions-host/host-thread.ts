/**
 * The host's own threads (the durable engine, the HTTP front end) fail with the host: an error or
 * exit before the thread is ready fails its start; an error after that is thrown on the host's
 * thread, as it was when their work ran there.
 */
import type { Worker } from 'node:worker_threads';

export function failWithHost(
  worker: Worker,
  what: string,
  thread: { ready(): boolean; failStart(err: Error): void; exited(): void },
): void {
  worker.on('error', (err) => {
    if (!thread.ready()) return thread.failStart(err);
    setImmediate(() => {
      throw err;
    });
  });
  worker.on('exit', (code) => {
    if (!thread.ready()) thread.failStart(new Error(`${what} exited with code ${code} before it was ready`));
    thread.exited();
  });
}
