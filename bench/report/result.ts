/** The shape of `bench/results/bench-<timestamp>.json`: every figure the run measured, and its targets. */
import type { LatencySummary } from '../load';
import type { MachinePauses } from '../process-usage';

export interface IntakePhase {
  label: string;
  /** closed: `concurrency` clients back to back; open: a fixed arrival rate. */
  kind: 'closed' | 'open';
  concurrency?: number;
  ratePerSecond?: number;
  seconds: number;
  requests: number;
  accepted: number;
  /** Answers other than 202, by status (0 = no answer). */
  otherStatuses: Record<string, number>;
  acceptedPerSecond: number;
  /** Latency of accepted orders, client side, until the last byte of the 202. */
  latencyMs: LatencySummary;
  /** Pauses of the whole machine seen from the load generator while the phase ran. */
  machine?: MachinePauses;
  /**
   * Share of the phase the host's main thread was running (0-1): the event loop that serves the API
   * and runs every function. The closer to 1, the longer a request waits for it.
   */
  hostMainThreadBusy?: number;
}

export interface EndToEndResult {
  orders: number;
  accepted: number;
  completed: number;
  /** Orders in any other state at the end (cancelled, still open, ...), by state. */
  otherStates: Record<string, number>;
  /** From the first order's acceptance to the last order's completion, server timestamps. */
  seconds: number;
  completedPerSecond: number;
  /** Per order: `createdAt` to the `completed` timeline entry. */
  latencyMs: LatencySummary;
  /**
   * CPU time (user + system) each process spent during the burst, divided by the orders completed:
   * what one order costs the machine. `cores * 1000 / total` bounds the completions per second.
   */
  cpuMsPerOrder?: { host: number; serviceBusEmulator: number; cosmosEmulator: number; loadGenerator: number; total: number };
  /** The part of `cpuMsPerOrder.host` its main thread spent (the rest: the durable engine's thread, GC helpers). */
  hostMainThreadCpuMsPerOrder?: number;
}

export interface ChainComparison {
  latencyProfile: { inventory: number; billing: number; notification: number };
  orders: number;
  concurrency: number;
  /** Client time to the answer of the synchronous chain (the client waits for all three). */
  synchronous: LatencySummary;
  synchronousErrors: number;
  /** Client time to the 202 of the event-driven path, same latencies, same stores. */
  accepted202: LatencySummary;
  accepted202Errors: number;
  /** Time until the 202 path's orders were completed (the work still happens, in parallel). */
  completion202: LatencySummary;
  /** synchronous p50 / 202 p50. */
  speedup: number;
}

export interface MemorySample {
  afterOrders: number;
  hostMb: number;
  serviceBusEmulatorMb: number;
  cosmosEmulatorMb: number;
}

export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  /** null when the figure was not measured in this run. */
  pass: boolean | null;
}

export interface BenchResult {
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; loadAverageAtStart: number[]; node: string; platform: string };
  settings: Record<string, number | string>;
  intake: IntakePhase[];
  endToEnd?: EndToEndResult;
  comparison?: ChainComparison;
  memory: MemorySample[];
  targets: TargetCheck[];
}
