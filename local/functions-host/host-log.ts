/**
 * Host log lines: one clear text line per event, timestamped, with secrets stripped. Levels follow
 * host.json `logging.logLevel` like the real host: the most specific category configured wins. A
 * function's own log lines are `Function.<name>.User`, the host's lines about it (`Executed ...`)
 * `Function.<name>`, then `Function`, then `default`; so `"Function.<name>": "Warning"` with
 * `"Function.<name>.User": "Information"` quiets a frequent timer's invocation lines and keeps what it says.
 */
import type { RpcLogLevel } from './core-types';

const LEVELS: Record<string, number> = {
  trace: 0,
  debug: 1,
  information: 2,
  warning: 3,
  error: 4,
  critical: 5,
  none: 6,
};

/** host.json spells levels PascalCase (`Information`); the worker protocol lower-cases them. */
function levelRank(level: string | undefined): number | undefined {
  if (!level) return undefined;
  return LEVELS[level.toLowerCase()];
}

/** Connection-string secrets and URL credentials never reach a log line. */
export function redactSecrets(text: string): string {
  return text
    .replace(/(AccountKey|SharedAccessKey|SharedAccessSignature|AccessKey|Password|pwd)=[^;\s"']*/gi, '$1=***')
    .replace(/(sig)=[^&\s"']*/gi, '$1=***')
    .replace(/(\/\/[^/\s:@]+):[^/\s@]+@/g, '$1:***@');
}

/**
 * Lines written to stdout in one write per event-loop turn: under load, one syscall per log line
 * costs more than the invocation it describes. Flushed synchronously on exit so nothing is lost.
 */
function bufferedStdout(): (line: string) => void {
  let pending: string[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    process.stdout.write(text);
  };
  process.on('exit', flush);
  return (line) => {
    pending.push(line);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

export class HostLog {
  readonly #defaultRank: number;
  /** host.json levels by category, e.g. `Function`, `Function.billingConsumer.User`. */
  readonly #ranks = new Map<string, number>();
  readonly #write: (line: string) => void;

  constructor(logLevel: Record<string, string> = {}, write?: (line: string) => void) {
    let defaultRank: number | undefined;
    // Category names match whatever their case, as in the Functions host; of two spellings, the later wins.
    for (const [key, value] of Object.entries(logLevel)) {
      const rank = levelRank(value);
      const category = key.toLowerCase();
      if (rank === undefined) continue;
      if (category === 'default') defaultRank = rank;
      else if (category === 'function' || category.startsWith('function.')) this.#ranks.set(category, rank);
    }
    this.#defaultRank = defaultRank ?? LEVELS.information!;
    this.#write = write ?? bufferedStdout();
  }

  /** Whether a function's log lines at this level are shown: its own (`user`) or the host's about it. */
  functionEnabled(functionName: string, level: RpcLogLevel, source: 'user' | 'host' = 'user'): boolean {
    const category = `function.${functionName.toLowerCase()}`;
    const min =
      (source === 'user' ? this.#ranks.get(`${category}.user`) : undefined) ?? this.#ranks.get(category) ?? this.#ranks.get('function') ?? this.#defaultRank;
    return (LEVELS[level] ?? LEVELS.information!) >= min;
  }

  hostEnabled(level: RpcLogLevel): boolean {
    return (LEVELS[level] ?? LEVELS.information!) >= this.#defaultRank;
  }

  host(level: RpcLogLevel, message: string): void {
    if (this.hostEnabled(level) || level === 'error' || level === 'critical') this.#line(level, message);
  }

  /** A line the function (or the worker, on its behalf) logged. */
  function(functionName: string, level: RpcLogLevel, message: string): void {
    if (this.functionEnabled(functionName, level)) this.#line(level, `[${functionName}] ${message}`);
  }

  /** The host's line about a function, e.g. why an invocation failed. */
  functionHost(functionName: string, level: RpcLogLevel, message: string): void {
    if (this.functionEnabled(functionName, level, 'host')) this.#line(level, `[${functionName}] ${message}`);
  }

  /** A host line composed from known-safe parts (names, ids, durations): no redaction pass. */
  functionSummary(functionName: string, level: RpcLogLevel, message: string): void {
    if (this.functionEnabled(functionName, level, 'host')) this.#line(level, `[${functionName}] ${message}`, false);
  }

  /** Lines that tools wait for (the ready line, the function list): always printed. */
  always(message: string): void {
    this.#write(`${message}\n`);
  }

  #line(level: RpcLogLevel, message: string, redact = true): void {
    const tag = level === 'information' ? '' : ` ${level.toUpperCase()}`;
    this.#write(`[${new Date().toISOString()}]${tag} ${redact ? redactSecrets(message) : message}\n`);
  }
}
