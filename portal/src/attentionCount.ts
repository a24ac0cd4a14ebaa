/**
 * The header's count of orders that need a person, whatever the list is filtered to: an order that
 * ends in `attention` waits for someone, so the portal says so wherever one is looking. A click
 * lists them.
 */
import { listOrders } from './api';
import { byId } from './dom';
import type { Announce } from './orderList';

/** Counted up to one page (each open portal reads it every few seconds): beyond that the header says "50+". */
const COUNT_PAGE = 50;

export class AttentionCount {
  private readonly button = byId<HTMLButtonElement>('attention-count');
  private last: number | undefined;

  constructor(
    private readonly announce: Announce,
    showThem: () => void,
  ) {
    this.button.addEventListener('click', showThem);
  }

  async refresh(): Promise<void> {
    const page = await listOrders({ state: 'attention' }, undefined, COUNT_PAGE);
    const count = page.items.length;
    const more = Boolean(page.continuationToken);
    const text = `${count}${more ? '+' : ''} ${count === 1 && !more ? 'order needs' : 'orders need'} attention`;
    this.button.hidden = count === 0;
    this.button.textContent = text;
    if (this.last !== undefined && count > this.last) this.announce(`${text}.`);
    this.last = count;
  }
}
