/**
 * Starts one local service (emulator, Functions host, ...) as a child process and waits until it
 * prints its ready line. Stopping signals only that child's PID, never a process name, so parallel
 * runs and unrelated processes are never touched.
 */
import { spawn } from 'node:child_process';
import { LAUNCHER_PID_VARIABLE } from './launcher';

export interface ServiceSpec {
  /** Shown in errors and in `output()` consumers' messages. */
  name: string;
  /** Executable and arguments, e.g. `[process.execPath, 'dist/local/functions-host/cli.js']`. */
  command: string[];
  /** Added to (and overriding) the parent's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A stdout line matching this means the service is ready; its match is returned. */
  readyLine: RegExp;
  /** How long to wait for the ready line (default 30 s). */
  timeoutMs?: number;
  /** Echo the child's output to this process's stderr as it arrives (default false). */
  echo?: boolean;
}

export interface RunningService {
  pid: number;
  /** The ready line's match, e.g. to read the port a service picked. */
  match: RegExpMatchArray;
  /** Everything the child wrote to stdout and stderr so far (bounded to the last 1 MB). */
  output(): string;
  /** Calls `listener` with every chunk the child writes from now on; returns the unsubscribe. */
  onOutput(listener: (text: string) => void): () => void;
  /** Signal the child, wait up to `graceMs`, then SIGKILL it. Resolves once it has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  kill(signal: NodeJS.Signals): void;
  /** Resolves with the exit code (null when ended by a signal). */
  exited: Promise<number | null>;
}

export class ServiceStartError extends Error {
  constructor(
    message: string,
    readonly output: string,
    /** The child's exit code when it exited before it was ready (null: killed by a signal). */
    readonly exitCode?: number | null,
  ) {
    super(message);
    this.name = 'ServiceStartError';
  }
}

const OUTPUT_LIMIT = 1 << 20;

export function spawnService(spec: ServiceSpec): Promise<RunningService> {
  const [file, ...args] = spec.command;
  if (!file) throw new Error(`${spec.name}: empty command`);
  const child = spawn(file, args, {
    cwd: spec.cwd,
    // The service stops by itself if this process dies without stopping it (launcher.ts).
    env: { ...process.env, ...spec.env, [LAUNCHER_PID_VARIABLE]: String(process.pid) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  // Chunks, not one growing string: a chatty child must not cost its parent a 1 MB copy per line.
  const chunks: string[] = [];
  let collectedLength = 0;
  const listeners = new Set<(text: string) => void>();
  const onOutput = (listener: (text: string) => void): (() => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
  const append = (text: string): void => {
    for (const listener of listeners) listener(text);
    chunks.push(text);
    collectedLength += text.length;
    while (collectedLength - chunks[0]!.length > OUTPUT_LIMIT) collectedLength -= chunks.shift()!.length;
    if (spec.echo) process.stderr.write(text);
  };
  const collected = (): string => {
    const all = chunks.join('');
    return all.length > OUTPUT_LIMIT ? all.slice(all.length - OUTPUT_LIMIT) : all;
  };

  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    });
    child.once('error', (err) => {
      append(`\n[${spec.name}] spawn error: ${err.message}\n`);
      exitCode = null;
      resolve(null);
    });
  });

  const kill = (signal: NodeJS.Signals): void => {
    if (exitCode !== undefined || child.pid === undefined) return;
    try {
      process.kill(child.pid, signal);
    } catch {
      // Already gone: nothing to stop.
    }
  };

  const stop = async (signal: NodeJS.Signals = 'SIGINT', graceMs = 5000): Promise<void> => {
    if (exitCode !== undefined) return;
    kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const outcome = await Promise.race([exited.then(() => 'exited' as const), graceOver]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      kill('SIGKILL');
      await exited;
    }
  };

  return new Promise<RunningService>((resolve, reject) => {
    let settled = false;
    let pending = '';
    const timeoutMs = spec.timeoutMs ?? 30_000;

    const fail = (why: string, code?: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const output = collected();
      reject(new ServiceStartError(`${spec.name} ${why}. Output:\n${output}`, output, code));
    };

    const timer = setTimeout(() => {
      fail(`printed no line matching ${spec.readyLine} within ${timeoutMs} ms`);
      void stop('SIGKILL', 0);
    }, timeoutMs);

    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', append);
    child.stdout.on('data', (chunk: string) => {
      append(chunk);
      if (settled) return;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const match = line.replace(/\r$/, '').match(spec.readyLine);
        if (match) {
          settled = true;
          clearTimeout(timer);
          pending = '';
          resolve({ pid: child.pid!, match, output: collected, onOutput, stop, kill, exited });
          return;
        }
      }
    });

    // 'close' (not 'exit') so a ready line still in the pipe when the child exits is read first.
    child.once('close', (code) => fail(`exited (code ${code}) before it was ready`, code));
    child.once('error', () => fail('could not be started'));
  });
}
