/** Catalog items (container `inventory`, id = SKU) and the small catalog local runs are seeded with. */

/** The characters a SKU is made of (it is a Cosmos DB id and a URL path segment). */
export const SKU_CHARACTERS = /^[A-Za-z0-9._-]+$/;

/**
 * A SKU made of dots alone is none: `.` and `..` are path steps, which a URL resolves away, so
 * `inventory/..` would be the container itself to Cosmos DB's item URL, and the route another route.
 */
export function isOnlyDots(text: string): boolean {
  return /^\.+$/.test(text);
}

/** Whether `text` can be a SKU: 1-64 of letters, digits, dot, underscore and dash, not dots alone. */
export function isSku(text: string): boolean {
  return text.length >= 1 && text.length <= 64 && SKU_CHARACTERS.test(text) && !isOnlyDots(text);
}

export interface CatalogItem {
  /** The SKU. */
  id: string;
  name: string;
  price: number;
  available: number;
  reserved: number;
  /**
   * Holds per order id: make a reservation and its release exactly-once per order. A plain number
   * is a hold written before holds named the delivery that took them.
   */
  holds: Record<string, StockHold | number>;
}

/** One order's hold on a SKU: the quantity, and the inventory delivery that took it. */
export interface StockHold {
  quantity: number;
  /** The id of the delivery that reserved it (see `OrderDocument.stockHeldBy`). */
  delivery: string;
}

/** A hold as stored, read the same way whichever form it was written in. */
export function readHold(hold: StockHold | number | undefined): { quantity: number; delivery?: string } | undefined {
  if (hold === undefined) return undefined;
  return typeof hold === 'number' ? { quantity: hold } : { quantity: hold.quantity, delivery: hold.delivery };
}

export interface InventoryView {
  sku: string;
  name: string;
  price: number;
  available: number;
  reserved: number;
}

export function inventoryView(item: CatalogItem): InventoryView {
  return { sku: item.id, name: item.name, price: item.price, available: item.available, reserved: item.reserved };
}

/** One SKU for support: the stock, and the orders holding part of `reserved` right now (not yet settled). */
export interface InventoryItemView extends InventoryView {
  holds: { orderId: string; quantity: number }[];
}

export function inventoryItemView(item: CatalogItem): InventoryItemView {
  const holds = Object.entries(item.holds ?? {}).map(([orderId, hold]) => ({ orderId, quantity: readHold(hold)!.quantity }));
  return { ...inventoryView(item), holds };
}

export const LOW_STOCK_SKU = 'LIMITED-EDITION';

export const SEED_CATALOG: readonly Omit<CatalogItem, 'reserved' | 'holds'>[] = [
  { id: 'KEYBOARD-01', name: 'Mechanical keyboard', price: 89.9, available: 1000 },
  { id: 'MOUSE-01', name: 'Wireless mouse', price: 24.5, available: 1000 },
  { id: 'MONITOR-27', name: '27" monitor', price: 249, available: 1000 },
  { id: 'HEADSET-01', name: 'Headset', price: 59.99, available: 1000 },
  { id: 'CABLE-USB-C', name: 'USB-C cable', price: 9.95, available: 1000 },
  { id: 'DOCK-01', name: 'Docking station', price: 149.5, available: 1000 },
  { id: 'WEBCAM-01', name: 'Webcam', price: 45, available: 1000 },
  { id: LOW_STOCK_SKU, name: 'Limited edition desk mat', price: 19.99, available: 3 },
];
