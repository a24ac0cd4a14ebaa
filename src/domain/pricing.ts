/** Prices an order from catalog unit prices. Money is computed in integer cents. */
import type { OrderItem } from './order';

export const CURRENCY = 'EUR';

export function toCents(amount: number): number {
  return Math.round(amount * 100);
}

export function fromCents(cents: number): number {
  return cents / 100;
}

/** Merges repeated SKUs so each SKU is reserved once per order. Keeps first-seen order. */
export function mergeLines(lines: { sku: string; quantity: number }[]): { sku: string; quantity: number }[] {
  const merged = new Map<string, number>();
  for (const line of lines) merged.set(line.sku, (merged.get(line.sku) ?? 0) + line.quantity);
  return [...merged].map(([sku, quantity]) => ({ sku, quantity }));
}

export function priceLines(
  lines: { sku: string; quantity: number }[],
  unitPrices: ReadonlyMap<string, number>,
): { items: OrderItem[]; total: number } {
  let totalCents = 0;
  const items = lines.map((line) => {
    const unitPrice = unitPrices.get(line.sku);
    if (unitPrice === undefined) throw new Error(`no price for ${line.sku}`);
    totalCents += toCents(unitPrice) * line.quantity;
    return { sku: line.sku, quantity: line.quantity, unitPrice: fromCents(toCents(unitPrice)) };
  });
  return { items, total: fromCents(totalCents) };
}
