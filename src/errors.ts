/**
 * Errors say whose fault a failure is. A caller's mistake (validation, business rule) is answered
 * or recorded; a system fault (transient dependency trouble, bad configuration) is thrown so the
 * platform retries. `ensureError` turns anything thrown into an Error with credentials removed.
 */

export type ErrorKind = 'validation' | 'business' | 'conflict' | 'notFound' | 'transient' | 'configuration' | 'poison';

export abstract class OrderSagaError extends Error {
  abstract readonly kind: ErrorKind;
  /** True when the caller (client, message) is at fault; false for system faults. */
  abstract readonly isUserError: boolean;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    // Logs and tests read the class name; every subclass gets its own without repeating it.
    this.name = new.target.name;
  }
}

export interface FieldProblem {
  /** JSON-pointer-like path of the bad field, e.g. `items/0/quantity`. */
  path: string;
  message: string;
}

/** The input is malformed: answered 400 with every bad field. */
export class ValidationError extends OrderSagaError {
  readonly kind = 'validation';
  readonly isUserError = true;
  constructor(message: string, readonly problems: FieldProblem[] = []) {
    super(message);
  }
}

/** The input is well-formed but breaks a rule (unknown SKU, out of stock). Recorded, not retried. */
export class BusinessRuleError extends OrderSagaError {
  readonly kind = 'business';
  readonly isUserError = true;
  constructor(message: string, readonly problems: FieldProblem[] = []) {
    super(message);
  }
}

/** The request contradicts earlier state, e.g. an Idempotency-Key reused with another body. */
export class ConflictError extends OrderSagaError {
  readonly kind = 'conflict';
  readonly isUserError = true;
}

export class NotFoundError extends OrderSagaError {
  readonly kind = 'notFound';
  readonly isUserError = true;
}

/** A dependency failed in a way a retry can fix. Thrown so Service Bus (or the client) retries. */
export class TransientError extends OrderSagaError {
  readonly kind = 'transient';
  readonly isUserError = false;
}

/**
 * The order was written, but publishing its event or starting its monitor did not finish in time.
 * The caller may retry; the answer names the order so that a caller without an Idempotency-Key
 * can follow it instead of placing it again.
 */
export class OrderRecordedError extends TransientError {
  constructor(
    message: string,
    readonly orderId: string,
    readonly correlationId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A message that can never be processed (bad JSON, wrong schema, unknown type). Thrown on every
 * delivery so Service Bus dead-letters it after maxDeliveryCount; Node functions cannot
 * dead-letter explicitly.
 */
export class PoisonMessageError extends OrderSagaError {
  readonly kind = 'poison';
  readonly isUserError = true;
}

export class ConfigurationError extends OrderSagaError {
  readonly kind = 'configuration';
  readonly isUserError = false;
}

const SECRET_PATTERNS: [RegExp, string][] = [
  [/(AccountKey|SharedAccessKey|SharedAccessSignature|sig|key|password|pwd)=([^;&\s"']+)/gi, '$1=[redacted]'],
  [/([a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+:[^/\s@]+@/gi, '$1[redacted]@'],
  [/(Authorization["']?\s*[:=]\s*["']?)[^"',\s]+(\s[^"',\s]+)?/gi, '$1[redacted]'],
];

/** Removes connection-string keys, SAS signatures and URL credentials from a text. */
export function redactSecrets(text: string): string {
  return SECRET_PATTERNS.reduce((t, [pattern, replacement]) => t.replace(pattern, replacement), text);
}

/** Anything thrown, as an Error whose message and stack carry no credentials. */
export function ensureError(err: unknown): Error {
  let error: Error;
  if (err instanceof Error) {
    error = err;
  } else {
    let text: string;
    try {
      text = typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
    } catch {
      text = String(err);
    }
    error = new Error(`non-error thrown: ${text}`);
  }
  try {
    error.message = redactSecrets(error.message);
    if (error.stack) error.stack = redactSecrets(error.stack);
  } catch {
    // Frozen or exotic errors: keep them as they are rather than fail while reporting a failure.
  }
  return error;
}

/** HTTP status of a Cosmos/REST error, when it has one. */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}
