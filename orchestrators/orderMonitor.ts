/**
 * The order monitor: one instance per order (instance id = order id) that watches the order until
 * it is completed, cancelled or needs attention. Each turn reads the order, lets the pure policy
 * decide, carries the step out, and waits for the next poll or an `OrderChanged` event.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler, Task, TimerTask } from 'durable-functions';
import {
  decideNextStep,
  noteBacklogCheck,
  observe,
  phaseOf,
  pollIntervalMs,
  statusText,
  turnSnapshot,
  type BacklogCheck,
  type MonitorObservations,
  type MonitorPolicy,
  type MonitorSnapshot,
  type Step,
} from '../src/domain/monitorPolicy';
import type { CompensationOutcome } from '../src/domain/saga';
import {
  ACTIVITY,
  COMPENSATE_ORDER,
  ORDER_CHANGED_EVENT,
  ORDER_MONITOR,
  compensationInstanceId,
  isStoreOutageFailure,
  type CompensationInput,
  type CompensationStart,
  type OrderChange,
  type OrderMonitorInput,
  type UnansweredBegin,
} from './names';

/** Monitor actions (requeue, republish, state changes) ride out short outages of Cosmos / Service Bus. */
const ACTION_RETRY = (() => {
  const retry = new df.RetryOptions(1_000, 4);
  retry.backoffCoefficient = 2;
  retry.maxRetryIntervalInMilliseconds = 10_000;
  return retry;
})();

export interface MonitorResult {
  orderId: string;
  outcome: 'completed' | 'cancelled' | 'attention' | 'missing';
}

/** What support staff see as the monitor's custom status. */
export interface MonitorCustomStatus {
  phase: ReturnType<typeof phaseOf> | 'starting';
  orderState?: string;
  status?: MonitorSnapshot['status'];
  billingRequeues?: number;
  republishes?: MonitorSnapshot['republishes'];
  /** When the monitor looks again at the latest, while it waits. */
  nextCheckAt?: string;
  /** Why it waits, or why it acts. */
  detail?: string;
  execution: number;
  checkedAt: string;
}

function explain(step: Step): string | undefined {
  switch (step.kind) {
    case 'wait':
      return step.why;
    case 'requeueBilling':
      return `requeue ${step.attempt}${step.requestedBy ? ` requested by ${step.requestedBy}` : ''}`;
    case 'republish':
      return `republish ${step.attempt} to ${step.service}: ${step.why}`;
    case 'checkBacklog':
      return `looking at ${step.service}'s backlog: ${step.why}`;
    case 'compensate':
    case 'markAttention':
      return step.reason;
    case 'done':
      return step.outcome;
    default:
      return undefined;
  }
}

