/**
 * Unreadable messages: what the consumers dead-lettered that they could not read or that names no
 * order, kept by the app with its body (GET /api/support/deadletters). What the `dead-letters-parked`
 * alert points at; the newest few are shown, with the subscription, the reason and the body.
 */
import { isUuid } from '../../src/domain/orderId';
import { listParkedMessages, ParkedMessage } from './api';
import { byId, focusFirstAdded, h, placeAt } from './dom';
import { formatDateTime, preview } from './format';
import { describeError } from './problem';

/** Messages shown at first, and added by each "Show more". */
const STEP = 20;
const BODY_PREVIEW = 400;

/** `orders/Subscriptions/billing-sub/$DeadLetterQueue` → `billing-sub`. */
function subscriptionOf(source: string | undefined): string {
  const match = /\/Subscriptions\/([^/]+)\//i.exec(source ?? '');
  return match ? match[1]! : (source ?? 'unknown queue');
}

/** An order id a message names: a link to that order when it has the form of one, else the text as it came. */
function orderReference(orderId: string): HTMLElement {
  const id = h('code', {}, orderId);
  return isUuid(orderId) ? h('a', { href: `#/orders/${encodeURIComponent(orderId.toLowerCase())}`, class: 'order-link', title: `Show order ${orderId}` }, id) : id;
}

function bodyText(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body ?? null);
  return preview(text, BODY_PREVIEW);
}

function parkedItem(m: ParkedMessage): HTMLLIElement {
  return h(
    'li',
    { class: 'parked', 'data-message-id': m.messageId ?? '' },
    h(
      'div',
      { class: 'parked__head' },
      h('strong', {}, subscriptionOf(m.source)),
      h('span', {}, formatDateTime(m.parkedAt)),
      h('span', {}, 'message ', h('code', {}, m.messageId ?? 'without id')),
      // An order that does not exist has nothing to open: its id is shown, not linked.
      m.orderId ? h('span', {}, 'names order ', m.orderMissing ? h('code', {}, m.orderId) : orderReference(m.orderId)) : null,
    ),
    m.problem ? h('p', { class: 'parked__reason' }, h('span', { class: 'label' }, m.kind === 'no-such-order' ? 'No such order: ' : 'Unreadable: '), m.problem) : null,
    h('p', { class: 'parked__reason' }, h('span', { class: 'label' }, 'Dead-lettered: '), [m.deadLetterReason, m.deadLetterDescription].filter(Boolean).join(': ') || 'no reason given'),
    h('code', { class: 'parked__body' }, bodyText(m.body)),
  );
}

export class ParkedMessages {
  private readonly rows = byId('parked-rows');
  private readonly summary = byId('parked-summary');
  private readonly error = byId('parked-error');
  private readonly more = byId<HTMLButtonElement>('parked-more');
  private signature = '';
  /** The element of each message listed, by its key. */
  private readonly elements = new Map<string, HTMLLIElement>();
  private shown = STEP;
  /** After "Show more": the place of the first message it adds, which takes focus once listed. */
  private focusFrom: number | undefined;

  constructor(onMore: () => void) {
    this.more.addEventListener('click', () => {
      // The button goes once the last are in, and focus with it: a keyboard user goes on from the
      // first message added rather than from the top of the page.
      this.focusFrom = this.rows.children.length;
      this.shown += STEP;
      onMore();
    });
  }

  async refresh(): Promise<void> {
    let page: { deadLetters: ParkedMessage[]; continuationToken?: string };
    try {
      page = await this.fetchShown();
    } catch (error) {
      // Support role missing, or the API down: say so here, keep what was shown.
      // Each refresh repeats the same failure: an alert set again is read out again.
      const text = `Could not load the unreadable messages: ${describeError(error).detail}`;
      if (this.error.textContent !== text) this.error.textContent = text;
      if (!this.signature) this.summary.textContent = '';
      return;
    }
    if (this.error.textContent) this.error.textContent = '';
    const signature = JSON.stringify(page);
    if (signature === this.signature) return;
    this.signature = signature;
    const messages = page.deadLetters;
    this.summary.textContent =
      messages.length === 0
        ? 'None: every dead-lettered message named an order.'
        : page.continuationToken
          ? `The newest ${messages.length} are shown.`
          : `${messages.length} kept.`;
    // Kept messages do not change: each keeps its element, and only those out of place are moved,
    // so a message coming in does not take keyboard focus off a link to an order further down.
    const listed = new Map<string, ParkedMessage>();
    for (const m of messages) {
      let key = m.id ?? JSON.stringify([m.source, m.messageId, m.parkedAt]);
      while (listed.has(key)) key = `${key}+`;
      listed.set(key, m);
    }
    for (const [key, element] of this.elements) {
      if (!listed.has(key)) {
        element.remove();
        this.elements.delete(key);
      }
    }
    [...listed].forEach(([key, m], index) => {
      const element = this.elements.get(key) ?? parkedItem(m);
      this.elements.set(key, element);
      placeAt(this.rows, element, index);
    });
    this.moveFocusToAdded(Boolean(page.continuationToken));
    this.more.hidden = !page.continuationToken;
  }

  private moveFocusToAdded(hasMore: boolean): void {
    if (this.focusFrom === undefined) return;
    const focus = (first: HTMLElement | undefined) => {
      if (!first) return byId('parked-heading').focus();
      first.tabIndex = -1;
      first.focus();
    };
    if (focusFirstAdded(this.rows, this.focusFrom, hasMore, this.more, focus)) this.focusFrom = undefined;
  }

  /** The newest `shown` messages, page after page, and whether there are more. */
  private async fetchShown(): Promise<{ deadLetters: ParkedMessage[]; continuationToken?: string }> {
    const deadLetters: ParkedMessage[] = [];
    let token: string | undefined;
    do {
      const page = await listParkedMessages(Math.min(this.shown - deadLetters.length, STEP), token);
      deadLetters.push(...page.deadLetters);
      token = page.continuationToken;
    } while (token && deadLetters.length < this.shown);
    return { deadLetters, ...(token ? { continuationToken: token } : {}) };
  }
}
