/**
 * The order list: state and the three service statuses per order, filtered, refreshed in place.
 * Rows are kept by order id and only their changed cells are rewritten, so a poll never moves
 * keyboard focus or the scroll position.
 */
import { ApiProblem, listOrders, OrderFilter, OrderView, SERVICE_NAMES, signInHref } from './api';
import { badge } from './badge';
import { byId, fill, focusFirstAdded, h, placeAt } from './dom';
import { capitalize, formatDateTime, formatWhen, listChangesAnnouncement, shortId } from './format';

interface Row {
  element: HTMLTableRowElement;
  stateCell: HTMLTableCellElement;
  serviceCells: HTMLTableCellElement[];
  signature: string;
  state: string | undefined;
}

export type Announce = (message: string) => void;

/**
 * A customer id inside a line of the portal's own words. Set apart for the bidirectional algorithm:
 * one that carries a right-to-left override (U+202E, which the API accepts) would otherwise turn
 * the rest of the line around, the order's time and "newest first" with it.
 */
function customerText(customerId: string): HTMLElement {
  return h('bdi', {}, customerId);
}

/** Orders asked for per page, and so shown at first and added by each "Show older orders". */
const PAGE_SIZE = 25;
/** "Not moved for 10 minutes": nothing written on the order for this long (a stuck order looks so to a person). */
const QUIET_FOR_MS = 10 * 60_000;
/**
 * Requests one refresh may make beyond one per page shown: a page may hold fewer orders than asked
 * for, even none, with more to come (Cosmos DB runs the query per partition range), so pages are
 * followed until enough orders are in, within this.
 */
const SHORT_PAGE_ALLOWANCE = 10;

export class OrderList {
  private readonly rows = new Map<string, Row>();
  private readonly body = byId<HTMLTableSectionElement>('order-rows');
  private readonly stateFilter = byId<HTMLSelectElement>('filter-state');
  private readonly deadLetteredFilter = byId<HTMLInputElement>('filter-deadlettered');
  private readonly attentionFilter = byId<HTMLInputElement>('filter-attention');
  private readonly quietFilter = byId<HTMLInputElement>('filter-quiet');
  private readonly summary = byId('orders-summary');
  private readonly empty = byId('orders-empty');
  private readonly more = byId<HTMLButtonElement>('orders-more');
  private pagesShown = 1;
  private selectedId: string | undefined;
  /** Set by the find box: only this customer's orders are listed. */
  private customerId: string | undefined;
  /** Bumped on every filter change so an answer to an older query is dropped. */
  private generation = 0;
  /** Whether the current filters' orders have been shown once (else the summary says "Loading"). */
  private shown = false;
  /** After "Show older orders": the place of the first older order, which takes focus once listed. */
  private focusFrom: number | undefined;

  constructor(
    private readonly announce: Announce,
    private readonly onFiltersChanged: () => void,
  ) {
    const changed = (): void => this.filtersChanged();
    this.stateFilter.addEventListener('change', changed);
    this.deadLetteredFilter.addEventListener('change', changed);
    this.attentionFilter.addEventListener('change', changed);
    this.quietFilter.addEventListener('change', changed);
    this.more.addEventListener('click', () => {
      this.pagesShown += 1;
      // The button goes once the last page is in, and focus with it: a keyboard or screen-reader
      // user goes on from the first older order instead of from the top of the page.
      this.focusFrom = this.rows.size;
      this.onFiltersChanged();
    });
  }

  /** The filters as of now: "not moved for 10 minutes" is ten minutes before each read of the list, its pages read with one instant. */
  get filter(): OrderFilter {
    return {
      state: this.attentionFilter.checked ? 'attention' : this.stateFilter.value || undefined,
      billingStatus: this.deadLetteredFilter.checked ? 'deadlettered' : undefined,
      customerId: this.customerId,
      updatedBefore: this.quietFilter.checked ? new Date(Date.now() - QUIET_FOR_MS).toISOString() : undefined,
    };
  }

  /** Lists the orders that need a person and takes focus to the list. */
  showNeedingAttention(): void {
    if (!this.attentionFilter.checked) {
      this.attentionFilter.checked = true;
      this.filtersChanged();
    }
    byId('orders-heading').focus();
  }

  /** The ids of the orders listed now that start with `prefix` (the short id the portal shows). */
  listedIdsStartingWith(prefix: string): string[] {
    const wanted = prefix.toLowerCase();
    return [...this.rows.keys()].filter((id) => id.toLowerCase().startsWith(wanted));
  }

  /** Lists only this customer's orders (undefined: every customer's). */
  showCustomer(customerId: string | undefined): void {
    if (customerId === this.customerId) return;
    this.customerId = customerId;
    this.filtersChanged();
  }

  private filtersChanged(): void {
    this.stateFilter.disabled = this.attentionFilter.checked;
    this.pagesShown = 1;
    this.focusFrom = undefined;
    this.generation += 1;
    this.clear();
    this.onFiltersChanged();
  }

  select(id: string | undefined): void {
    this.selectedId = id;
    for (const [orderId, row] of this.rows) {
      if (orderId === id) row.element.setAttribute('aria-current', 'true');
      else row.element.removeAttribute('aria-current');
    }
  }

