/**
 * Local durable task engine: runs the real durable-functions orchestrations and activities outside
 * Azure, with state in SQLite. The local Functions host plugs it in through DurableInvoker and
 * handleHttp.
 */
export { DurableEngine } from './engine';
export type { DurableEngineOptions, DurableInvoker, DurableLog } from './engine';
export { SystemClock, VirtualClock } from './clock';
export type { EngineClock } from './clock';
export {
  ClientRequestError,
  DurableEngineError,
  EngineStateError,
  NondeterminismError,
  UnsupportedActionError,
} from './errors';
export type { RuntimeStatus } from './store';
