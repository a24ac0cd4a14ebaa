/**
 * Typed errors of the durable engine. Each says whose fault a failure is: the orchestration's code
 * (nondeterminism, unsupported API), the caller of the client API, or the engine's own storage.
 */

/** Base class: everything the engine throws on purpose is a DurableEngineError. */
export class DurableEngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A replay produced actions that differ from the steps recorded in the instance's history. */
export class NondeterminismError extends DurableEngineError {
  constructor(
    readonly instanceId: string,
    readonly stepIndex: number,
    readonly recorded: string | undefined,
    readonly replayed: string | undefined,
  ) {
    super(
      `Non-deterministic orchestration '${instanceId}': step ${stepIndex} was recorded as ` +
        `${recorded ?? '(nothing)'} but the replay produced ${replayed ?? '(nothing)'}. ` +
        'Orchestrator code must make the same calls in the same order on every replay.',
    );
  }
}

/** The orchestration used a durable-functions API that this engine does not run (entities, callHttp). */
export class UnsupportedActionError extends DurableEngineError {
  constructor(readonly actionType: number, readonly description: string) {
    super(`The local durable engine does not support ${description} (action type ${actionType}).`);
  }
}

/** A client request the engine refuses; `status` is the HTTP status the real extension answers with. */
export class ClientRequestError extends DurableEngineError {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The engine was used before start() or after stop(). */
export class EngineStateError extends DurableEngineError {}

/** Turns anything thrown into an Error without losing its message. */
export function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(JSON.stringify(thrown));
  } catch {
    return new Error(String(thrown));
  }
}