  /** Fetches as many pages as are shown and brings the table up to date. */
  async refresh(): Promise<void> {
    const generation = this.generation;
    const filter = this.filter;
    const orders: OrderView[] = [];
    let token: string | undefined;
    let hasMore = false;
    try {
      const wanted = this.pagesShown * PAGE_SIZE;
      for (let request = 0; request < this.pagesShown + SHORT_PAGE_ALLOWANCE && orders.length < wanted; request += 1) {
        const result = await listOrders(filter, token, PAGE_SIZE);
        orders.push(...result.items);
        token = result.continuationToken ?? undefined;
        hasMore = Boolean(token);
        if (!token) break;
      }
    } catch (error) {
      if (error instanceof ApiProblem && error.status === 400) {
        // The API refuses the query itself (a customer id with a tab pasted from a spreadsheet):
        // asking again will not change that, and the connection is fine. Say what to change.
        if (generation === this.generation) this.showRefused(error);
        return;
      }
      // Rows already shown stay (the header says they are not updating); nothing shown yet is said so.
      if (generation === this.generation) {
        if (error instanceof ApiProblem && (error.status === 401 || error.status === 403)) this.showSupportOnly(error);
        else if (!this.shown) this.summary.textContent = 'The orders could not be loaded yet; trying again.';
      }
      throw error;
    }
    if (generation !== this.generation) return;
    this.render(orders, hasMore);
  }

  /**
   * The list is support's (every customer's orders): not signed in, or signed in without the role.
   * Trying again does not change that, so say what does: the sign-in the API names, where there
   * is one (App Service Authentication's), which brings the person back here.
   */
  private showSupportOnly(problem: ApiProblem): void {
    const signIn = signInHref(problem, location);
    fill(this.summary, `Orders are listed for support staff only: ${problem.detail}. `, signIn ? h('a', { href: signIn }, 'Sign in') : null);
  }

  private showRefused(problem: ApiProblem): void {
    this.rows.clear();
    this.body.replaceChildren();
    this.empty.hidden = true;
    this.more.hidden = true;
    this.shown = true;
    this.summary.textContent = `No orders can be listed for this search: ${(problem.fieldErrors.length ? problem.fieldErrors : [problem.detail]).join('; ')}.`;
  }

  private clear(): void {
    this.rows.clear();
    this.body.replaceChildren();
    this.summary.textContent = 'Loading orders…';
    this.shown = false;
  }

  private render(orders: OrderView[], hasMore: boolean): void {
    this.shown = true;
    const shown = new Map<string, OrderView>();
    for (const order of orders) if (order?.id && !shown.has(order.id)) shown.set(order.id, order);
    for (const [id, row] of this.rows) {
      if (!shown.has(id)) {
        row.element.remove();
        this.rows.delete(id);
      }
    }
    const changes: { id: string; state: string | undefined }[] = [];
    [...shown.values()].forEach((order, index) => {
      const row = this.rows.get(order.id) ?? this.createRow(order);
      if (this.update(row, order)) changes.push({ id: order.id, state: order.state });
      placeAt(this.body, row.element, index);
    });
    const told = listChangesAnnouncement(changes, this.selectedId);
    if (told) this.announce(told);
    this.empty.hidden = shown.size > 0 || hasMore;
    this.moveFocusToOlder(hasMore);
    this.more.hidden = !hasMore;
    const { state, billingStatus, updatedBefore } = this.filter;
    const filtered = Boolean(state || billingStatus || updatedBefore);
    fill(
      this.summary,
      `${shown.size}${hasMore ? '+' : ''} ${shown.size === 1 ? 'order' : 'orders'}`,
      this.customerId ? [' of ', customerText(this.customerId)] : null,
      `${filtered ? (shown.size === 1 && !hasMore ? ' matches the filters' : ' match the filters') : ''}, newest first.`,
    );
  }

  private moveFocusToOlder(hasMore: boolean): void {
    if (this.focusFrom === undefined) return;
    const focus = (first: HTMLElement | undefined) => (first?.querySelector<HTMLElement>('a') ?? byId('orders-heading')).focus();
    if (focusFirstAdded(this.body, this.focusFrom, hasMore, this.more, focus)) this.focusFrom = undefined;
  }

  private createRow(order: OrderView): Row {
    const link = h(
      'a',
      { href: `#/orders/${encodeURIComponent(order.id)}`, class: 'order-link', title: order.id },
      h('span', { class: 'order-link__id' }, shortId(order.id)),
      h('span', { class: 'visually-hidden' }, ` (order ${order.id})`),
    );
    const stateCell = h('td', { 'data-label': 'State' });
    const serviceCells = SERVICE_NAMES.map((service) => h('td', { 'data-label': capitalize(service) }));
    const element = h(
      'tr',
      { 'data-order-id': order.id },
      h(
        'th',
        { scope: 'row', 'data-label': 'Order' },
        link,
        h(
          'span',
          { class: 'order-customer' },
          order.customerId ? customerText(order.customerId) : '',
          order.createdAt ? [' · ', h('time', { datetime: order.createdAt, title: formatDateTime(order.createdAt) }, formatWhen(order.createdAt))] : null,
        ),
      ),
      stateCell,
      serviceCells,
    );
    if (order.id === this.selectedId) element.setAttribute('aria-current', 'true');
    const row: Row = { element, stateCell, serviceCells, signature: '', state: order.state };
    this.rows.set(order.id, row);
    return row;
  }

  /** Whether the order's state changed since the row last showed it (not for a new row). */
  private update(row: Row, order: OrderView): boolean {
    const signature = JSON.stringify([order.state, order.status]);
    if (signature === row.signature) return false;
    const isNew = row.signature === '';
    row.signature = signature;
    fill(row.stateCell, badge(order.state));
    SERVICE_NAMES.forEach((service, i) => fill(row.serviceCells[i]!, badge(order.status?.[service], service)));
    row.element.dataset.state = order.state ?? '';
    const changed = !isNew && row.state !== order.state;
    row.state = order.state;
    return changed;
  }
}
