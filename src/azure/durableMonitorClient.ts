/**
 * The order monitor seen through the durable client binding. One orchestration instance per
 * order, instance id = order id.
 */
import type { DurableClient } from 'durable-functions';
import { withinDeadline, type LateOutcome } from '../deadline';
import { ensureError, TransientError } from '../errors';
import { monitorPolicyFromSettings, type MonitorPolicy } from '../domain/monitorPolicy';
import { compensationRunInstanceId } from '../domain/saga';
import type { Logger } from '../log';
import type { MonitorClient, MonitorStatus, OrderChangeNotice } from '../services/ports';

/** Registered name of the monitor orchestration. */
export const ORDER_MONITOR_ORCHESTRATION = 'orderMonitor';
/** External event raised on the monitor whenever a consumer records an outcome. */
export const ORDER_CHANGED_EVENT = 'OrderChanged';

/**
 * How long a start, a status read or a nudge may take. The durable client's HTTP calls have no
 * timeout of their own: an intake, a support view, a consumer, a support action or the sweeper
 * must not wait on a durable backend that stopped answering. A nudge is best effort (the monitor
 * also polls the order).
 */
export const MONITOR_CALL_TIMEOUT_MS = 5_000;

export class DurableMonitorClient implements MonitorClient {
  constructor(
    private readonly client: DurableClient,
    private readonly log?: Logger,
    private readonly callTimeoutMs = MONITOR_CALL_TIMEOUT_MS,
  ) {}

  /**
   * Starts the order's monitor. A start the backend has not confirmed within the timeout fails
   * (its caller retries: the client, the sweeper's next run, support); should it take effect
   * later, the retry finds the monitor there.
   */
  async start(orderId: string, input: Parameters<MonitorClient['start']>[1]): Promise<'started' | 'exists'> {
    try {
      await this.#bounded(this.client.startNew(ORDER_MONITOR_ORCHESTRATION, { instanceId: orderId, input: { ...input, ...policyInput() } }), (late) => {
        if (late.ok) this.log?.info('monitor-started-late', { orderId });
        else this.log?.warn('monitor-start-failed-late', { orderId, error: late.error.message });
      });
      return 'started';
    } catch (err) {
      // A retried intake may find the instance already started: that is success.
      if (await this.status(orderId).catch(() => null)) return 'exists';
      throw err;
    }
  }

  /**
   * The instance's status; null when there is no such instance. A backend that answers with an
   * error, or not within the timeout, is an error: "no monitor" would make callers start one.
   */
  async status(orderId: string, run?: number): Promise<MonitorStatus | null> {
    let status: Awaited<ReturnType<DurableClient['getStatus']>>;
    try {
      status = await this.#bounded(this.client.getStatus(run === undefined ? orderId : compensationRunInstanceId(orderId, run), { showInput: false }));
    } catch (err) {
      // getStatus throws for an unknown instance with the extension's 404 in its message.
      if (err instanceof Error && /\bHTTP 404\b/.test(err.message)) return null;
      throw err instanceof TransientError ? err : new TransientError(`the monitor's status could not be read: ${ensureError(err).message}`, { cause: err });
    }
    if (!status || !status.runtimeStatus) return null;
    return { runtimeStatus: String(status.runtimeStatus), customStatus: status.customStatus ?? null };
  }

  /** A durable client call, given up after `callTimeoutMs`. */
  #bounded<T>(call: Promise<T>, late?: (outcome: LateOutcome) => void): Promise<T> {
    return withinDeadline(call, this.callTimeoutMs, () => new TransientError(`the durable backend did not answer within ${this.callTimeoutMs} ms`), late);
  }

  async notifyOrderChanged(orderId: string, change: OrderChangeNotice): Promise<void> {
    try {
      await this.#bounded(this.client.raiseEvent(orderId, ORDER_CHANGED_EVENT, change), (late) => {
        if (!late.ok) this.log?.warn('monitor-notify-failed-late', { orderId, error: late.error.message });
      });
    } catch (err) {
      // Best effort: a monitor that is gone (404) or finished (410) does not need the nudge, and
      // the monitor also polls the order, so a lost nudge only delays it.
      this.log?.warn('monitor-notify-failed', { orderId, error: err instanceof Error ? err.message : String(err) });
    }
  }
}

/**
 * The monitor's policy (app settings) handed over in its input: the orchestrator cannot read
 * settings itself, and without it its first step is an activity that does only that. Settings
 * that do not parse are left to that activity, which fails the monitor with the reason.
 */
function policyInput(): { policy?: MonitorPolicy } {
  // Settings are read once per process, like the rest of the app's configuration.
  if (!startPolicy) {
    try {
      startPolicy = { policy: monitorPolicyFromSettings(process.env) };
    } catch {
      startPolicy = {};
    }
  }
  return startPolicy;
}

let startPolicy: { policy?: MonitorPolicy } | undefined;
