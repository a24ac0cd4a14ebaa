/**
 * The form that places an order: customer, one or more items picked from the inventory, and,
 * where fault injection is enabled, how many billing attempts should fail for this order.
 */
import { ApiProblem, InventoryItem, NewOrder, placeOrder } from './api';
import { append, byId, fill, h } from './dom';
import { CURRENCY } from '../../src/domain/pricing';
import { formatMoney, shortId } from './format';
import { showProblem } from './problem';

export class PlaceOrderForm {
  private readonly form = byId<HTMLFormElement>('order-form');
  private readonly customer = byId<HTMLInputElement>('customer-id');
  private readonly itemList = byId<HTMLOListElement>('order-items');
  private readonly addButton = byId<HTMLButtonElement>('add-item');
  private readonly simulateField = byId('simulate-field');
  private readonly billingFailures = byId<HTMLInputElement>('billing-failures');
  private readonly submit = byId<HTMLButtonElement>('place-order-submit');
  private readonly status = byId('order-form-status');
  private readonly error = byId('order-form-error');
  private inventory: InventoryItem[] = [];
  private inventoryNotLoaded = false;
  private nextRowId = 1;
  /**
   * One key per draft: a double submit of the same order is answered with the same order, while
   * any edit starts a new draft (the API rejects a reused key with a different body).
   */
  private idempotencyKey = newKey();

  constructor(private readonly onPlaced: (orderId: string) => void) {
    this.addButton.addEventListener('click', () => {
      const row = this.addRow();
      row.querySelector('select')?.focus();
    });
    this.form.addEventListener('input', () => (this.idempotencyKey = newKey()));
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.send();
    });
    this.addRow();
  }

  setInventory(items: InventoryItem[]): void {
    this.inventory = items;
    this.inventoryNotLoaded = false;
    for (const select of this.itemList.querySelectorAll('select')) this.fillOptions(select);
  }

  /** The products could not be read (yet): the empty list says so rather than "Loading". */
  setInventoryNotLoaded(): void {
    this.inventoryNotLoaded = true;
    for (const select of this.itemList.querySelectorAll('select')) this.fillOptions(select);
  }

  setSimulationAvailable(available: boolean): void {
    this.simulateField.hidden = !available;
  }

  private addRow(): HTMLLIElement {
    const n = this.nextRowId++;
    const select = h('select', { id: `item-sku-${n}`, name: 'sku', required: true });
    this.fillOptions(select);
    const remove = h('button', { type: 'button', class: 'button--quiet item-row__remove' }, 'Remove');
    const row = h(
      'li',
      { class: 'item-row' },
      h('div', { class: 'field field--grow' }, h('label', { for: select.id }, 'Product'), select),
      h(
        'div',
        { class: 'field field--quantity' },
        h('label', { for: `item-qty-${n}` }, 'Quantity'),
        h('input', { id: `item-qty-${n}`, name: 'quantity', type: 'number', min: 1, step: 1, value: 1, required: true, inputmode: 'numeric' }),
      ),
      remove,
    );
    remove.addEventListener('click', () => {
      row.remove();
      this.idempotencyKey = newKey();
      this.updateRemoveButtons();
      this.addButton.focus();
    });
    this.itemList.appendChild(row);
    this.updateRemoveButtons();
    return row;
  }

  /** An order needs at least one item, so the last row cannot be removed. */
  private updateRemoveButtons(): void {
    const rows = [...this.itemList.querySelectorAll<HTMLLIElement>('.item-row')];
    rows.forEach((row, i) => {
      const remove = row.querySelector<HTMLButtonElement>('.item-row__remove')!;
      remove.hidden = rows.length === 1;
      remove.setAttribute('aria-label', `Remove item ${i + 1}`);
    });
  }

  private fillOptions(select: HTMLSelectElement): void {
    const chosen = select.value;
    fill(
      select,
      this.inventory.length === 0 ? h('option', { value: '' }, this.inventoryNotLoaded ? 'Products could not be loaded yet' : 'Loading products…') : null,
      this.inventory.map((item) =>
        h(
          'option',
          { value: item.sku },
          `${item.name ? `${item.name} (${item.sku})` : item.sku} · ${formatMoney(item.price, CURRENCY)} · ${
            typeof item.available === 'number' ? `${item.available} available` : 'stock unknown'
          }`,
        ),
      ),
    );
    if (chosen && this.inventory.some((item) => item.sku === chosen)) select.value = chosen;
  }

  private readOrder(): NewOrder {
    const items = [...this.itemList.querySelectorAll<HTMLLIElement>('.item-row')].map((row) => ({
      sku: row.querySelector('select')!.value,
      quantity: Number(row.querySelector<HTMLInputElement>('input[name="quantity"]')!.value),
    }));
    const order: NewOrder = { customerId: this.customer.value.trim(), items };
    const failures = Number(this.billingFailures.value);
    if (!this.simulateField.hidden && failures > 0) order.simulate = { billingFailures: failures };
    return order;
  }

  private async send(): Promise<void> {
    this.error.replaceChildren();
    this.status.textContent = 'Placing order…';
    this.submit.disabled = true;
    try {
      const accepted = await placeOrder(this.readOrder(), this.idempotencyKey);
      this.idempotencyKey = newKey();
      fill(
        this.status,
        `Order ${shortId(accepted.orderId)} accepted. `,
        h('a', { href: `#/orders/${encodeURIComponent(accepted.orderId)}` }, `Show order ${shortId(accepted.orderId)}`),
      );
      this.onPlaced(accepted.orderId);
    } catch (error) {
      this.status.textContent = '';
      if (error instanceof ApiProblem && error.orderId) {
        // The order was written and goes on; the key is kept, so placing again retries this order.
        const id = error.orderId;
        showProblem(this.error, error, `Order ${shortId(id)} was recorded but not all of it went through yet`);
        const follow = h('a', { href: `#/orders/${encodeURIComponent(id)}` }, `Show order ${shortId(id)}`);
        append(this.error, [h('p', {}, follow, '. Place order again retries this order; it does not place a second one.')]);
        this.onPlaced(id);
      } else {
        showProblem(this.error, error, 'The order was not placed');
      }
    } finally {
      this.submit.disabled = false;
    }
  }
}

function newKey(): string {
  return typeof crypto.randomUUID === 'function'
    ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
