/** What a benchmarked process costs, read from /proc (Linux); NaN where /proc is not available. */
import { readFileSync } from 'node:fs';

/** Resident memory of a process in MB (VmRSS from /proc), or NaN where /proc is not available. */
export async function residentMegabytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return kb ? Number(kb[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * CPU time (user + system) a process has used so far, in ms (10 ms resolution); with `thread`, that
 * thread's only (a process's main thread has the process's id). NaN where /proc is not available.
 */
export function cpuMilliseconds(pid: number, thread?: number): number {
  try {
    const path = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
    const fields = readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

/** What the machine did to this process while a phase ran. */
export interface MachinePauses {
  /** Longest time this process's event loop stood still beyond its 10 ms tick. */
  longestPauseMs: number;
  pausesOver100Ms: number;
  /** CPU time the hypervisor gave to others while this machine's CPUs wanted to run (all CPUs, from /proc/stat). */
  stealMs: number;
}

function stealMilliseconds(): number {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    return (Number(cpu[8]) * 1000) / 100; // steal, in clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

/**
 * Starts watching for machine pauses: a load generator that itself stands still for a few hundred
 * ms (every process on a shared virtual machine does at once) shows that a latency tail measured
 * then belongs to the machine. Call the returned function to stop and read the figures.
 */
export function watchMachinePauses(): () => MachinePauses {
  const TICK_MS = 10;
  const stealBefore = stealMilliseconds();
  let last = performance.now();
  let longest = 0;
  let over100 = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const pause = now - last - TICK_MS;
    if (pause > longest) longest = pause;
    if (pause > 100) over100++;
    last = now;
  }, TICK_MS);
  return () => {
    clearInterval(timer);
    return { longestPauseMs: Math.max(0, longest), pausesOver100Ms: over100, stealMs: stealMilliseconds() - stealBefore };
  };
}
