/**
 * History events in the Durable Task Framework's JSON shape (PascalCase), exactly what
 * durable-functions' TaskOrchestrationExecutor replays, plus the friendlier view that the status API
 * returns with `showHistory`.
 */

export enum HistoryEventType {
  ExecutionStarted = 0,
  ExecutionCompleted = 1,
  ExecutionFailed = 2,
  ExecutionTerminated = 3,
  TaskScheduled = 4,
  TaskCompleted = 5,
  TaskFailed = 6,
  SubOrchestrationInstanceCreated = 7,
  SubOrchestrationInstanceCompleted = 8,
  SubOrchestrationInstanceFailed = 9,
  TimerCreated = 10,
  TimerFired = 11,
  OrchestratorStarted = 12,
  OrchestratorCompleted = 13,
  EventSent = 14,
  EventRaised = 15,
  ContinueAsNew = 16,
  GenericEvent = 17,
  HistoryState = 18,
  ExecutionSuspended = 19,
  ExecutionResumed = 20,
}

/** The wire shape of a failure, as the extension reports it and `TaskFailedError` reads it. */
export interface FailureDetails {
  ErrorType: string;
  ErrorMessage: string;
  StackTrace?: string;
  IsNonRetriable?: boolean;
  Properties?: Record<string, unknown>;
  InnerFailure?: FailureDetails;
}

export interface HistoryEvent {
  EventType: HistoryEventType;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: string;
  Name?: string;
  Input?: string;
  Result?: string;
  TaskScheduledId?: number;
  TimerId?: number;
  FireAt?: string;
  InstanceId?: string;
  Reason?: string;
  Details?: string;
  FailureDetails?: FailureDetails;
  OrchestrationStatus?: string;
  Version?: string;
  ParentInstance?: { InstanceId: string; TaskScheduledId: number } | null;
  OrchestrationInstance?: { InstanceId: string; ExecutionId: string };
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** JSON text of a value the way the extension stores inputs and results (undefined -> absent). */
export function toJsonText(value: unknown): string | undefined {
  return value === undefined ? undefined : JSON.stringify(value);
}

export function parseJsonText(text: string | undefined | null): unknown {
  if (text === undefined || text === null || text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Builds one event; EventId -1 is what DTFx uses for events that are not task-scheduling steps. */
export function historyEvent(
  type: HistoryEventType,
  at: number,
  fields: Partial<HistoryEvent> = {},
  eventId = -1,
): HistoryEvent {
  return { EventType: type, EventId: eventId, IsPlayed: false, Timestamp: iso(at), ...fields };
}

/** Failure details for an Error thrown by an activity or orchestrator. */
export function failureDetailsOf(error: Error): FailureDetails {
  // durable-functions' wrapActivityHandler puts a JSON payload in the message when an
  // exception-properties provider is registered; unpack it so Properties survive.
  const packed = tryParsePackedFailure(error.message);
  if (packed) return packed;
  return {
    ErrorType: error.name || 'Error',
    ErrorMessage: error.message,
    StackTrace: error.stack,
    IsNonRetriable: false,
  };
}

function tryParsePackedFailure(message: string): FailureDetails | undefined {
  if (!message.startsWith('{') || !message.includes('"errorType"')) return undefined;
  try {
    const p = JSON.parse(message) as {
      errorType?: string;
      errorMessage?: string;
      stackTrace?: string;
      isNonRetriable?: boolean;
      properties?: Record<string, unknown>;
    };
    if (typeof p.errorType !== 'string') return undefined;
    return {
      ErrorType: p.errorType,
      ErrorMessage: p.errorMessage ?? '',
      StackTrace: p.stackTrace,
      IsNonRetriable: p.isNonRetriable ?? false,
      Properties: p.properties,
    };
  } catch {
    return undefined;
  }
}

const eventTypeName = (t: HistoryEventType): string => HistoryEventType[t] ?? String(t);

/**
 * The status API's history view (what `getStatus(id, {showHistory: true})` shows on Azure): one
 * entry per meaningful event, named types, scheduling merged into completions, replay bookkeeping
 * (OrchestratorStarted/Completed, TaskScheduled, TimerCreated) left out.
 */
export function historyView(events: HistoryEvent[], showOutput: boolean): Record<string, unknown>[] {
  const scheduled = new Map<number, HistoryEvent>();
  const view: Record<string, unknown>[] = [];
  for (const e of events) {
    switch (e.EventType) {
      case HistoryEventType.TaskScheduled:
      case HistoryEventType.SubOrchestrationInstanceCreated:
        scheduled.set(e.EventId, e);
        break;
      case HistoryEventType.ExecutionStarted:
        view.push({
          EventType: 'ExecutionStarted',
          FunctionName: e.Name,
          Timestamp: e.Timestamp,
          ...(showOutput ? { Input: parseJsonText(e.Input) } : {}),
        });
        break;
      case HistoryEventType.TaskCompleted:
      case HistoryEventType.SubOrchestrationInstanceCompleted:
      case HistoryEventType.TaskFailed:
      case HistoryEventType.SubOrchestrationInstanceFailed: {
        const s = scheduled.get(e.TaskScheduledId ?? -2);
        const failed =
          e.EventType === HistoryEventType.TaskFailed || e.EventType === HistoryEventType.SubOrchestrationInstanceFailed;
        view.push({
          EventType: eventTypeName(e.EventType),
          FunctionName: s?.Name,
          ...(s?.InstanceId ? { InstanceId: s.InstanceId } : {}),
          ScheduledTime: s?.Timestamp,
          Timestamp: e.Timestamp,
          ...(failed ? { Reason: e.Reason, Details: e.Details } : {}),
          ...(showOutput && !failed ? { Result: parseJsonText(e.Result) } : {}),
        });
        break;
      }
      case HistoryEventType.TimerFired:
        view.push({ EventType: 'TimerFired', FireAt: e.FireAt, Timestamp: e.Timestamp });
        break;
      case HistoryEventType.EventRaised:
        view.push({
          EventType: 'EventRaised',
          Name: e.Name,
          Timestamp: e.Timestamp,
          ...(showOutput ? { Input: parseJsonText(e.Input) } : {}),
        });
        break;
      case HistoryEventType.ExecutionCompleted:
        view.push({
          EventType: 'ExecutionCompleted',
          OrchestrationStatus: e.OrchestrationStatus,
          Timestamp: e.Timestamp,
          ...(showOutput ? { Result: parseJsonText(e.Result) } : {}),
          ...(e.FailureDetails ? { FailureDetails: e.FailureDetails } : {}),
        });
        break;
      case HistoryEventType.ExecutionTerminated:
      case HistoryEventType.ExecutionSuspended:
      case HistoryEventType.ExecutionResumed:
        view.push({ EventType: eventTypeName(e.EventType), Timestamp: e.Timestamp, Reason: parseJsonText(e.Input) });
        break;
      default:
        break;
    }
  }
  return view;
}
