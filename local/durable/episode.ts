/**
 * One orchestration episode: pick the inbox messages to deliver, replay the whole history plus the
 * new events through the registered orchestrator, check the replay against the recorded steps,
 * and turn the new actions into history events, work items and timers. The result is a plan that
 * the engine commits in one transaction.
 *
 * Task ids. durable-functions numbers tasks itself (a sequence counter bumped as tasks are tracked)
 * and matches completions by that number; the extension must use the same numbers. New actions get
 * numbers in the order they appear in the returned action tree. Retries and long timers are the
 * exception: the SDK numbers their follow-up tasks (retry timer, next attempt, next timer segment)
 * while it processes the event that triggers them, before user code resumes. So an episode
 * delivers at most one such triggering event, and delivers it first: then its follow-up gets the
 * next number and the new actions the ones after it, with no guessing.
 */
import { randomUUID } from 'node:crypto';
import {
  ActionType,
  assertSupported,
  decodeProcessedInput,
  fireAtMs,
  flattenActions,
  type OrchestratorStatePayload,
  type RetryPolicy,
  type SdkAction,
  type Step,
} from './actions';
import { asError, DurableEngineError, NondeterminismError } from './errors';
import {
  failureDetailsOf,
  historyEvent,
  HistoryEventType,
  iso,
  toJsonText,
  type FailureDetails,
  type HistoryEvent,
} from './history';
import { retryDelayMs, retryExpired } from './retry';
import { isTerminal, type ActivityRow, type InstanceRow, type MessageRow } from './store';

/** The SDK splits timers longer than this into segments (the extension's defaults for Azure Storage). */
export const MAXIMUM_SHORT_TIMER_MS = 6 * 24 * 3600_000;
export const LONG_TIMER_INTERVAL_MS = 3 * 24 * 3600_000;
const MAXIMUM_SHORT_TIMER = '6.00:00:00';
const LONG_TIMER_INTERVAL = '3.00:00:00';

type TrackedTask =
  | { kind: 'attempt'; group: number }
  | { kind: 'retry-timer'; group: number }
  | { kind: 'long-timer'; finalAt: number };

export interface RetryGroup {
  target: 'activity' | 'orchestration';
  name: string;
  /** JSON text of the input each attempt gets. */
  input: string | null;
  policy: RetryPolicy;
  attempts: number;
  firstAt: number;
  childInstanceId?: string;
  lastFailure?: TaskFailure;
  /** Task ids of every attempt, in order (rewind re-runs the last one). */
  attemptIds: number[];
  /** The retry timer after the last failed attempt; set once the group has failed for good. */
  finalTimerId?: number;
  /** retryTimeout had passed when an attempt failed: no more real attempts. */
  expired?: boolean;
}

interface TaskFailure {
  Reason: string;
  Details?: string;
  FailureDetails?: FailureDetails;
}

/** The engine's bookkeeping for the current execution, stored with the instance. */
export interface ExecutionRuntime {
  nextSeq: number;
  /** Descriptions of every step the orchestrator has taken, for the nondeterminism check. */
  steps: string[];
  tasks: Record<string, TrackedTask>;
  groups: Record<string, RetryGroup>;
}

export const emptyRuntime = (): ExecutionRuntime => ({ nextSeq: 0, steps: [], tasks: {}, groups: {} });

/** The parent a sub-orchestration reports back to: its instance, execution and the task id awaiting it. */
export interface ParentTask {
  instanceId: string;
  executionId: string;
  taskId: number;
}

/** A Pending instance row, as written when an orchestration (or a sub-orchestration) is started. */
export function newInstanceRow(
  id: string,
  name: string,
  executionId: string,
  inputJson: string | null,
  now: number,
  parent?: ParentTask,
): InstanceRow {
  return {
    instance_id: id,
    name,
    execution_id: executionId,
    status: 'Pending',
    input: inputJson,
    output: null,
    custom_status: null,
    failure: null,
    created_at: now,
    updated_at: now,
    completed_at: null,
    parent_instance_id: parent?.instanceId ?? null,
    parent_execution_id: parent?.executionId ?? null,
    parent_task_id: parent?.taskId ?? null,
    runtime: JSON.stringify(emptyRuntime()),
  };
}

