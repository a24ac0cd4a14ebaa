/**
 * The find box above the order list. What support staff are given on a call is an order id or a
 * customer id: an id of an existing order opens it, anything else lists that customer's orders.
 */
import { isOrderId, isUuid } from '../../src/domain/orderId';
import { ApiProblem, getOrder } from './api';
import { byId, fill } from './dom';
import { showProblem } from './problem';

/** The portal shows an order by the first 8 characters of its id (a UUID). */
const SHORT_ID = /^[0-9a-f]{8}$/i;

export class FindBox {
  private readonly form = byId<HTMLFormElement>('find-form');
  private readonly input = byId<HTMLInputElement>('find-input');
  private readonly clearButton = byId<HTMLButtonElement>('find-clear');
  private readonly note = byId('find-note');
  private readonly error = byId('find-error');

  constructor(
    private readonly openOrder: (orderId: string) => void,
    private readonly showCustomer: (customerId: string | undefined) => void,
    /** The ids of the orders listed now that start with a short id. */
    private readonly listedIdsStartingWith: (prefix: string) => string[],
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
      this.clear();
      this.input.focus();
    });
  }

  /** Empties the box and lists every customer's orders again. */
  clear(): void {
    this.input.value = '';
    this.listAll();
  }

  private async find(): Promise<void> {
    const value = this.input.value.trim();
    fill(this.error);
    fill(this.note);
    if (!value) {
      this.listAll();
      return;
    }
    if (isOrderId(value)) {
      try {
        // The order as stored: an id pasted in capitals opens under its own id.
        const order = await getOrder(value);
        this.open(order.id);
        return;
      } catch (error) {
        // Not an order: a customer id, most likely. Anything else is worth saying.
        if (!(error instanceof ApiProblem && error.status === 404)) {
          showProblem(this.error, error, 'Could not look it up');
          return;
        }
      }
    }
    if (SHORT_ID.test(value)) {
      const listed = this.listedIdsStartingWith(value);
      if (listed.length === 1) {
        this.open(listed[0]!);
        return;
      }
    }
    this.clearButton.hidden = false;
    this.showCustomer(value);
    // Say what was not found, rather than leave an empty customer list to explain it.
    if (isUuid(value)) {
      this.note.textContent = `No order has the id ${value}; below are the orders of a customer with that id, if any.`;
    } else if (SHORT_ID.test(value)) {
      this.note.textContent = `${value} may be the short id of an order not listed here: paste the order's whole id to open it. Below are the orders of a customer with that id, if any.`;
    }
  }

  private open(orderId: string): void {
    // The order may be anyone's: stop listing the customer asked for before.
    this.listAll();
    this.openOrder(orderId);
  }

  private listAll(): void {
    fill(this.error);
    fill(this.note);
    this.clearButton.hidden = true;
    this.showCustomer(undefined);
  }
}