const orderMonitor: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<OrderMonitorInput>();
  if (!input || typeof input.orderId !== 'string' || !input.orderId) {
    throw new Error(`${ORDER_MONITOR} needs an input {orderId, correlationId}; got ${JSON.stringify(input)}`);
  }
  const { orderId, correlationId } = input;
  const execution = input.execution ?? 0;
  const policy: MonitorPolicy = input.policy ?? (yield context.df.callActivity(ACTIVITY.loadMonitorPolicy));
  let quietPolls = input.quietPolls ?? 0;
  let observations: MonitorObservations | undefined = input.observations;
  let unansweredBegin: UnansweredBegin | undefined = input.unansweredBegin;
  let carriedOutStep: string | undefined = input.carriedOutStep;
  // The starter's view of the order serves the first turn only; every later turn reads.
  let handedOver: MonitorSnapshot | undefined = input.snapshot;
  const changes = new ChangeOrTimer(context);

  for (let turn = 0; turn < policy.iterationsPerExecution; turn++) {
    let read: MonitorSnapshot | null;
    try {
      read = handedOver ?? (yield context.df.callActivityWithRetry(ACTIVITY.readMonitorSnapshot, ACTION_RETRY, { orderId, correlationId }));
    } catch (err) {
      // The order could not be read (Cosmos DB throttling or out): look again after a poll. A
      // monitor that failed here would leave its order to the sweeper, which restarts only active
      // orders' monitors, so one completed meanwhile would keep holds nobody settles.
      // Any other failure is the read's own (a bug, a document it cannot take): no poll cures it,
      // and looking again forever would hide it, so the monitor fails where it can be seen.
      if (!isStoreOutageFailure(err)) throw err;
      if (!context.df.isReplaying) {
        context.log(JSON.stringify({ level: 'warn', event: 'monitor.read-failed', orderId, correlationId, error: String((err as Error)?.message ?? err).slice(0, 500) }));
      }
      const retryAt = new Date(context.df.currentUtcDateTime.getTime() + pollIntervalMs(policy, quietPolls));
      context.df.setCustomStatus({
        phase: 'watching',
        nextCheckAt: retryAt.toISOString(),
        detail: 'the order could not be read; looking again',
        execution,
        checkedAt: context.df.currentUtcDateTime.toISOString(),
      } satisfies MonitorCustomStatus);
      const change: OrderChange | undefined | false = yield* changes.wait(retryAt);
      quietPolls = change === false ? quietPolls + 1 : quietPolls;
      continue;
    }
    handedOver = undefined;
    if (!read) {
      // The intake writes the order before it starts the monitor: no order means nothing to watch.
      context.df.setCustomStatus({ phase: 'done', detail: 'order not found', execution, checkedAt: context.df.currentUtcDateTime.toISOString() });
      return { orderId, outcome: 'missing' } satisfies MonitorResult;
    }
    const now = context.df.currentUtcDateTime;
    observations = observe(observations, read, now);
    const snapshot: MonitorSnapshot = turnSnapshot(read, observations, quietPolls, unansweredBegin?.step, carriedOutStep);
    const step = decideNextStep(snapshot, policy, now);
    context.df.setCustomStatus({
      phase: phaseOf(step),
      orderState: snapshot.state,
      status: snapshot.status,
      billingRequeues: snapshot.billingRequeues,
      republishes: snapshot.republishes,
      nextCheckAt: step.kind === 'wait' ? step.until.toISOString() : undefined,
      detail: statusText(explain(step)),
      execution,
      checkedAt: now.toISOString(),
    } satisfies MonitorCustomStatus);

    const order = { orderId, correlationId };
    try {
      switch (step.kind) {
        case 'done':
          if (step.outcome === 'completed') {
            // Completed, and no consumer reported it: the one that completed it may have died
            // before settling its stock, with its message gone to the dead-letter queue instead
            // of coming back. The same activity settles the holds of an order already completed.
            yield context.df.callActivityWithRetry(ACTIVITY.markOrderCompleted, ACTION_RETRY, order);
          }
          return { orderId, outcome: step.outcome } satisfies MonitorResult;

        case 'wait': {
          const change: OrderChange | undefined | false = yield* changes.wait(step.until);
          if (change && change.source === 'consumer' && change.state === 'completed') {
            // The consumer that recorded the last `done` completed the order with a conditional
            // patch, and `completed` is terminal: nothing is left to watch, nor to read.
            context.df.setCustomStatus({
              phase: 'done',
              orderState: 'completed',
              detail: `completed (reported by ${change.service ?? 'a consumer'})`,
              execution,
              checkedAt: context.df.currentUtcDateTime.toISOString(),
            } satisfies MonitorCustomStatus);
            return { orderId, outcome: 'completed' } satisfies MonitorResult;
          }
          quietPolls = change === false ? quietPolls + 1 : 0;
          continue;
        }

        case 'requeueBilling':
          yield context.df.callActivityWithRetry(ACTIVITY.requeueBilling, ACTION_RETRY, {
            ...order,
            attempt: step.attempt,
            requestedBy: step.requestedBy,
          });
          break;

        case 'checkBacklog': {
          let check: BacklogCheck;
          try {
            check = yield context.df.callActivityWithRetry(ACTIVITY.checkServiceBacklog, ACTION_RETRY, {
              ...order,
              service: step.service,
              // The latest send when a claim stamped the service since, else the progress stamp.
              sentAt: snapshot.sentAt?.[step.service] ?? observations.progress[step.service].stamp,
            });
          } catch (err) {
            // Service Bus did not answer: a send would not go through either. Counted as waiting,
            // so the bound on the wait still holds.
            if (!context.df.isReplaying) {
              context.log(JSON.stringify({ level: 'warn', event: 'monitor.backlog-check-failed', orderId, correlationId, service: step.service, error: String((err as Error)?.message ?? err).slice(0, 500) }));
            }
            check = { waiting: true };
          }
          observations = noteBacklogCheck(observations, step.service, context.df.currentUtcDateTime, check);
          break;
        }

        case 'republish':
          yield context.df.callActivityWithRetry(ACTIVITY.republishToStuckService, ACTION_RETRY, {
            ...order,
            service: step.service,
            attempt: step.attempt,
            reason: step.why,
          });
          break;

        case 'markCompleted':
          yield context.df.callActivityWithRetry(ACTIVITY.markOrderCompleted, ACTION_RETRY, order);
          break;

        case 'markAttention':
          yield context.df.callActivityWithRetry(ACTIVITY.markOrderAttention, ACTION_RETRY, { ...order, reason: step.reason });
          break;

        case 'compensate': {
          // The same on replay: the activity run once more for this step finds the run it began.
          // The execution is part of it: an id is made of the episode's time and a count that
          // starts again in each execution, and a virtual clock can hold the time across one.
          // A begin whose retries all failed may still have written its run: the same request
          // tries the same step again. Once a person's run has begun, their request is no longer
          // pending, so the monitor carries it on as its own (no requestedBy): only a person's
          // request made since is a step of its own.
          // A run the order shows begun and never taken up (a monitor before this one began it and
          // died) is resumed: the begin carries it out under the next number, without counting it.
          const begin: UnansweredBegin =
            unansweredBegin && (step.requestedBy === undefined || unansweredBegin.requestedBy === step.requestedBy)
              ? unansweredBegin
              : { step: context.df.newGuid(`${orderId}:${execution}`), ...(step.requestedBy !== undefined ? { requestedBy: step.requestedBy } : {}) };
          unansweredBegin = begin;
          const started: CompensationStart | null = yield context.df.callActivityWithRetry(ACTIVITY.beginCompensation, ACTION_RETRY, {
            ...order,
            reason: step.reason,
            requestedBy: step.requestedBy,
            step: begin.step,
            ...(step.resume ? { resume: true } : {}),
          });
          unansweredBegin = undefined;
          // null: the order finished in the meantime (e.g. the last consumer completed it).
          if (started) {
            // Tried from here on, even if its sub-orchestration fails before noting itself under way.
            carriedOutStep = begin.step;
            const compensation: CompensationInput = { ...order, reason: step.reason, retry: policy.compensationRetry, outage: policy.compensationOutage, attempt: started.attempt };
            const outcome: CompensationOutcome = yield context.df.callSubOrchestrator(COMPENSATE_ORDER, compensation, compensationInstanceId(orderId, started));
            if (!context.df.isReplaying) {
              context.log(JSON.stringify({ level: 'info', event: 'compensation.finished', orderId, correlationId, ...outcome }));
            }
          }
          break;
        }
      }
    } catch (err) {
      // An action that failed after its retries: look again after a poll. The policy bounds
      // every retry (requeues, republishes, compensation runs), so this cannot loop forever.
      if (!context.df.isReplaying) {
        context.log(
          JSON.stringify({ level: 'warn', event: 'monitor.action-failed', orderId, correlationId, step: step.kind, error: String((err as Error)?.message ?? err) }),
        );
      }
      // From the failure, not from the turn's start: the action's retries alone (ACTION_RETRY, with
      // DTFx's backoff after the last attempt) outlast the shortest poll.
      const retryAt = new Date(context.df.currentUtcDateTime.getTime() + pollIntervalMs(policy, quietPolls));
      yield* changes.wait(retryAt);
    }
    quietPolls = 0;
  }

  // Keep the history small: carry only what the order document cannot tell the next execution.
  context.df.continueAsNew({
    orderId,
    correlationId,
    policy,
    quietPolls,
    observations,
    execution: execution + 1,
    ...(unansweredBegin ? { unansweredBegin } : {}),
    ...(carriedOutStep ? { carriedOutStep } : {}),
  } satisfies OrderMonitorInput);
  return undefined;
};