export interface OrchestratorRunner {
  invokeOrchestrator(name: string, payload: unknown): Promise<unknown>;
  hasOrchestrator(name: string): boolean;
  hasActivity(name: string): boolean;
}

export interface EpisodeInput {
  instance: InstanceRow;
  /** Current execution's history, as stored JSON texts. */
  history: string[];
  messages: MessageRow[];
  now: number;
  runner: OrchestratorRunner;
  /** Looks up another instance (sub-orchestration ids). */
  getInstance(id: string): InstanceRow | undefined;
}

export type NewMessage = Omit<MessageRow, 'id'>;
export type NewActivity = Omit<ActivityRow, 'id'>;

export interface EpisodePlan {
  instance: InstanceRow;
  /** When true the stored history is replaced by `events`; otherwise `events` are appended. */
  resetHistory: boolean;
  events: HistoryEvent[];
  consumed: number[];
  messages: NewMessage[];
  activities: NewActivity[];
  /** Sub-orchestration instances to create (their history starts empty). */
  children: InstanceRow[];
  /** The execution ended: drop timers and results still addressed to it. */
  endedExecution?: string;
  /** Some due messages were held back (one triggering event per episode): run again. */
  moreWork: boolean;
  /** False when only messages were dropped (finished instance): the instance row is left as it is. */
  instanceChanged: boolean;
  /** For the engine's log and tests. */
  orchestratorRan: boolean;
}

const OUT_OF_PROC_MARKER = '$OutOfProcData$:';

export async function runEpisode(input: EpisodeInput): Promise<EpisodePlan> {
  return new Episode(input).run();
}

class Episode {
  private readonly inst: InstanceRow;
  private readonly now: number;
  private runtime: ExecutionRuntime;
  private readonly plan: EpisodePlan;
  /** Events recorded before OrchestratorStarted (suspend/resume markers). */
  private readonly markers: HistoryEvent[] = [];

  constructor(private readonly input: EpisodeInput) {
    this.inst = { ...input.instance };
    this.now = input.now;
    this.runtime = JSON.parse(this.inst.runtime) as ExecutionRuntime;
    this.plan = {
      instance: this.inst,
      resetHistory: false,
      events: [],
      consumed: [],
      messages: [],
      activities: [],
      children: [],
      moreWork: false,
      instanceChanged: true,
      orchestratorRan: false,
    };
  }

  async run(): Promise<EpisodePlan> {
    const { messages } = this.input;
    if (isTerminal(this.inst.status)) {
      // Late results, fired timers and events for a finished instance go nowhere.
      this.plan.consumed = messages.map((m) => m.id);
      this.plan.instanceChanged = false;
      return this.plan;
    }
    const live: MessageRow[] = [];
    for (const m of messages) {
      if (m.execution_id !== null && m.execution_id !== this.inst.execution_id) this.plan.consumed.push(m.id);
      else live.push(m);
    }

    // Management requests first, in arrival order; terminate wins over everything.
    const terminate = live.find((m) => m.kind === 'terminate');
    if (terminate) {
      this.plan.consumed.push(...live.map((m) => m.id));
      this.terminate(JSON.parse(terminate.payload).reason as string | undefined);
      return this.plan;
    }
    let woken = false;
    for (const m of live) {
      if (m.kind === 'suspend' || m.kind === 'resume' || m.kind === 'wake') {
        this.plan.consumed.push(m.id);
        this.control(m);
        woken = true;
      }
    }
    const deliverable = live.filter((m) => m.kind === 'start' || m.kind === 'event' || m.kind === 'task');
    if (this.inst.status === 'Suspended') {
      this.finishWithoutReplay(woken);
      return this.plan;
    }

    const start = deliverable.find((m) => m.kind === 'start');
    if (!start && this.input.history.length === 0) {
      // Not started yet (its start message is still in flight); nothing can be delivered.
      this.finishWithoutReplay(woken);
      return this.plan;
    }
    const batch = this.pickBatch(deliverable.filter((m) => m !== start));
    this.plan.moreWork = batch.length < deliverable.length - (start ? 1 : 0);
    if (!start && batch.length === 0 && !woken) {
      this.finishWithoutReplay(false);
      return this.plan;
    }
    this.plan.consumed.push(...(start ? [start.id] : []), ...batch.map((m) => m.id));
    await this.replay(start, batch);
    return this.plan;
  }

