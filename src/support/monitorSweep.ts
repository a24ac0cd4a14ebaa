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
  /**
   * Up to `limit` non-terminal orders created at or after `from` and before `createdBefore`, none of
   * them one of `excluding`, oldest first.
   */
  activeOrders(from: string, createdBefore: string, limit: number, excluding: readonly string[]): Promise<ActiveOrder[]>;
}

/** The most orders one read of the active orders returns. */
export const MAX_ACTIVE_PAGE = 500;

export class CosmosActiveOrders implements ActiveOrderSource {
  constructor(private readonly orders: Container = container('orders')) {}

  async activeOrders(from: string, createdBefore: string, limit: number, excluding: readonly string[]): Promise<ActiveOrder[]> {
    const top = Math.max(1, Math.min(MAX_ACTIVE_PAGE, Math.floor(limit)));
    const { resources } = await this.orders.items
      .query<ActiveOrder>({
        query:
          `SELECT TOP ${top} c.id, c.correlationId, c.state, c.createdAt FROM c ` +
          "WHERE (c.state = 'accepted' OR c.state = 'processing' OR c.state = 'compensating') " +
          'AND c.createdAt >= @from AND c.createdAt < @before AND NOT ARRAY_CONTAINS(@excluding, c.id) ORDER BY c.createdAt ASC',
        parameters: [
          { name: '@from', value: from },
          { name: '@before', value: createdBefore },
          { name: '@excluding', value: [...excluding] },
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
  const from = readCursor(cursor);
  // Orders are stamped to the millisecond, and a burst stamps several alike: the read starts at
  // the last run's time itself and leaves out the orders of that time it already checked. A read
  // after that time would skip the others of it, and, while the orders before them stay active,
  // skip them on every pass. The query leaves them out itself: once a page's worth of one
  // millisecond's orders were checked, a page read with them could hold nothing else, and every
  // pass would end there, never reaching the rest of that millisecond or any later order.
  const limit = Math.min(MAX_ACTIVE_PAGE, settings.batchSize);
  const batch = await env.orders.activeOrders(from.createdAt, createdBefore, limit, from.checked);
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
  const last = batch[batch.length - 1];
  if (batch.length < limit || last === undefined) return { checked: batch.length, restarted, cursor: '' };
  const checked = batch.filter((o) => o.createdAt === last.createdAt).map((o) => o.id);
  if (last.createdAt === from.createdAt) checked.push(...from.checked);
  return { checked: batch.length, restarted, cursor: JSON.stringify({ createdAt: last.createdAt, checked }) };
}

/** Where a run starts: '' is the oldest active order. */
function readCursor(cursor: string): { createdAt: string; checked: string[] } {
  return cursor === '' ? { createdAt: '', checked: [] } : (JSON.parse(cursor) as { createdAt: string; checked: string[] });
}
