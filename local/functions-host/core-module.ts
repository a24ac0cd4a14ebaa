/**
 * Provides `@azure/functions-core`, the module the Azure Functions Node.js worker builds into the
 * process, so an unmodified app's `@azure/functions` registers its functions here instead of
 * falling into "test mode". Mirrors the worker's setupCoreModule: a Module.prototype.require
 * wrapper installed before the app is loaded.
 */
import Module = require('node:module');
import type {
  FunctionCallback,
  FunctionMetadata,
  HookCallback,
  ProgrammingModel,
  RpcBindingInfo,
  RpcLogCategory,
  RpcLogLevel,
} from './core-types';

export const CORE_MODULE_NAME = '@azure/functions-core';
/** Reported as the worker version; the library only logs it. */
export const CORE_VERSION = '3.12.0-local';
/** Reported as the host version; the library gates HTTP streaming on `log` existing, not on this. */
export const HOST_VERSION = '4.1037.0-local';

export interface RegisteredFunction {
  name: string;
  metadata: FunctionMetadata;
  callback: FunctionCallback;
  triggerName: string;
  trigger: RpcBindingInfo;
}

export class RegistrationError extends Error {
  override name = 'RegistrationError';
}

/** The same shape as the worker's Disposable (the library and apps may construct it). */
export class Disposable {
  static from(...likes: { dispose: () => unknown }[]): Disposable {
    return new Disposable(() => likes.forEach((d) => d.dispose()));
  }
  #callOnDispose?: () => unknown;
  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }
  dispose(): unknown {
    const f = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return f?.();
  }
}

export type HookName = 'preInvocation' | 'postInvocation' | 'appStart' | 'appTerminate' | 'log';

function isTrigger(type: string | null | undefined): boolean {
  return !!type && /trigger$/i.test(type);
}

/** What the app registered through the core module: functions, programming model, hooks. */
export class FunctionsCore {
  readonly functions = new Map<string, RegisteredFunction>();
  programmingModel: ProgrammingModel | undefined;
  readonly hooks = new Map<string, HookCallback[]>();
  readonly appHookData: Record<string, unknown> = {};
  /** The hookData appStart and appTerminate hooks share (the worker's app-level-only hook data). */
  readonly appLevelHookData: Record<string, unknown> = {};
  startupFinished = false;
  /** Logs the library writes outside an invocation (`coreApi.log`). */
  onLog: (level: RpcLogLevel, category: RpcLogCategory, message: string) => void = () => {};

  /** The object `require('@azure/functions-core')` returns. */
  readonly api = {
    version: CORE_VERSION,
    hostVersion: HOST_VERSION,
    registerFunction: (metadata: FunctionMetadata, callback: FunctionCallback): Disposable =>
      this.registerFunction(metadata, callback),
    registerHook: (hookName: string, callback: HookCallback): Disposable => this.registerHook(hookName, callback),
    setProgrammingModel: (model: ProgrammingModel): void => {
      this.programmingModel = model;
    },
    getProgrammingModel: (): ProgrammingModel | undefined => this.programmingModel,
    log: (level: RpcLogLevel, category: RpcLogCategory, message: string): void => this.onLog(level, category, message),
    Disposable,
  };

  registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): Disposable {
    if (this.startupFinished) throw new RegistrationError('A function can only be registered during app startup.');
    const name = metadata?.name;
    if (!name) throw new RegistrationError('registerFunction: metadata.name is required');
    if (this.functions.has(name)) throw new RegistrationError(`A function named "${name}" is already registered.`);
    const entry = Object.entries(metadata.bindings ?? {}).find(([, b]) => isTrigger(b.type));
    if (!entry) throw new RegistrationError(`Function "${name}" has no trigger binding.`);
    const [triggerName, trigger] = entry;
    this.functions.set(name, { name, metadata, callback, triggerName, trigger });
    return new Disposable(() => {
      if (this.startupFinished) throw new RegistrationError('A function can only be disposed during app startup.');
      this.functions.delete(name);
    });
  }

  registerHook(hookName: string, callback: HookCallback): Disposable {
    const list = this.hooks.get(hookName) ?? [];
    list.push(callback);
    this.hooks.set(hookName, list);
    return new Disposable(() => {
      const current = this.hooks.get(hookName) ?? [];
      this.hooks.set(
        hookName,
        current.filter((c) => c !== callback),
      );
    });
  }

  hooksFor(hookName: HookName): HookCallback[] {
    return this.hooks.get(hookName) ?? [];
  }

  /**
   * Makes `require('@azure/functions-core')` return this core, process-wide. Must run before the
   * app's `@azure/functions` first registers anything (it looks the module up lazily, once).
   */
  install(): void {
    const core = this.api;
    const proto = Module.prototype as unknown as { require: (id: string) => unknown };
    const original = proto.require;
    proto.require = new Proxy(original, {
      apply(target, thisArg, args: unknown[]) {
        if (args[0] === CORE_MODULE_NAME) return core;
        return Reflect.apply(target, thisArg, args);
      },
    });
  }
}