  // ---------------------------------------------------------------- batch selection

  /** Which task the SDK would hand a new sequence number to while processing this message. */
  private triggersFollowUp(m: MessageRow): boolean {
    if (m.kind !== 'task' || m.task_id === null) return false;
    const tracked = this.runtime.tasks[m.task_id];
    if (!tracked) return false;
    const type = (JSON.parse(m.payload) as HistoryEvent).EventType;
    switch (tracked.kind) {
      case 'attempt':
        return type === HistoryEventType.TaskFailed || type === HistoryEventType.SubOrchestrationInstanceFailed;
      case 'retry-timer': {
        const g = this.runtime.groups[tracked.group];
        return !!g && g.attempts < g.policy.maxNumberOfAttempts;
      }
      case 'long-timer':
        return tracked.finalAt > this.now;
    }
  }

  private pickBatch(candidates: MessageRow[]): MessageRow[] {
    const trigger = candidates.find((m) => this.triggersFollowUp(m));
    const rest = candidates.filter((m) => m !== trigger && !this.triggersFollowUp(m));
    return trigger ? [trigger, ...rest] : rest;
  }

  // ---------------------------------------------------------------- management

  private control(m: MessageRow): void {
    const reason = (JSON.parse(m.payload) as { reason?: string }).reason;
    if (m.kind === 'suspend' && (this.inst.status === 'Running' || this.inst.status === 'Pending')) {
      this.inst.status = 'Suspended';
      this.markers.push(historyEvent(HistoryEventType.ExecutionSuspended, this.now, { Input: toJsonText(reason ?? null) }));
    } else if (m.kind === 'resume' && this.inst.status === 'Suspended') {
      this.inst.status = this.input.history.length > 0 ? 'Running' : 'Pending';
      this.markers.push(historyEvent(HistoryEventType.ExecutionResumed, this.now, { Input: toJsonText(reason ?? null) }));
    }
    this.inst.updated_at = this.now;
  }

  private finishWithoutReplay(changed: boolean): void {
    this.plan.events = this.markers.map(played);
    if (changed) this.inst.updated_at = this.now;
  }

  private terminate(reason: string | undefined): void {
    const output = reason ?? null;
    this.inst.status = 'Terminated';
    this.inst.output = JSON.stringify(output);
    this.inst.updated_at = this.now;
    this.inst.completed_at = this.now;
    this.plan.events = [historyEvent(HistoryEventType.ExecutionTerminated, this.now, { Input: toJsonText(output) })].map(played);
    this.plan.endedExecution = this.inst.execution_id;
    this.notifyParent({
      Reason: `Orchestration '${this.inst.instance_id}' was terminated: ${reason ?? ''}`,
      FailureDetails: { ErrorType: 'OrchestrationTerminated', ErrorMessage: `terminated: ${reason ?? ''}` },
    });
  }

  // ---------------------------------------------------------------- replay

