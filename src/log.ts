/**
 * Structured log lines: one JSON object per line with the ids that tie a flow together
 * (`correlationId`, `orderId`), written through the invocation's logger so they reach App Insights.
 */
import { ensureError, redactSecrets } from './errors';

/** The part of InvocationContext this module needs; tests and activities can pass their own. */
export interface LogSink {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/**
 * The event logged when an order ends in `attention` (a person must act). The deployment's alert
 * rule searches the logs for it (infra/stack.ts): one name for both.
 */
export const ORDER_NEEDS_ATTENTION_EVENT = 'order-needs-attention';

/**
 * The end of the event logged, as `<service>-deadletter-without-order`, when a dead-lettered
 * message names no order: it is kept in the dead-letter archive for a person to look at. The
 * deployment's alert rule searches the logs for it too.
 */
export const DEAD_LETTER_WITHOUT_ORDER_EVENT = 'deadletter-without-order';

/**
 * The end of the event logged, as `<service>-deadletter-sweep-failed`, when the dead-letter sweep
 * cannot read a queue or record a message in it: what Service Bus dead-lettered may then be on no
 * order, and finished orders' messages stay. The deployment's alert rule searches for it.
 */
export const DEAD_LETTER_SWEEP_FAILED_EVENT = 'deadletter-sweep-failed';

export interface LogFields {
  correlationId?: string;
  orderId?: string;
  [field: string]: unknown;
}

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, err: unknown, fields?: LogFields): void;
  /** A logger whose lines all carry these fields too. */
  with(fields: LogFields): Logger;
}

export function createLogger(sink: LogSink, base: LogFields = {}): Logger {
  const line = (level: string, event: string, fields: LogFields): string =>
    redactSecrets(JSON.stringify({ level, event, ...base, ...fields }));
  return {
    info: (event, fields = {}) => sink.info(line('info', event, fields)),
    warn: (event, fields = {}) => sink.warn(line('warn', event, fields)),
    error: (event, err, fields = {}) => {
      const e = ensureError(err);
      sink.error(line('error', event, { ...fields, error: e.message, errorName: e.name }));
    },
    with: (fields) => createLogger(sink, { ...base, ...fields }),
  };
}

/** For code running outside an invocation (start-up work). */
export const processLogger: Logger = createLogger(console);
