/**
 * The order monitor seen through the durable client binding. One orchestration instance per
 * order, instance id = order id.
 */
import type { DurableClient } from 'durable-functions';
import { withinDeadline } from '../deadline';
import { monitorPolicyFromSettings, type MonitorPolicy } from '../domain/monitorPolicy';
import type { Logger } from '../log';
import type { MonitorClient, MonitorStatus, OrderChangeNotice } from '../services/ports';

/** Registered name of the monitor orchestration. */
export const ORDER_MONITOR_ORCHESTRATION = 'orderMonitor';
/** External event raised on the monitor whenever a consumer records an outcome. */
export const ORDER_CHANGED_EVENT = 'OrderChanged';

/**
 * How long a nudge may take. The durable client's HTTP calls have no timeout of their own, and a
 * nudge is best effort (the monitor also polls the order): a consumer or a support action must not
 * wait on a durable backend that stopped answering.
 */
export const NOTIFY_TIMEOUT_MS = 5_000;

export class DurableMonitorClient implements MonitorClient {
  constructor(
    private readonly client: DurableClient,
    private readonly log?: Logger,
    private readonly notifyTimeoutMs = NOTIFY_TIMEOUT_MS,
  ) {}

  async start(orderId: string, input: Parameters<MonitorClient['start']>[1]): Promise<'started' | 'exists'> {
    try {
      await this.client.startNew(ORDER_MONITOR_ORCHESTRATION, { instanceId: orderId, input: { ...input, ...policyInput() } });
      return 'started';
    } catch (err) {
      // A retried intake may find the instance already started: that is success.
      if (await this.status(orderId)) return 'exists';
      throw err;
    }
  }

  async status(orderId: string): Promise<MonitorStatus | null> {
    try {
      const status = await this.client.getStatus(orderId, { showInput: false });
      if (!status || !status.runtimeStatus) return null;
      return { runtimeStatus: String(status.runtimeStatus), customStatus: status.customStatus ?? null };
    } catch {
      // getStatus throws for an unknown instance (404).
      return null;
    }
  }

  async notifyOrderChanged(orderId: string, change: OrderChangeNotice): Promise<void> {
    try {
      await withinDeadline(
        this.client.raiseEvent(orderId, ORDER_CHANGED_EVENT, change),
        this.notifyTimeoutMs,
        () => new Error(`the durable backend did not answer within ${this.notifyTimeoutMs} ms`),
        (late) => {
          if (!late.ok) this.log?.warn('monitor-notify-failed-late', { orderId, error: late.error.message });
        },
      );
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
