/** Read models: the support view of one order, the orders list, and the inventory views. */
import { inventoryItemView, inventoryView, type InventoryItemView, type InventoryView } from '../domain/catalog';
import { withinStoreWait } from '../deadline';
import type { OrderDocument } from '../domain/order';
import { compensationAskedSinceLastRun, compensationRunsStarted, MONITOR_ACTOR } from '../domain/monitorPolicy';
import { currentReasons, supportRequestOutcomes, type SupportRequestOutcome } from '../domain/orderState';
import type { ServiceName } from '../topology';
import type { OrderSagaDependencies } from './dependencies';
import type { CallOptions, MonitorClient, MonitorStatus, OrderFilter } from './ports';

export interface OrderSupportView {
  id: string;
  customerId: string;
  items: OrderDocument['items'];
  currency: string;
  total: number;
  state: OrderDocument['state'];
  status: OrderDocument['status'];
  /** Only reasons that still describe their service's status. */
  statusReason: Partial<Record<ServiceName, string>>;
  payment: OrderDocument['payment'];
  notifications: OrderDocument['notifications'];
  timeline: OrderDocument['timeline'];
  /** Every request a person made of the order (requeue, compensate), with what became of it. */
  requests: SupportRequestOutcome[];
  monitor: MonitorStatus | null;
  /**
   * While the order is `compensating`: its latest compensation run, numbered as on the timeline,
   * with the run's status (the step it is on, what is done, and a wait for Cosmos DB to serve it);
   * null status when it cannot be read or has not started yet. After a person asked to compensate
   * again, until the monitor begins that run: the run asked for, `requestedAt`, and no status (the
   * previous run's would read as this one's).
   */
  compensation?: { run: number; status: MonitorStatus | null; requestedAt?: string };
  correlationId: string;
  eventId: string;
  billingAttempts: number;
  published: boolean;
  simulate?: OrderDocument['simulate'];
  createdAt: string;
  updatedAt: string;
}

export function orderSupportView(
  order: OrderDocument,
  monitor: MonitorStatus | null,
  compensation?: OrderSupportView['compensation'],
): OrderSupportView {
  return {
    id: order.id,
    customerId: order.customerId,
    items: order.items,
    currency: order.currency,
    total: order.total,
    state: order.state,
    status: order.status,
    statusReason: currentReasons(order.statusReason),
    payment: order.payment,
    notifications: order.notifications,
    timeline: order.timeline,
    requests: supportRequestOutcomes(order),
    monitor,
    ...(compensation ? { compensation } : {}),
    correlationId: order.correlationId,
    eventId: order.eventId,
    billingAttempts: order.billingAttempts ?? 0,
    published: order.published ?? false,
    ...(order.simulate ? { simulate: order.simulate } : {}),
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
  };
}

/** What a support person's name reads as to a caller without the support role. */
export const SUPPORT_PERSON = 'support';

/** Where the monitor's texts quote a support person: `requested by <name>`, `requested again by <name>` (the name ends the text). */
const QUOTED_REQUESTER = /\brequested (?:again )?by (.+)$/s;

/** Every string in a JSON value. */
function stringsIn(value: unknown, found: string[] = []): string[] {
  if (typeof value === 'string') found.push(value);
  else if (Array.isArray(value)) for (const v of value) stringsIn(v, found);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) stringsIn(v, found);
  return found;
}

/**
 * The view for a caller without the support role: the client that placed the order, polling its
 * `statusUrl`. Everything is there but who in support acted: each support person's name (an
 * actor on the timeline, and wherever a reason or the monitor's status quotes it) reads `support`.
 *
 * The order and the monitor's (and compensation run's) status are read side by side, so a status
 * may quote a request recorded after the order was read: names quoted as requesters count as well
 * as the timeline's actors. A name is replaced where it stands whole, never inside a longer word (a person called
 * `Tim` leaves "Timeout" as it is).
 */
