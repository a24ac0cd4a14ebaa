/**
 * Invokes a registered function the way the Node.js worker's InvocationHandler does: the app's own
 * programming model builds the arguments from RPC typed data, runs the pre/post invocation hooks
 * and converts the result back, so every conversion the library does on Azure happens here too.
 */
import { randomUUID } from 'node:crypto';
import type { FunctionsCore, RegisteredFunction } from './core-module';
import type {
  CoreInvocationContext,
  InvocationState,
  RpcInvocationRequest,
  RpcInvocationResponse,
  RpcLogCategory,
  RpcLogLevel,
  RpcParameterBinding,
  RpcTypedData,
} from './core-types';
import type { HostLog } from './host-log';

export interface InvocationRequest {
  inputData: RpcParameterBinding[];
  triggerMetadata?: Record<string, RpcTypedData>;
  retryContext?: RpcInvocationRequest['retryContext'];
  /** Shown in the invocation log line, e.g. `HTTP GET /api/x`, `Timer fired`. */
  reason?: string;
}

export class HostConfigurationError extends Error {
  override name = 'HostConfigurationError';
}

/** The invocation ran past host.json `functionTimeout`; like the host, it counts as failed. */
export class FunctionTimeoutError extends Error {
  override name = 'FunctionTimeoutError';
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

/** Input bindings the host fills for every invocation of a function (e.g. the durable client). */
export type ExtraInputs = (fn: RegisteredFunction) => RpcParameterBinding[];
/** Output bindings the host carries out after a successful invocation (e.g. Service Bus sends). */
export type OutputSink = (fn: RegisteredFunction, response: RpcInvocationResponse) => Promise<void>;

export class FunctionInvoker {
  #inFlight = 0;
  extraInputs: ExtraInputs | undefined;
  outputSink: OutputSink | undefined;
  /** host.json `functionTimeout` in ms (undefined: no limit). */
  timeoutMs: number | undefined;
  #idleWaiters: (() => void)[] = [];

  constructor(
    private readonly core: FunctionsCore,
    private readonly log: HostLog,
  ) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Resolves when no invocation is running (or at once if none is). */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Runs one invocation. Resolves with the response the worker would send to the host; rejects
   * with the function's own error (unchanged, so callers such as the durable engine can read it).
   */
  async invoke(fn: RegisteredFunction, request: InvocationRequest): Promise<RpcInvocationResponse> {
    const model = this.core.programmingModel;
    if (!model) throw new HostConfigurationError('no programming model registered by the app');
    const invocationId = randomUUID();
    const started = performance.now();
    const log = this.log;
    const logHooks = this.core.hooksFor('log');
    let invocationContext: unknown;
    const coreCtx: CoreInvocationContext = {
      invocationId,
      request: {
        invocationId,
        functionId: fn.name,
        inputData: this.extraInputs ? [...request.inputData, ...this.extraInputs(fn)] : request.inputData,
        triggerMetadata: request.triggerMetadata ?? {},
        retryContext: request.retryContext ?? null,
        traceContext: { traceParent: undefined, traceState: undefined, attributes: {} },
      },
      metadata: this.#metadata(fn),
      state: undefined,
      log(level: RpcLogLevel, category: RpcLogCategory, message: string) {
        let text = message;
        let lvl = level;
        if (logHooks.length > 0 && category === 'user') {
          const hookCtx = { hookData: {}, appHookData: {}, invocationContext, category, level: lvl, message: text };
          for (const hook of logHooks) hook(hookCtx);
          text = hookCtx.message;
          lvl = hookCtx.level;
        }
        if (category === 'system' && level === 'debug') return;
        log.function(fn.name, lvl, text);
      },
    };

    this.#inFlight++;
    let outcome = 'Succeeded';
    try {
      const invocationModel = await model.getInvocationModel(coreCtx);
      const args = await invocationModel.getArguments();
      invocationContext = args.context;
      let inputs = args.inputs;
      let callback = fn.callback;
      const hookData: Record<string, unknown> = {};
      const appHookData = this.core.appHookData;

      const preHooks = this.core.hooksFor('preInvocation');
      if (preHooks.length > 0) {
        const pre = { hookData, appHookData, invocationContext: args.context, inputs, functionCallback: callback };
        await this.#runHooks(coreCtx, 'preInvocationHooks', preHooks, pre);
        inputs = pre.inputs;
        callback = pre.functionCallback;
      }

      let result: unknown;
      let error: unknown;
      // `throw undefined` is still a failure: track that something was thrown, not just what.
      let failed = false;
      coreCtx.state = 'invocation';
      try {
        result = await this.#withinTimeout(fn, invocationModel.invokeFunction(args.context, inputs, callback));
      } catch (err) {
        error = err;
        failed = true;
      } finally {
        coreCtx.state = undefined;
      }

      const postHooks = this.core.hooksFor('postInvocation');
      if (postHooks.length > 0) {
        const post = { hookData, appHookData, invocationContext: args.context, inputs, result, error };
        await this.#runHooks(coreCtx, 'postInvocationHooks', postHooks, post);
        result = post.result;
        // A hook may turn a failure into a success by clearing the error, or fail a success.
        if (post.error !== error) failed = post.error !== undefined && post.error !== null;
        error = post.error;
      }

      if (failed) throw error ?? new Error(`function '${fn.name}' threw ${String(error)}`);
      const response = await invocationModel.getResponse(args.context, result);
      if (this.outputSink) await this.outputSink(fn, response);
      return response;
    } catch (err) {
      outcome = 'Failed';
      this.log.functionHost(fn.name, 'error', `Exception while executing '${fn.name}' (Id=${invocationId}): ${errorText(err)}`);
      throw err;
    } finally {
      const ms = Math.round(performance.now() - started);
      const reason = request.reason ? `, Reason='${request.reason}'` : '';
      this.log.functionSummary(fn.name, 'information', `Executed '${fn.name}' (${outcome}, Id=${invocationId}, Duration=${ms}ms${reason})`);
      if (--this.#inFlight === 0) {
        const waiters = this.#idleWaiters;
        this.#idleWaiters = [];
        waiters.forEach((w) => w());
      }
    }
  }

  /**
   * JavaScript cannot stop a running function: past the timeout the invocation is reported failed
   * (HTTP 500, message abandoned) while the function's own promise is left to settle.
   */
  #withinTimeout<T>(fn: RegisteredFunction, work: Promise<T>): Promise<T> {
    const ms = this.timeoutMs;
    if (ms === undefined) return work;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new FunctionTimeoutError(`Timeout value of ${ms} ms (host.json functionTimeout) was exceeded by function '${fn.name}'`)),
        ms,
      );
    });
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  readonly #metadataCache = new WeakMap<RegisteredFunction, CoreInvocationContext['metadata']>();

  /** What the worker hands the library as RpcFunctionMetadata: computed once per function. */
  #metadata(fn: RegisteredFunction): CoreInvocationContext['metadata'] {
    let m = this.#metadataCache.get(fn);
    if (!m) {
      m = { ...fn.metadata, directory: process.cwd(), scriptFile: 'n/a' };
      this.#metadataCache.set(fn, m);
    }
    return m;
  }

  async #runHooks(
    coreCtx: CoreInvocationContext,
    state: InvocationState,
    hooks: ((ctx: unknown) => unknown)[],
    hookCtx: unknown,
  ): Promise<void> {
    coreCtx.state = state;
    try {
      for (const hook of hooks) await hook(hookCtx);
    } finally {
      coreCtx.state = undefined;
    }
  }
}
