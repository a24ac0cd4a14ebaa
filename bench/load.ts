/**
 * Load generation for the benchmarks and the fault-injection run: one keep-alive HTTP call with
 * its latency, closed loops (N clients, each sending when the last was answered), open loops (a
 * fixed arrival rate, so a slow server cannot slow the clients down), percentiles and a progress
 * line on stderr.
 */
import { Agent, request } from 'node:http';

export interface Answer<T = unknown> {
  status: number;
  /** Parsed JSON when the body is JSON, else the text; undefined when there was none. */
  body: T;
  /** Milliseconds from sending the request to the last byte of the answer. */
  ms: number;
  /** Set when the request failed on the wire (refused, reset): `status` is 0. */
  error?: string;
}

export interface HttpCall {
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Per request; a host that hangs must not hang the run (default 30 s). */
  timeoutMs?: number;
}

export function keepAliveAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets });
}

export function call<T = unknown>(baseUrl: string, agent: Agent, spec: HttpCall): Promise<Answer<T>> {
  const url = new URL(spec.path, baseUrl);
  const payload = spec.body === undefined ? undefined : typeof spec.body === 'string' || Buffer.isBuffer(spec.body) ? spec.body : JSON.stringify(spec.body);
  const headers: Record<string, string | number> = { ...spec.headers };
  if (payload !== undefined) {
    headers['content-length'] = Buffer.byteLength(payload);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  }
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const settle = (answer: Answer<T>): void => {
      if (settled) return;
      settled = true;
      resolve(answer);
    };
    const req = request(
      { host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: spec.method, agent, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => settle({ status: 0, body: undefined as T, ms: performance.now() - started, error: err.message }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text === '' ? undefined : text;
          try {
            if (text !== '') body = JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          settle({ status: res.statusCode ?? 0, body: body as T, ms: performance.now() - started });
        });
      },
    );
    req.setTimeout(spec.timeoutMs ?? 30_000, () => req.destroy(new Error('timed out')));
    req.on('error', (err) => settle({ status: 0, body: undefined as T, ms: performance.now() - started, error: err.message }));
    req.end(payload);
  });
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(latencies: readonly number[]): LatencySummary {
  const sorted = [...latencies].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/** `clients` loops, each starting its next operation when the last one finished, until the deadline or `limit` operations. */
export async function closedLoop<R>(clients: number, until: { durationMs?: number; limit?: number }, operation: (n: number) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  const deadline = until.durationMs === undefined ? Infinity : performance.now() + until.durationMs;
  const limit = until.limit ?? Infinity;
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline && next < limit) results.push(await operation(next++));
    }),
  );
  return results;
}

/** `total` operations started at a fixed rate, whatever the answers take; resolves when all finished. */
export async function openLoop<R>(perSecond: number, total: number, operation: (n: number) => Promise<R>): Promise<R[]> {
  const started = performance.now();
  const inFlight: Promise<R>[] = [];
  for (let i = 0; i < total; i++) {
    const wait = started + (i * 1000) / perSecond - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(operation(i));
  }
  return Promise.all(inFlight);
}

/**
 * One self-rewriting status line on stderr (a plain line every few seconds when stderr is not a
 * terminal, so logs stay readable).
 */
export class Progress {
  private last = 0;
  private text = '';
  private readonly tty = process.stderr.isTTY === true;

  update(text: string): void {
    this.text = text;
    const now = Date.now();
    if (this.tty) {
      if (now - this.last < 100) return;
      process.stderr.write(`\r\x1b[2K${text}`);
    } else {
      if (now - this.last < 5_000) return;
      process.stderr.write(`${text}\n`);
    }
    this.last = now;
  }

  /** Ends the current line (keeps its last text) and prints `text` as a finished step. */
  done(text: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[2K`);
    process.stderr.write(`${text}\n`);
    this.text = '';
    this.last = 0;
  }

  get current(): string {
    return this.text;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
