/** Catalog items (container `inventory`, id = SKU) and the small catalog local runs are seeded with. */

export interface CatalogItem {
  /** The SKU. */
  id: string;
  name: string;
  price: number;
  available: number;
  reserved: number;
  /** Quantity held per order id: makes a reservation and its release exactly-once per order. */
  holds: Record<string, number>;
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
