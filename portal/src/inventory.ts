/** The stock table: what each SKU costs, and how much is available and reserved right now. */
import { InventoryItem, listInventory } from './api';
import { byId, fill, h } from './dom';
import { CURRENCY } from '../../src/domain/pricing';
import { formatMoney } from './format';

export class InventoryTable {
  private readonly rows = byId<HTMLTableSectionElement>('inventory-rows');
  private readonly empty = byId('inventory-empty');
  private signature = '';

  constructor(
    private readonly onItems: (items: InventoryItem[]) => void,
    private readonly onNotLoaded: () => void,
  ) {}

  async refresh(): Promise<void> {
    let items: InventoryItem[];
    try {
      items = await listInventory();
    } catch (error) {
      // Never loaded: say so instead of an empty table (the header says why).
      if (!this.signature) {
        this.empty.textContent = 'The stock could not be loaded yet; trying again.';
        this.empty.hidden = false;
        this.onNotLoaded();
      }
      throw error;
    }
    const signature = JSON.stringify(items);
    if (signature === this.signature) return;
    this.signature = signature;
    const sorted = [...items].sort((a, b) => a.sku.localeCompare(b.sku));
    fill(
      this.rows,
      sorted.map((item) =>
        h(
          'tr',
          { 'data-sku': item.sku },
          h('th', { scope: 'row', 'data-label': 'SKU' }, h('code', {}, item.sku), item.name ? h('span', { class: 'inventory-name' }, item.name) : null),
          h('td', { 'data-label': 'Price', class: 'number' }, formatMoney(item.price, CURRENCY)),
          h('td', { 'data-label': 'Available', class: 'number' }, count(item.available)),
          h('td', { 'data-label': 'Reserved', class: 'number' }, count(item.reserved)),
        ),
      ),
    );
    this.empty.textContent = 'No products in the catalog.';
    this.empty.hidden = items.length > 0;
    this.onItems(sorted);
  }
}

function count(value: number | undefined): string {
  return typeof value === 'number' ? String(value) : '–';
}