export function withoutSupportNames(view: OrderSupportView): OrderSupportView {
  const actors = view.timeline.map((e) => e.actor).filter((a): a is string => typeof a === 'string');
  const quoted = stringsIn([view.statusReason, view.timeline, view.monitor, view.compensation]).flatMap((text) => {
    const name = QUOTED_REQUESTER.exec(text)?.[1]?.trim();
    return name ? [name] : [];
  });
  const names = [...new Set([...actors, ...quoted])].filter((n) => n !== '' && n !== MONITOR_ACTOR && n !== SUPPORT_PERSON);
  if (names.length === 0) return view;
  // Longest first, so a name inside another is not replaced first.
  const alternatives = names.sort((a, b) => b.length - a.length).map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}_])(?:${alternatives.join('|')})(?![\\p{L}\\p{N}_])`, 'gu');
  const scrub = <T>(value: T): T => {
    if (typeof value === 'string') return value.replace(pattern, SUPPORT_PERSON) as T;
    if (Array.isArray(value)) return value.map(scrub) as T;
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)])) as T;
    return value;
  };
  return {
    ...view,
    statusReason: scrub(view.statusReason),
    timeline: scrub(view.timeline),
    requests: scrub(view.requests),
    monitor: scrub(view.monitor),
    ...(view.compensation ? { compensation: scrub(view.compensation) } : {}),
  };
}

/**
 * The order is the answer, read within the request's wait for Cosmos DB (`storeWaitMs`). The
 * monitor's and the compensation run's statuses are read beside it, each within the monitor
 * client's own bound and outside that wait: a durable backend that does not answer leaves them out
 * (null), and never turns an order Cosmos DB served into a 503. The run's read starts as soon as
 * the order names the run, while the monitor's is still under way: one after the other, the two
 * bounds would add up.
 */
export async function findOrderSupportView(
  orderId: string,
  monitor: MonitorClient,
  deps: OrderSagaDependencies,
  storeWaitMs: number,
): Promise<OrderSupportView | undefined> {
  const monitorStatus = monitor.status(orderId).catch(() => null);
  const order = await withinStoreWait(storeWaitMs, (signal) => deps.orders.get(orderId, { signal }));
  if (!order) return undefined;
  if (order.state !== 'compensating') return orderSupportView(order, await monitorStatus);
  const asked = compensationAskedSinceLastRun(order);
  if (asked) return orderSupportView(order, await monitorStatus, { run: compensationRunsStarted(order) + 1, status: null, requestedAt: asked.at });
  const run = compensationRunsStarted(order);
  const [status, runStatus] = await Promise.all([monitorStatus, run > 0 ? monitor.status(order.id, run).catch(() => null) : null]);
  return orderSupportView(order, status, run > 0 ? { run, status: runStatus } : undefined);
}

export interface OrderSummary {
  id: string;
  customerId: string;
  state: OrderDocument['state'];
  status: OrderDocument['status'];
  total: number;
  currency: string;
  createdAt: string;
  updatedAt: string;
}

export async function listOrders(
  filter: OrderFilter,
  page: { pageSize: number; continuationToken?: string },
  deps: OrderSagaDependencies,
  options: CallOptions = {},
): Promise<{ orders: OrderSummary[]; continuationToken?: string }> {
  const result = await deps.orders.list(filter, page, options);
  return {
    orders: result.orders.map((o) => ({
      id: o.id,
      customerId: o.customerId,
      state: o.state,
      status: o.status,
      total: o.total,
      currency: o.currency,
      createdAt: o.createdAt,
      updatedAt: o.updatedAt,
    })),
    ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}),
  };
}

export async function listInventory(deps: OrderSagaDependencies): Promise<InventoryView[]> {
  return (await deps.inventory.list()).map(inventoryView);
}

export async function findInventoryItem(sku: string, deps: OrderSagaDependencies): Promise<InventoryItemView | undefined> {
  const item = await deps.inventory.get(sku);
  return item ? inventoryItemView(item) : undefined;
}
