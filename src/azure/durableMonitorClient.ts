/**
 * The order monitor seen through the durable client binding. One orchestration instance per
 * order, instance id = order id.
 */
import type { DurableClient } from 'durable-functions';
import { monitorPolicyFromSettings, type MonitorPolicy } from '../domain/monitorPolicy';
import type { Logger } from '../log';
import type { MonitorClient, MonitorStatus, OrderChangeNotice } from '../services/ports';

/** Registered name of the monitor orchestration. */
export const ORDER_MONITOR_ORCHESTRATION = 'orderMonitor';
/** External event raised on the monitor whenever a consumer records an outcome. */
export const ORDER_CHANGED_EVENT = 'OrderChanged';

export class DurableMonitorClient implements MonitorClient {
  constructor(
    private readonly client: DurableClient,
    private readonly log?: Logger,
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
      await this.client.raiseEvent(orderId, ORDER_CHANGED_EVENT, change);
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
