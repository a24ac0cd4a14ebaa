/**
 * The header's count of orders that need a person, whatever the list is filtered to: an order that
 * ends in `attention` waits for someone, so the portal says so wherever one is looking. A click
 * lists them.
 */
import { listOrders } from './api';
import { byId } from './dom';
import type { Announce } from './orderList';

/** Counted up to 50 (each open portal reads it every few seconds): beyond that the header says "50+". */
const COUNT_PAGE = 50;
/** Most requests one count makes. */
const MAX_REQUESTS = 10;

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
    // A page may hold fewer orders than asked for, even none, with more to come (Cosmos DB runs
    // the query per partition range): follow it, or orders in attention would go uncounted.
    let count = 0;
    let token: string | undefined;
    for (let request = 0; request < MAX_REQUESTS && count < COUNT_PAGE; request += 1) {
      const page = await listOrders({ state: 'attention' }, token, COUNT_PAGE - count);
      count += page.items.length;
      token = page.continuationToken ?? undefined;
      if (!token) break;
    }
    const more = token !== undefined;
    const text = `${count}${more ? '+' : ''} ${count === 1 && !more ? 'order needs' : 'orders need'} attention`;
    this.button.hidden = count === 0 && !more;
    this.button.textContent = text;
    if (this.last !== undefined && count > this.last) this.announce(`${text}.`);
    this.last = count;
  }
}