  private async replay(start: MessageRow | undefined, batch: MessageRow[]): Promise<void> {
    const newEvents: HistoryEvent[] = [...this.markers];
    let history: string[] = this.input.history;
    if (start) {
      // A new execution (first start or continue-as-new): fresh history and bookkeeping.
      history = [];
      newEvents.length = 0;
      this.runtime = emptyRuntime();
      this.plan.resetHistory = true;
      this.inst.status = 'Running';
    } else if (this.inst.status === 'Pending') {
      this.inst.status = 'Running';
    }
    newEvents.push(historyEvent(HistoryEventType.OrchestratorStarted, this.now));
    if (start) newEvents.push(JSON.parse(start.payload) as HistoryEvent);
    for (const m of batch) newEvents.push(JSON.parse(m.payload) as HistoryEvent);

    const old = history.length ? (JSON.parse(`[${history.join(',')}]`) as HistoryEvent[]) : [];
    const payload = {
      history: [...old, ...newEvents.map((e) => ({ ...e, IsPlayed: false }))],
      input: this.inst.input === null ? undefined : JSON.parse(this.inst.input),
      instanceId: this.inst.instance_id,
      isReplaying: old.length > 0,
      parentInstanceId: this.inst.parent_instance_id ?? undefined,
      upperSchemaVersion: 1,
      upperSchemaVersionNew: 3,
      longRunningTimerIntervalDuration: LONG_TIMER_INTERVAL,
      maximumShortTimerDuration: MAXIMUM_SHORT_TIMER,
      defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
    };

    this.plan.orchestratorRan = true;
    let state: OrchestratorStatePayload | undefined;
    let failure: { message: string; details: FailureDetails } | undefined;
    try {
      const result = await this.input.runner.invokeOrchestrator(this.inst.name, payload);
      if (!isOrchestratorState(result)) throw new DurableEngineError('The orchestrator returned no orchestration state.');
      state = result;
    } catch (thrown) {
      ({ state, failure } = parseOrchestratorFailure(thrown));
    }

    this.plan.events = newEvents.map(played);
    const scheduled: HistoryEvent[] = [];
    try {
      const steps = state ? flattenActions(state) : [];
      this.checkDeterminism(steps, failure !== undefined);
      if (state?.customStatus !== undefined && state.customStatus !== null) checkCustomStatusSize(state.customStatus);
      if (failure) {
        this.fail(failure.message, failure.details);
        return;
      }
      const s = state as OrchestratorStatePayload;
      if (batch.length > 0 && this.triggersFollowUpAfterReplay(batch[0])) this.followUp(batch[0], scheduled);
      for (const m of batch.slice(1)) this.settle(m);
      if (batch.length > 0) this.settle(batch[0]);
      const fresh = steps.slice(this.runtime.steps.length);
      for (const step of fresh) assertSupported(step.action);
      let continueAsNew: SdkAction | undefined;
      for (const step of fresh) {
        this.runtime.steps.push(step.description);
        if (step.action.actionType === ActionType.ContinueAsNew) continueAsNew = step.action;
        if (step.takesTaskId) this.schedule(step, this.runtime.nextSeq++, scheduled);
      }
      this.inst.custom_status = s.customStatus === undefined ? null : JSON.stringify(s.customStatus);
      this.plan.events.push(...scheduled.map(played));
      if (s.isDone && continueAsNew) this.continueAsNew(continueAsNew);
      else if (s.isDone) this.complete(s.output);
      else this.plan.events.push(played(historyEvent(HistoryEventType.OrchestratorCompleted, this.now)));
      this.inst.runtime = JSON.stringify(this.runtime);
      this.inst.updated_at = this.now;
    } catch (err) {
      const e = asError(err);
      this.plan.activities = [];
      this.plan.children = [];
      this.plan.messages = [];
      this.fail(e.message, failureDetailsOf(e));
    }
  }

  private checkDeterminism(steps: Step[], orchestratorFailed: boolean): void {
    const recorded = this.runtime.steps;
    const n = Math.min(steps.length, recorded.length);
    for (let i = 0; i < n; i++) {
      if (steps[i].description !== recorded[i]) {
        throw new NondeterminismError(this.inst.instance_id, i, recorded[i], steps[i].description);
      }
    }
    if (steps.length < recorded.length && !orchestratorFailed) {
      throw new NondeterminismError(this.inst.instance_id, steps.length, recorded[steps.length], undefined);
    }
  }

  /** Same rule as pickBatch, evaluated on the bookkeeping as it was when the batch was picked. */
  private triggersFollowUpAfterReplay(m: MessageRow): boolean {
    return this.triggersFollowUp(m);
  }

