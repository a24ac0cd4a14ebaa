/**
 * The find box above the order list. What support staff are given on a call is an order id or a
 * customer id: an id of an existing order opens it, anything else lists that customer's orders.
 */
import { isOrderId } from '../../src/domain/orderId';
import { ApiProblem, getOrder } from './api';
import { byId, fill } from './dom';
import { showProblem } from './problem';

export class FindBox {
  private readonly form = byId<HTMLFormElement>('find-form');
  private readonly input = byId<HTMLInputElement>('find-input');
  private readonly clearButton = byId<HTMLButtonElement>('find-clear');
  private readonly error = byId('find-error');

  constructor(
    private readonly openOrder: (orderId: string) => void,
    private readonly showCustomer: (customerId: string | undefined) => void,
  ) {
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.find();
    });
    // The search field's own clear button (and Escape) empties it: list everyone's orders again.
    this.input.addEventListener('search', () => {
      if (!this.input.value.trim()) this.listAll();
    });
    this.clearButton.addEventListener('click', () => {
      this.input.value = '';
      this.input.focus();
      this.listAll();
    });
  }

  private async find(): Promise<void> {
    const value = this.input.value.trim();
    fill(this.error);
    if (!value) {
      this.listAll();
      return;
    }
    if (isOrderId(value)) {
      try {
        // The order as stored: an id pasted in capitals opens under its own id.
        const order = await getOrder(value);
        this.openOrder(order.id);
        return;
      } catch (error) {
        // Not an order: a customer id, most likely. Anything else is worth saying.
        if (!(error instanceof ApiProblem && error.status === 404)) {
          showProblem(this.error, error, 'Could not look it up');
          return;
        }
      }
    }
    this.clearButton.hidden = false;
    this.showCustomer(value);
  }

  private listAll(): void {
    fill(this.error);
    this.clearButton.hidden = true;
    this.showCustomer(undefined);
  }
}
