/** Processes of the system under test, read from /proc (Linux), and stopped for a while. */
import { readFileSync } from 'node:fs';

/** The pids of a process's children. */
export function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The processes below `pid`, children first. */
export function descendantPids(pid: number): number[] {
  return childPids(pid).flatMap((child) => [child, ...descendantPids(child)]);
}

export function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
}

/**
 * Runs `body` while the process is stopped (SIGSTOP: its connections stay open and nothing
 * answers, as in a network black hole), and lets it go on afterwards, whatever `body` did.
 */
export async function whileStopped<T>(pid: number, body: () => Promise<T>): Promise<T> {
  process.kill(pid, 'SIGSTOP');
  try {
    return await body();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}