  /** The follow-up task the SDK numbered while processing the triggering event. */
  private followUp(m: MessageRow, scheduled: HistoryEvent[]): void {
    const id = this.runtime.nextSeq++;
    const tracked = this.runtime.tasks[m.task_id as number];
    delete this.runtime.tasks[m.task_id as number];
    if (tracked.kind === 'attempt') {
      const g = this.runtime.groups[tracked.group];
      const e = JSON.parse(m.payload) as HistoryEvent;
      g.lastFailure = { Reason: e.Reason ?? 'failed', Details: e.Details, FailureDetails: e.FailureDetails };
      // DTFx checks retryTimeout when an attempt fails. Past it the SDK still counts its attempts;
      // the remaining ones fail at once without running (see activity()).
      if (retryExpired(g.policy, g.firstAt, this.now)) g.expired = true;
      const last = g.attempts >= g.policy.maxNumberOfAttempts || g.expired === true;
      // DTFx's RetryInterceptor waits out the backoff after the last failed attempt too (its loop
      // creates the retry timer before it checks the attempt count), so the failure reaches the
      // orchestrator one more backoff later; the SDK counts on that timer. Past retryTimeout
      // DTFx stops without a timer: that failure surfaces at once.
      const fireAt = g.expired === true ? this.now : this.now + retryDelayMs(g.policy, g.attempts);
      if (last) g.finalTimerId = id;
      this.runtime.tasks[id] = { kind: 'retry-timer', group: tracked.group };
      this.timer(id, fireAt, scheduled);
    } else if (tracked.kind === 'retry-timer') {
      const g = this.runtime.groups[tracked.group];
      g.attempts++;
      g.attemptIds.push(id);
      this.runtime.tasks[id] = { kind: 'attempt', group: tracked.group };
      if (g.target === 'activity') this.activity(id, g.name, g.input, scheduled);
      else this.subOrchestration(id, g.name, g.input, g.childInstanceId, scheduled);
    } else {
      const next = tracked.finalAt - this.now > MAXIMUM_SHORT_TIMER_MS ? this.now + LONG_TIMER_INTERVAL_MS : tracked.finalAt;
      if (next < tracked.finalAt) this.runtime.tasks[id] = { kind: 'long-timer', finalAt: tracked.finalAt };
      this.timer(id, next, scheduled);
    }
  }

  /** Forgets bookkeeping of tasks that are now finished. */
  private settle(m: MessageRow): void {
    if (m.task_id === null) return;
    const tracked = this.runtime.tasks[m.task_id];
    if (!tracked) return;
    delete this.runtime.tasks[m.task_id];
    // A group that failed for good is kept: rewind needs it to re-run the last attempt.
    if (tracked.kind === 'attempt') delete this.runtime.groups[tracked.group];
  }

  // ---------------------------------------------------------------- scheduling

  private schedule(step: Step, id: number, scheduled: HistoryEvent[]): void {
    const a = step.action;
    switch (a.actionType) {
      case ActionType.CallActivity:
        this.activity(id, a.functionName as string, toJsonText(decodeProcessedInput(a.input)) ?? null, scheduled);
        return;
      case ActionType.CallActivityWithRetry:
      case ActionType.CallSubOrchestratorWithRetry: {
        const target = a.actionType === ActionType.CallActivityWithRetry ? 'activity' : 'orchestration';
        const value = target === 'activity' ? decodeProcessedInput(a.input) : a.input;
        const group: RetryGroup = {
          target,
          name: a.functionName as string,
          input: toJsonText(value) ?? null,
          policy: a.retryOptions as RetryPolicy,
          attempts: 1,
          firstAt: this.now,
          childInstanceId: a.instanceId || undefined,
          attemptIds: [id],
        };
        this.runtime.groups[id] = group;
        this.runtime.tasks[id] = { kind: 'attempt', group: id };
        if (target === 'activity') this.activity(id, group.name, group.input, scheduled);
        else this.subOrchestration(id, group.name, group.input, group.childInstanceId, scheduled);
        return;
      }
      case ActionType.CallSubOrchestrator:
        this.subOrchestration(id, a.functionName as string, toJsonText(a.input) ?? null, a.instanceId || undefined, scheduled);
        return;
      case ActionType.CreateTimer: {
        const finalAt = fireAtMs(a);
        if (finalAt - this.now > MAXIMUM_SHORT_TIMER_MS) {
          // The SDK tracks a LongTimerTask whose first segment ends one interval from now.
          this.runtime.tasks[id] = { kind: 'long-timer', finalAt };
          this.timer(id, this.now + LONG_TIMER_INTERVAL_MS, scheduled);
        } else {
          this.timer(id, finalAt, scheduled);
        }
        return;
      }
      default:
        return;
    }
  }

