/**
 * The actions durable-functions returns from an orchestrator episode (OrchestratorState.actions),
 * flattened to the atomic steps the engine schedules, each with a stable description used for the
 * nondeterminism check.
 */
import { UnsupportedActionError } from './errors';

export enum ActionType {
  CallActivity = 0,
  CallActivityWithRetry = 1,
  CallSubOrchestrator = 2,
  CallSubOrchestratorWithRetry = 3,
  ContinueAsNew = 4,
  CreateTimer = 5,
  WaitForExternalEvent = 6,
  CallEntity = 7,
  CallHttp = 8,
  SignalEntity = 9,
  WhenAny = 11,
  WhenAll = 12,
  LockEntities = 13,
  ReleaseEntities = 14,
}

export interface RetryPolicy {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
  retryTimeoutInMilliseconds?: number;
}

/** One action as the SDK serialises it; only the fields the engine reads. */
export interface SdkAction {
  actionType: ActionType;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  retryOptions?: RetryPolicy;
  fireAt?: string | Date;
  isCanceled?: boolean;
  externalEventName?: string;
  compoundActions?: SdkAction[];
}

/** The state object an orchestrator episode resolves with (or carries in $OutOfProcData$). */
export interface OrchestratorStatePayload {
  isDone: boolean;
  actions: SdkAction[][] | SdkAction[];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
  schemaVersion?: number;
  failureDetails?: {
    ErrorType?: string;
    ErrorMessage?: string;
    StackTrace?: string;
  };
}

export interface Step {
  action: SdkAction;
  /** What the nondeterminism check compares, e.g. `CallActivity 'sendEmail'`. */
  description: string;
  /** Whether the SDK gives this step a sequence number (every scheduled task; not event waits). */
  takesTaskId: boolean;
}

/** Depth-first, in the order the SDK hands out sequence numbers (trackOpenTask walks children the same way). */
export function flattenActions(state: OrchestratorStatePayload): Step[] {
  const steps: Step[] = [];
  const top = Array.isArray(state.actions) ? state.actions : [];
  const walk = (a: SdkAction): void => {
    if (a.actionType === ActionType.WhenAll || a.actionType === ActionType.WhenAny) {
      for (const c of a.compoundActions ?? []) walk(c);
      return;
    }
    steps.push({ action: a, description: describe(a), takesTaskId: takesTaskId(a) });
  };
  for (const entry of top) {
    if (Array.isArray(entry)) entry.forEach(walk);
    else walk(entry as SdkAction);
  }
  return steps;
}

function takesTaskId(a: SdkAction): boolean {
  return a.actionType !== ActionType.WaitForExternalEvent && a.actionType !== ActionType.ContinueAsNew;
}

export function describe(a: SdkAction): string {
  switch (a.actionType) {
    case ActionType.CallActivity:
    case ActionType.CallActivityWithRetry:
    case ActionType.CallSubOrchestrator:
    case ActionType.CallSubOrchestratorWithRetry:
      return `${ActionType[a.actionType]} '${a.functionName}'`;
    case ActionType.WaitForExternalEvent:
      return `WaitForExternalEvent '${a.externalEventName}'`;
    case ActionType.CreateTimer:
      return 'CreateTimer';
    case ActionType.ContinueAsNew:
      return 'ContinueAsNew';
    default:
      return ActionType[a.actionType] ?? `action ${a.actionType}`;
  }
}

/** Rejects the action types this engine does not run, with a message that names the API. */
export function assertSupported(a: SdkAction): void {
  switch (a.actionType) {
    case ActionType.CallEntity:
    case ActionType.SignalEntity:
    case ActionType.LockEntities:
    case ActionType.ReleaseEntities:
      throw new UnsupportedActionError(a.actionType, 'durable entities');
    case ActionType.CallHttp:
      throw new UnsupportedActionError(a.actionType, 'callHttp');
    default:
      if (ActionType[a.actionType] === undefined) throw new UnsupportedActionError(a.actionType, 'an unknown action');
  }
}

/**
 * The value an activity or continue-as-new input stands for. The SDK JSON-encodes string inputs of
 * activities and continueAsNew (Utils.processInput) so the extension can tell strings from JSON;
 * sub-orchestration inputs are passed as they are.
 */
export function decodeProcessedInput(input: unknown): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input);
  } catch {
    return input;
  }
}

export function fireAtMs(a: SdkAction): number {
  const t = a.fireAt instanceof Date ? a.fireAt.getTime() : Date.parse(String(a.fireAt));
  if (!Number.isFinite(t)) throw new UnsupportedActionError(a.actionType, `a timer with an invalid fireAt (${a.fireAt})`);
  return t;
}
