/**
 * Automated retry of stuck orders: finds orders that are not terminal but whose monitor is
 * missing, failed or terminated, and starts their monitor again (it picks up from the order's
 * timeline). Bounded work per run; a cursor walks through all active orders across runs, so the
 * same oldest orders are not checked over and over.
 */
import type { Container } from '@azure/cosmos';
import { container } from '../azure/clients';
import { stripSystemProperties } from '../azure/cosmosErrors';
import type { OrderState } from '../domain/order';
import type { Logger } from '../log';
import type { MonitorClient } from '../services/ports';

export interface ActiveOrder {
  id: string;
  correlationId: string;
  state: OrderState;
  createdAt: string;
}

export interface ActiveOrderSource {
  /** Up to `limit` non-terminal orders created after `after` and before `createdBefore`, oldest first. */
  activeOrders(after: string, createdBefore: string, limit: number): Promise<ActiveOrder[]>;
}

export class CosmosActiveOrders implements ActiveOrderSource {
  constructor(private readonly orders: Container = container('orders')) {}

  async activeOrders(after: string, createdBefore: string, limit: number): Promise<ActiveOrder[]> {
    const top = Math.max(1, Math.min(500, Math.floor(limit)));
    const { resources } = await this.orders.items
      .query<ActiveOrder>({
        query:
          `SELECT TOP ${top} c.id, c.correlationId, c.state, c.createdAt FROM c ` +
          "WHERE (c.state = 'accepted' OR c.state = 'processing' OR c.state = 'compensating') " +
          'AND c.createdAt > @after AND c.createdAt < @before ORDER BY c.createdAt ASC',
        parameters: [
          { name: '@after', value: after },
          { name: '@before', value: createdBefore },
        ],
      })
      .fetchAll();
    return resources.map(stripSystemProperties);
  }
}

export interface SweepSettings {
  /** Orders checked per run. */
  batchSize: number;
  /** Orders younger than this are left to the intake, which starts their monitor itself. */
  graceMs: number;
}

export const DEFAULT_SWEEP: SweepSettings = { batchSize: 50, graceMs: 30_000 };

/** Runtime statuses of a monitor that is still on the job (a suspended one was stopped by a person). */
const ALIVE = ['Running', 'Pending', 'ContinuedAsNew', 'Suspended'];

export interface SweepReport {
  checked: number;
  restarted: { orderId: string; previous: string }[];
  /** Where the next run continues; '' starts from the oldest again. */
  cursor: string;
}

export async function sweepMonitors(
  cursor: string,
  now: Date,
  settings: SweepSettings,
  env: { orders: ActiveOrderSource; monitor: MonitorClient; log: Logger },
): Promise<SweepReport> {
  const createdBefore = new Date(now.getTime() - settings.graceMs).toISOString();
  const batch = await env.orders.activeOrders(cursor, createdBefore, settings.batchSize);
  const restarted: SweepReport['restarted'] = [];
  for (const order of batch) {
    const status = await env.monitor.status(order.id);
    if (status && ALIVE.includes(status.runtimeStatus)) continue;
    const previous = status?.runtimeStatus ?? 'missing';
    await env.monitor.start(order.id, { orderId: order.id, correlationId: order.correlationId });
    await env.monitor.notifyOrderChanged(order.id, { source: 'sweeper', reason: `monitor restarted (was ${previous})` });
    env.log.warn('monitor-restarted', { orderId: order.id, correlationId: order.correlationId, previous, state: order.state });
    restarted.push({ orderId: order.id, previous });
  }
  const next = batch.length < settings.batchSize ? '' : batch[batch.length - 1].createdAt;
  return { checked: batch.length, restarted, cursor: next };
}