  private activity(id: number, name: string, inputJson: string | null, scheduled: HistoryEvent[]): void {
    scheduled.push(historyEvent(HistoryEventType.TaskScheduled, this.now, { Name: name, Input: inputJson ?? undefined }, id));
    if (this.retryGroupExpired(id)) {
      this.deliver(id, this.expiredFailure(id, HistoryEventType.TaskFailed));
      return;
    }
    if (!this.input.runner.hasActivity(name)) {
      const message = `The function '${name}' doesn't exist, is disabled, or is not an activity function.`;
      this.deliver(id, {
        EventType: HistoryEventType.TaskFailed,
        Reason: message,
        FailureDetails: { ErrorType: 'FunctionNotFound', ErrorMessage: message, IsNonRetriable: true },
      });
      return;
    }
    this.plan.activities.push({
      instance_id: this.inst.instance_id,
      execution_id: this.inst.execution_id,
      task_id: id,
      name,
      input: inputJson,
      created_at: this.now,
    });
  }

  private subOrchestration(
    id: number,
    name: string,
    inputJson: string | null,
    requestedId: string | undefined,
    scheduled: HistoryEvent[],
  ): void {
    const childId = requestedId ?? `${this.inst.instance_id}:${id}`;
    scheduled.push(
      historyEvent(
        HistoryEventType.SubOrchestrationInstanceCreated,
        this.now,
        { Name: name, InstanceId: childId, Input: inputJson ?? undefined },
        id,
      ),
    );
    if (this.retryGroupExpired(id)) {
      this.deliver(id, this.expiredFailure(id, HistoryEventType.SubOrchestrationInstanceFailed));
      return;
    }
    const refuse = (message: string, type: string): void =>
      this.deliver(id, {
        EventType: HistoryEventType.SubOrchestrationInstanceFailed,
        Reason: message,
        FailureDetails: { ErrorType: type, ErrorMessage: message, IsNonRetriable: true },
      });
    if (!this.input.runner.hasOrchestrator(name)) {
      refuse(`The function '${name}' doesn't exist, is disabled, or is not an orchestrator function.`, 'FunctionNotFound');
      return;
    }
    const existing = this.plan.children.find((c) => c.instance_id === childId) ?? this.input.getInstance(childId);
    if (existing && !isTerminal(existing.status)) {
      refuse(`An orchestration instance with the ID '${childId}' already exists (status ${existing.status}).`, 'OrchestrationAlreadyExists');
      return;
    }
    const executionId = randomUUID();
    this.plan.children.push(
      newInstanceRow(childId, name, executionId, inputJson, this.now, {
        instanceId: this.inst.instance_id,
        executionId: this.inst.execution_id,
        taskId: id,
      }),
    );
    this.plan.messages.push(startMessage(childId, executionId, name, inputJson, this.now, this.inst.instance_id, id));
  }

  private timer(id: number, fireAt: number, scheduled: HistoryEvent[]): void {
    scheduled.push(historyEvent(HistoryEventType.TimerCreated, this.now, { FireAt: iso(fireAt) }, id));
    this.plan.messages.push({
      instance_id: this.inst.instance_id,
      execution_id: this.inst.execution_id,
      kind: 'task',
      task_id: id,
      payload: JSON.stringify(historyEvent(HistoryEventType.TimerFired, fireAt, { TimerId: id, FireAt: iso(fireAt) })),
      visible_at: fireAt,
      created_at: this.now,
    });
  }

  private retryGroupExpired(id: number): boolean {
    const tracked = this.runtime.tasks[id];
    if (!tracked || tracked.kind !== 'attempt') return false;
    return this.runtime.groups[tracked.group].expired === true;
  }

