/** Read models: the support view of one order, the orders list, and the inventory views. */
import { inventoryItemView, inventoryView, type InventoryItemView, type InventoryView } from '../domain/catalog';
import type { OrderDocument } from '../domain/order';
import { currentReasons } from '../domain/orderState';
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
  monitor: MonitorStatus | null;
  correlationId: string;
  eventId: string;
  billingAttempts: number;
  published: boolean;
  simulate?: OrderDocument['simulate'];
  createdAt: string;
  updatedAt: string;
}

export function orderSupportView(order: OrderDocument, monitor: MonitorStatus | null): OrderSupportView {
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
    monitor,
    correlationId: order.correlationId,
    eventId: order.eventId,
    billingAttempts: order.billingAttempts ?? 0,
    published: order.published ?? false,
    ...(order.simulate ? { simulate: order.simulate } : {}),
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
  };
}

export async function findOrderSupportView(
  orderId: string,
  monitor: MonitorClient,
  deps: OrderSagaDependencies,
  options: CallOptions = {},
): Promise<OrderSupportView | undefined> {
  // The order is the answer; a monitor status that cannot be read leaves only that part out.
  const [order, status] = await Promise.all([deps.orders.get(orderId, options), monitor.status(orderId).catch(() => null)]);
  return order ? orderSupportView(order, status) : undefined;
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
