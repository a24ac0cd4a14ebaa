/**
 * Names the order monitor is known by: the intake starts it, consumers and the dead-letter handler
 * raise its event, support actions wake it. Spelled once here; changing one breaks a running app.
 */
import type { MonitorObservations, MonitorPolicy, MonitorSnapshot, OutagePolicy, RetryPolicy } from '../src/domain/monitorPolicy';
import { compensationRunInstanceId, type CompensationName } from '../src/domain/saga';

export const ORDER_MONITOR = 'orderMonitor';
export const COMPENSATE_ORDER = 'compensateOrder';
/** Raised on the monitor (instance id = order id) after something about the order was recorded. */
export const ORDER_CHANGED_EVENT = 'OrderChanged';

export interface OrderMonitorInput {
  orderId: string;
  correlationId: string;
  /** Carried across continue-as-new so a running monitor keeps the policy it started with. */
  policy?: MonitorPolicy;
  /** Timer wake-ups in a row with nothing to do; drives the poll backoff. */
  quietPolls?: number;
  /** When the monitor first saw each change, on its own clock (durations are measured from these). */
  observations?: MonitorObservations;
  /** Executions so far (continue-as-new count), for the custom status. */
  execution?: number;
  /**
   * The step of a compensation begin whose every retry failed: the write may have landed, so the
   * next begin for the same request is the same step, and finds that run instead of counting another.
   */
  unansweredBegin?: UnansweredBegin;
  /**
   * The step of the latest run this monitor handed to its sub-orchestration. That run was carried
   * out even when the order does not say so (its sub-orchestration failed before noting itself under
   * way): it counts as tried, rather than being resumed again and again.
   */
  carriedOutStep?: string;
  /**
   * The order as its starter last saw it (the intake, which has just written it): the first turn
   * decides from this instead of reading the order again. Never carried across continue-as-new.
   */
  snapshot?: MonitorSnapshot;
}

export interface UnansweredBegin {
  step: string;
  /**
   * Who asked for the run (undefined: the monitor). A person's request made since is a step of its
   * own; a step of the monitor's is this one, also after a person's begin landed (the next look no
   * longer sees their request as pending).
   */
  requestedBy?: string;
}

/**
 * Payload of `OrderChanged`: what changed, for the monitor's log; the monitor re-reads the order,
 * except after a consumer reports that it completed it (`completed` is terminal).
 */
export interface OrderChange {
  source: 'consumer' | 'deadletter' | 'support' | 'sweeper';
  service?: string;
  status?: string;
  /** The order's state after the change, when the sender changed it. */
  state?: string;
  action?: string;
  by?: string;
}

export interface CompensationInput {
  orderId: string;
  correlationId: string;
  reason: string;
  retry: RetryPolicy;
  /**
   * Which of the order's runs this is (`CompensationStart.attempt`): a run that a later one
   * superseded (its monitor was terminated and restarted meanwhile) does not record its outcome.
   */
  attempt?: number;
  /** How long a step Cosmos DB does not serve is waited for; runs begun before it existed take the default. */
  outage?: OutagePolicy;
}

/**
 * Begins the message of a compensation activity that failed because Cosmos DB did not serve it
 * (throttled past the SDK's retries, unavailable, no answer). Once the activity's retries are used
 * up, the orchestration waits such a failure out instead of counting it as the step failing. It is
 * a failure, not an answer, so whatever does not know the mark (an orchestration of an earlier
 * version while a deploy rolls out) counts it as the step failing, as before; it never takes it
 * for the step done.
 */
export const STORE_OUTAGE_MARK = 'Cosmos DB did not serve it';

/** A failed activity's error, as the SDK hands it to the orchestration (the activity's message is in it). */
export function isStoreOutageFailure(err: unknown): boolean {
  return err instanceof Error && err.message.includes(STORE_OUTAGE_MARK);
}

/** What `beginCompensation` hands the monitor for a run it started. */
export interface CompensationStart {
  /** Runs since compensation was last asked for (bounded by the policy). */
  run: number;
  /** Runs the order ever had: names the run's sub-orchestration. Absent from histories written before it existed. */
  attempt?: number;
}

/** The instance id of a compensation run's sub-orchestration. */
export function compensationInstanceId(orderId: string, started: CompensationStart): string {
  return compensationRunInstanceId(orderId, started.attempt ?? started.run);
}

/** Activities of the monitor and the compensation; each is a thin call into src/services. */
export const ACTIVITY = {
  loadMonitorPolicy: 'loadMonitorPolicy',
  readMonitorSnapshot: 'readMonitorSnapshot',
  requeueBilling: 'requeueBilling',
  republishToStuckService: 'republishToStuckService',
  checkServiceBacklog: 'checkServiceBacklog',
  beginCompensation: 'beginCompensation',
  markOrderCompleted: 'markOrderCompleted',
  markOrderAttention: 'markOrderAttention',
  planOrderCompensation: 'planOrderCompensation',
  refundOrderPayment: 'refundOrderPayment',
  releaseOrderStock: 'releaseOrderStock',
  sendCancellationNotice: 'sendCancellationNotice',
  finishCompensation: 'finishCompensation',
} as const;

/** The activity that carries out each compensation of the saga plan. */
export const COMPENSATION_ACTIVITY: Record<CompensationName, string> = {
  refundPayment: ACTIVITY.refundOrderPayment,
  releaseStock: ACTIVITY.releaseOrderStock,
  sendCancellation: ACTIVITY.sendCancellationNotice,
};

/** Input of every activity that acts on one order. */
export interface OrderActivityInput {
  orderId: string;
  correlationId: string;
}