  /** Past retryTimeout the remaining attempts fail at once with the last failure, as DTFx stops retrying. */
  private expiredFailure(id: number, type: HistoryEventType): Partial<HistoryEvent> {
    const tracked = this.runtime.tasks[id] as { kind: 'attempt'; group: number };
    const g = this.runtime.groups[tracked.group];
    return { EventType: type, ...(g.lastFailure ?? { Reason: 'retry timeout expired' }) };
  }

  /** Queues a result for one of this execution's own tasks (immediate failures). */
  private deliver(id: number, fields: Partial<HistoryEvent>): void {
    const type = fields.EventType as HistoryEventType;
    this.plan.messages.push({
      instance_id: this.inst.instance_id,
      execution_id: this.inst.execution_id,
      kind: 'task',
      task_id: id,
      payload: JSON.stringify(historyEvent(type, this.now, { ...fields, TaskScheduledId: id })),
      visible_at: this.now,
      created_at: this.now,
    });
  }

  // ---------------------------------------------------------------- endings

  private complete(output: unknown): void {
    const result = toJsonText(output) ?? 'null';
    this.inst.status = 'Completed';
    this.inst.output = result;
    this.inst.completed_at = this.now;
    this.plan.events.push(
      played(historyEvent(HistoryEventType.OrchestratorCompleted, this.now)),
      played(historyEvent(HistoryEventType.ExecutionCompleted, this.now, { OrchestrationStatus: 'Completed', Result: result })),
    );
    this.plan.endedExecution = this.inst.execution_id;
    if (this.inst.parent_instance_id) {
      this.toParent({ EventType: HistoryEventType.SubOrchestrationInstanceCompleted, Result: result });
    }
  }

  private fail(message: string, details: FailureDetails): void {
    const output = `Orchestrator function '${this.inst.name}' failed: ${message}`;
    this.inst.status = 'Failed';
    this.inst.output = JSON.stringify(output);
    this.inst.failure = JSON.stringify(details);
    this.inst.completed_at = this.now;
    this.inst.updated_at = this.now;
    this.inst.runtime = JSON.stringify(this.runtime);
    this.plan.events.push(
      played(historyEvent(HistoryEventType.OrchestratorCompleted, this.now)),
      played(
        historyEvent(HistoryEventType.ExecutionCompleted, this.now, {
          OrchestrationStatus: 'Failed',
          Result: JSON.stringify(output),
          FailureDetails: details,
        }),
      ),
    );
    this.plan.endedExecution = this.inst.execution_id;
    this.notifyParent({ Reason: output, Details: details.StackTrace, FailureDetails: { ...details, ErrorMessage: message } });
  }

  private continueAsNew(action: SdkAction): void {
    const input = decodeProcessedInput(action.input);
    const inputJson = toJsonText(input) ?? null;
    const ended = this.inst.execution_id;
    this.inst.execution_id = randomUUID();
    this.inst.input = inputJson;
    // Azure Storage writes the instance's CreatedTime from each execution's ExecutionStarted
    // (AzureTableTrackingStore.UpdateStateAsync), so status queries and purges by creation time
    // see when the current execution began, not the first one.
    this.inst.created_at = this.now;
    this.inst.status = 'Running';
    this.inst.custom_status = this.inst.custom_status ?? null;
    this.runtime = emptyRuntime();
    this.plan.events.push(
      played(historyEvent(HistoryEventType.OrchestratorCompleted, this.now)),
      played(historyEvent(HistoryEventType.ExecutionCompleted, this.now, { OrchestrationStatus: 'ContinuedAsNew', Result: inputJson ?? undefined })),
    );
    this.plan.endedExecution = ended;
    // Raised events this execution never waited for end with it. The extension runs a
    // durable-functions ContinueAsNew action as ContinueAsNew(input), whose
    // preserveUnprocessedEvents defaults to false (OutOfProcOrchestrationShim), and the JS SDK has
    // no way to ask otherwise. Events raised after this episode reach the new execution.
    this.plan.messages.push(startMessage(this.inst.instance_id, this.inst.execution_id, this.inst.name, inputJson, this.now));
  }