/**
 * Waits for the next `OrderChanged` event or a time, whichever comes first. One event task stays
 * open across waits: the SDK hands an event to the newest open task, so a fresh task per wait
 * would leave older ones to swallow events raised while the monitor was busy acting.
 * An event that came while the monitor was busy has already completed that task, and the SDK's
 * Task.any never completes for a task that finished before it was built: such an event is taken
 * at once, without a timer, or the monitor would sleep through it until the timer fired.
 * The SDK registers a task for an event each time it is yielded, so a task that joined several
 * waits (the timer won the earlier ones) stays registered after it was taken, and the next event
 * raised while the monitor is busy ends on it, overwriting its result, instead of waiting for the
 * next task. Taken tasks are kept with the payload they were taken with: one whose result changed
 * since received such an event, which is taken like any other.
 */
class ChangeOrTimer {
  private changed: Task | undefined;
  /** Event tasks taken in this execution, each with the payload it was taken with. */
  private readonly taken: { task: Task; result: unknown }[] = [];

  constructor(private readonly context: OrchestrationContext) {}

  /** The event's payload (undefined when it had none) when woken by an event; false when the time came. */
  *wait(until: Date): Generator<Task, OrderChange | undefined | false, unknown> {
    // Every OrderChanged carries a payload (a new object each), so a changed result is a new event.
    const late = this.taken.find((t) => t.task.result !== t.result);
    if (late) {
      late.result = late.task.result;
      return changeOf(late.result);
    }
    this.changed ??= this.context.df.waitForExternalEvent(ORDER_CHANGED_EVENT);
    if (!this.changed.isCompleted) {
      const timer: TimerTask = this.context.df.createTimer(until);
      const winner = yield this.context.df.Task.any([timer, this.changed]);
      if (winner === timer) return false;
      timer.cancel();
    }
    const task = this.changed;
    this.changed = undefined;
    this.taken.push({ task, result: task.result });
    return changeOf(task.result);
  }
}

function changeOf(payload: unknown): OrderChange | undefined {
  return payload && typeof payload === 'object' ? (payload as OrderChange) : undefined;
}

df.app.orchestration(ORDER_MONITOR, orderMonitor);