  private notifyParent(failure: TaskFailure): void {
    if (!this.inst.parent_instance_id) return;
    this.toParent({ EventType: HistoryEventType.SubOrchestrationInstanceFailed, ...failure });
  }

  private toParent(fields: Partial<HistoryEvent>): void {
    const taskId = this.inst.parent_task_id as number;
    this.plan.messages.push({
      instance_id: this.inst.parent_instance_id as string,
      execution_id: this.inst.parent_execution_id,
      kind: 'task',
      task_id: taskId,
      payload: JSON.stringify(historyEvent(fields.EventType as HistoryEventType, this.now, { ...fields, TaskScheduledId: taskId })),
      visible_at: this.now,
      created_at: this.now,
    });
  }
}

/**
 * The extension refuses a custom status over 16 KB, counted as UTF-16 (Azure Storage keeps strings
 * in UTF-16) and rounded down to whole KB: SetCustomStatus throws and the orchestration fails.
 */
const MAX_CUSTOM_STATUS_KB = 16;
function checkCustomStatusSize(customStatus: unknown): void {
  const json = JSON.stringify(customStatus) ?? '';
  // A JS string's length counts UTF-16 code units, two bytes each.
  const sizeKb = Math.floor((json.length * 2) / 1024);
  if (sizeKb > MAX_CUSTOM_STATUS_KB) {
    throw new DurableEngineError(
      `The UTF-16 size of the JSON-serialized payload must not exceed ${MAX_CUSTOM_STATUS_KB} KB. The current payload size is ${sizeKb} KB.`,
    );
  }
}

function played(e: HistoryEvent): HistoryEvent {
  return { ...e, IsPlayed: true };
}

function isOrchestratorState(v: unknown): v is OrchestratorStatePayload {
  return typeof v === 'object' && v !== null && 'isDone' in v && 'actions' in v;
}

/** Unpacks what an orchestrator episode threw: OrchestrationFailureError carries the state after a marker. */
function parseOrchestratorFailure(thrown: unknown): {
  state: OrchestratorStatePayload | undefined;
  failure: { message: string; details: FailureDetails };
} {
  const err = asError(thrown);
  const at = err.message.indexOf(OUT_OF_PROC_MARKER);
  if (at >= 0) {
    try {
      const state = JSON.parse(err.message.slice(at + OUT_OF_PROC_MARKER.length)) as OrchestratorStatePayload;
      const message = state.error ?? err.message.slice(0, at).trim();
      const fd = state.failureDetails;
      const details: FailureDetails = fd
        ? { ErrorType: fd.ErrorType ?? 'Error', ErrorMessage: fd.ErrorMessage ?? message, StackTrace: fd.StackTrace }
        : { ErrorType: 'Error', ErrorMessage: message };
      return { state, failure: { message, details } };
    } catch {
      // Not the SDK's format after all: report the raw error below.
    }
  }
  return { state: undefined, failure: { message: err.message, details: failureDetailsOf(err) } };
}

export function startMessage(
  instanceId: string,
  executionId: string,
  name: string,
  inputJson: string | null,
  now: number,
  parentInstanceId?: string,
  parentTaskId?: number,
): NewMessage {
  const started = historyEvent(HistoryEventType.ExecutionStarted, now, {
    Name: name,
    Input: inputJson ?? undefined,
    OrchestrationInstance: { InstanceId: instanceId, ExecutionId: executionId },
    ParentInstance: parentInstanceId ? { InstanceId: parentInstanceId, TaskScheduledId: parentTaskId as number } : null,
  });
  return {
    instance_id: instanceId,
    execution_id: executionId,
    kind: 'start',
    task_id: null,
    payload: JSON.stringify(started),
    visible_at: now,
    created_at: now,
  };
}

export function eventMessage(instanceId: string, name: string, inputJson: string | undefined, now: number): NewMessage {
  return {
    instance_id: instanceId,
    execution_id: null,
    kind: 'event',
    task_id: null,
    payload: JSON.stringify(historyEvent(HistoryEventType.EventRaised, now, { Name: name, Input: inputJson })),
    visible_at: now,
    created_at: now,
  };
}
