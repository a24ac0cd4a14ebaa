/**
 * One order, everything about it: the three service lanes, payment, notifications, the monitor,
 * the timeline, and the support actions. The frame (heading, buttons, results) is built once per
 * selected order; only the data parts are redrawn, and only when the order changed.
 */
import { ApiProblem, getOrder, OrderView, runSupportAction, SERVICE_NAMES, ServiceName, SupportAction, SupportRequestOutcome, TimelineEntry } from './api';
import { badge } from './badge';
import { confirmAction } from './confirmDialog';
import { byId, fill, h } from './dom';
import { capitalize, formatDateTime, formatMoney, formatPreciseTime, humanizeKind, shortId, statusLabel } from './format';
import { actionOutcome, compensateRefusal, requeueRefusal } from './actionRules';
import { isNotedDeadLetter } from '../../src/domain/orderState';
import { describeError, showProblem } from './problem';
import type { Announce } from './orderList';

export class OrderDetail {
  private readonly heading = byId('detail-heading');
  private readonly headingState = byId('detail-state');
  private readonly placeholder = byId('detail-empty');
  private readonly body = byId('detail-body');
  private readonly loadError = byId('detail-error');
  private readonly requeueButton = byId<HTMLButtonElement>('action-requeue');
  private readonly compensateButton = byId<HTMLButtonElement>('action-compensate');
  private readonly actionHint = byId('action-hint');
  private readonly actionStatus = byId('action-status');
  private readonly actionError = byId('action-error');
  private orderId: string | undefined;
  private order: OrderView | undefined;
  private signature = '';
  /** The load failure the alert shows now: each poll repeats it, and an alert refilled is read out again. */
  private loadErrorShown = '';

  constructor(
    private readonly announce: Announce,
    private readonly onActed: () => void,
  ) {
    this.requeueButton.addEventListener('click', () => void this.act('requeue'));
    this.compensateButton.addEventListener('click', () => void this.act('compensate'));
  }

  get selectedId(): string | undefined {
    return this.orderId;
  }

  /** Switches to another order (or none); `focus` moves keyboard focus to the heading. */
  show(id: string | undefined, focus: boolean): void {
    if (id !== this.orderId) {
      this.orderId = id;
      this.order = undefined;
      this.signature = '';
      this.actionStatus.textContent = '';
      this.actionError.replaceChildren();
      this.clearLoadError();
      // Only the id is set in the monospace face the list uses for ids; the words stay in the page's.
      if (id) fill(this.heading, 'Order ', h('span', { class: 'order-id' }, shortId(id)));
      else this.heading.textContent = 'Order detail';
      this.headingState.replaceChildren();
      this.placeholder.hidden = Boolean(id);
      this.body.hidden = true;
    }
    if (focus && id) {
      // On a phone the detail sits below the list: bring its top into view. Beside the list
      // (desktop) it is already visible and the page should not jump.
      const { top, bottom } = this.heading.getBoundingClientRect();
      if (top < 0 || bottom > window.innerHeight) this.heading.scrollIntoView({ block: 'start' });
      this.heading.focus({ preventScroll: true });
    }
  }

  async refresh(): Promise<void> {
    const id = this.orderId;
    if (!id) return;
    let order: OrderView;
    try {
      order = await getOrder(id);
    } catch (error) {
      // Shown here, next to the order, rather than as a connection problem: a 404 is about this id.
      if (id !== this.orderId) return;
      const { status, detail } = describeError(error);
      if (`${status} ${detail}` !== this.loadErrorShown) {
        showProblem(this.loadError, error, `Could not load order ${shortId(id)}`);
        this.loadErrorShown = `${status} ${detail}`;
      }
      if (error instanceof ApiProblem && error.status === 404) this.body.hidden = true;
      return;
    }
    if (id !== this.orderId) return;
    this.clearLoadError();
    const signature = JSON.stringify(order);
    if (signature === this.signature) return;
    this.announceChanges(this.order, order);
    this.signature = signature;
    this.order = order;
    this.render(order);
  }

  private clearLoadError(): void {
    if (this.loadErrorShown) this.loadError.replaceChildren();
    this.loadErrorShown = '';
  }

  private announceChanges(before: OrderView | undefined, after: OrderView): void {
    if (!before) return;
    const changes = SERVICE_NAMES.filter((s) => before.status?.[s] !== after.status?.[s]).map(
      (s) => `${s} ${statusLabel(after.status?.[s])}`,
    );
    if (before.state !== after.state) changes.unshift(`order ${statusLabel(after.state)}`);
    if (changes.length > 0) this.announce(`Order ${shortId(after.id)}: ${changes.join(', ')}.`);
  }

  private render(order: OrderView): void {
    this.body.hidden = false;
    this.body.dataset.state = order.state ?? '';
    fill(this.headingState, badge(order.state, 'State'));
    this.renderSummary(order);
    this.renderActions(order);
    this.renderLanes(order);
    this.renderRequests(order);
    this.renderPayment(order);
    this.renderNotifications(order);
    this.renderMonitor(order);
    this.renderTimeline(order);
  }

  private renderSummary(order: OrderView): void {
    const items = (order.items ?? []).map((item) =>
      h(
        'li',
        {},
        `${item.quantity} × ${item.sku}`,
        typeof item.unitPrice === 'number' ? ` at ${formatMoney(item.unitPrice, order.currency)}` : '',
      ),
    );
    fill(
      byId('detail-summary'),
      term('Order id', h('code', {}, order.id)),
      term('Customer', order.customerId ?? '–'),
      term('Items', items.length ? h('ul', { class: 'plain-list' }, items) : '–'),
      term('Total', formatMoney(order.total, order.currency)),
      term('Created', timeElement(order.createdAt, formatDateTime)),
      term('Updated', timeElement(order.updatedAt, formatDateTime)),
      term('Correlation id', order.correlationId ? h('code', {}, order.correlationId) : '–'),
    );
  }

  private renderActions(order: OrderView): void {
    const noRequeue = requeueRefusal(order);
    const noCompensate = compensateRefusal(order);
    // A disabled button loses keyboard focus to the page: keep it next to the actions instead.
    const focused = document.activeElement;
    if ((focused === this.requeueButton && noRequeue) || (focused === this.compensateButton && noCompensate)) {
      this.actionStatus.focus({ preventScroll: true });
    }
    this.requeueButton.disabled = noRequeue !== undefined;
    this.compensateButton.disabled = noCompensate !== undefined;
    const hints: string[] = [];
    if (noRequeue) hints.push(`Requeue: ${noRequeue}.`);
    if (noCompensate) hints.push(`Compensate: ${noCompensate}.`);
    this.actionHint.textContent = hints.join(' ');
  }

  private renderLanes(order: OrderView): void {
    const timeline = order.timeline ?? [];
    fill(
      byId('detail-lanes'),
      SERVICE_NAMES.map((service) => {
        const status = order.status?.[service];
        const events = timeline.filter((e) => e.service === service);
        // A dead-letter only noted (of a message no longer in play, or one the consumers could not
        // read) says nothing of the service's own state: "last: dead-lettered" on a done service misleads.
        const progress = events.filter((e) => !(e.kind === 'deadlettered' && isNotedDeadLetter(e.detail)));
        const last = progress[progress.length - 1];
        // Every delivery leaves one entry: `delivery` when it claimed, `duplicate-ignored` when the
        // status had moved on. (A message's own delivery count starts again with each requeue.)
        const deliveries = events.filter((e) => e.kind === 'delivery' || e.kind === 'duplicate-ignored').length;
        const reason = order.statusReason?.[service];
        return h(
          'li',
          { class: 'lane', 'data-service': service, 'data-status': status ?? 'unknown' },
          h('h4', { class: 'lane__name' }, capitalize(service)),
          badge(status, service),
          reason ? h('p', { class: 'lane__reason' }, h('span', { class: 'label' }, 'Reason: '), reason) : null,
          h(
            'p',
            { class: 'lane__meta' },
            deliveries > 0 ? `Deliveries: ${deliveries}` : 'No deliveries recorded',
            last ? ` · last: ${humanizeKind(last.kind)} at ${formatPreciseTime(last.at)}` : '',
          ),
        );
      }),
    );
  }

  private renderRequests(order: OrderView): void {
    const requests = Array.isArray(order.requests) ? order.requests : [];
    fill(
      byId('detail-requests'),
      requests.length === 0 ? h('li', { class: 'muted' }, 'No requests made') : requests.map((request) => supportRequest(request)),
    );
  }

  private renderPayment(order: OrderView): void {
    const charged = order.payment?.charged;
    const refunded = order.payment?.refunded;
    const net = typeof charged === 'number' ? charged - (refunded ?? 0) : undefined;
    fill(
      byId('detail-payment'),
      term('Charged', formatMoney(charged, order.currency)),
      term('Refunded', formatMoney(refunded, order.currency)),
      term('Net', formatMoney(net, order.currency)),
    );
  }

  private renderNotifications(order: OrderView): void {
    const sent = order.notifications ?? [];
    fill(
      byId('detail-notifications'),
      sent.length === 0
        ? h('li', { class: 'muted' }, 'None sent yet')
        : sent.map((n) => h('li', {}, h('strong', {}, n.kind), ' at ', timeElement(n.at, formatPreciseTime))),
    );
  }

  private renderMonitor(order: OrderView): void {
    const monitor = order.monitor;
    fill(
      byId('detail-monitor'),
      monitor
        ? [term('Runtime status', monitor.runtimeStatus ?? '–'), ...customStatusTerms(monitor.customStatus)]
        : term('Runtime status', 'No monitor information'),
      compensationTerms(order.compensation),
    );
  }

  private renderTimeline(order: OrderView): void {
    // In the order the entries were written (the timeline is only appended to), as the monitor and
    // the support rules read it: their times come from different machines' clocks and may disagree.
    const entries = order.timeline ?? [];
    fill(
      byId('detail-timeline'),
      entries.length === 0
        ? h('li', { class: 'muted' }, 'No events recorded yet')
        : entries.map((entry) => timelineEntry(entry)),
    );
  }

  private async act(action: SupportAction): Promise<void> {
    const id = this.orderId;
    if (!id) return;
    const confirmed = await confirmAction(
      action === 'requeue'
        ? {
            title: `Requeue order ${shortId(id)}?`,
            message: 'The order is sent to billing again, to try the payment once more.',
            confirmLabel: 'Requeue',
          }
        : this.order?.state === 'attention'
          ? {
              title: `Compensate order ${shortId(id)} again?`,
              message:
                'Its compensation runs again once you have fixed what failed: the steps that did not finish are retried, and those already done are not repeated.',
              confirmLabel: 'Compensate',
              destructive: true,
            }
          : {
              title: `Compensate order ${shortId(id)}?`,
              message:
                'The order is cancelled: reserved stock is released, any charge is refunded and the customer gets a cancellation notice. This cannot be undone.',
              confirmLabel: 'Compensate',
              destructive: true,
            },
    );
    if (!confirmed) return;
    // The dialog gives focus back to this button, which a poll may have disabled meanwhile (someone
    // else acted): focus would fall to the top of the page. Keep it where the answer is shown.
    if ((action === 'requeue' ? this.requeueButton : this.compensateButton).disabled) this.actionStatus.focus({ preventScroll: true });
    this.actionStatus.textContent = `${capitalize(action)} sent…`;
    this.actionError.replaceChildren();
    try {
      const result = await runSupportAction(id, action);
      if (id !== this.orderId) return;
      this.actionStatus.textContent = actionOutcome(result, action, id);
    } catch (error) {
      if (id !== this.orderId) return;
      this.actionStatus.textContent = '';
      showProblem(this.actionError, error, `${capitalize(action)} failed`);
    }
    this.onActed();
  }
}

function term(name: string, value: Node | string | (Node | string)[]): HTMLDivElement {
  return h('div', { class: 'term' }, h('dt', {}, name), h('dd', {}, value));
}

function timeElement(iso: string | undefined, format: (iso: string | undefined) => string): HTMLTimeElement {
  return h('time', { datetime: iso ?? '' }, format(iso));
}

function timelineEntry(entry: Partial<TimelineEntry>): HTMLLIElement {
  const kind = entry.kind ?? 'event';
  return h(
    'li',
    { class: `timeline__entry timeline__entry--${kind.replace(/[^a-z-]/gi, '')}`, 'data-kind': kind },
    h('time', { datetime: entry.at ?? '', class: 'timeline__time' }, formatPreciseTime(entry.at)),
    h(
      'div',
      { class: 'timeline__body' },
      h(
        'p',
        { class: 'timeline__headline' },
        h('strong', {}, humanizeKind(kind)),
        entry.service ? ` · ${entry.service as ServiceName}` : '',
        typeof entry.deliveryCount === 'number' ? ` · delivery ${entry.deliveryCount}` : '',
        entry.actor ? h('span', { class: 'timeline__actor' }, ` · by ${entry.actor}`) : '',
      ),
      entry.reason ? h('p', { class: 'timeline__reason' }, h('span', { class: 'label' }, 'Reason: '), entry.reason) : null,
      entry.detail ? h('p', { class: 'timeline__detail' }, entry.detail) : null,
    ),
  );
}

const REQUEST_OUTCOME: Record<string, string> = { pending: 'Pending', 'carried-out': 'Carried out', overtaken: 'Overtaken' };

/** One person's request: what, who, when, and what became of it (the API's words). */
function supportRequest(request: Partial<SupportRequestOutcome>): HTMLLIElement {
  const outcome = typeof request.outcome === 'string' ? request.outcome : 'unknown';
  return h(
    'li',
    { class: 'request', 'data-action': request.action ?? '', 'data-outcome': outcome },
    h(
      'p',
      { class: 'request__headline' },
      h('strong', {}, capitalize(request.action ?? 'request')),
      request.by ? ` · by ${request.by}` : '',
      request.at ? [' at ', timeElement(request.at, formatPreciseTime)] : '',
    ),
    h(
      'p',
      { class: 'request__outcome' },
      h('span', { class: 'label' }, `${REQUEST_OUTCOME[outcome] ?? capitalize(outcome)}`),
      request.carriedOutAt ? [' at ', timeElement(request.carriedOutAt, formatPreciseTime)] : '',
      request.detail ? `: ${request.detail}` : '',
    ),
  );
}

/** The monitor's custom status fields worth reading, in reading order; the rest repeats the order. */
const MONITOR_FIELDS: [key: string, label: string, isTime?: boolean][] = [
  ['phase', 'Phase'],
  ['detail', 'Detail'],
  ['nextCheckAt', 'Next check', true],
  ['billingRequeues', 'Automatic requeues'],
  ['checkedAt', 'Last check', true],
];

/** Runtime statuses of a run stopped before its end: its custom status then tells where it stopped, not what it is doing. */
const RUN_STOPPED = ['Failed', 'Terminated', 'Canceled'];

interface CompensationCustomStatus {
  phase?: unknown;
  current?: unknown;
  done?: unknown;
  failures?: unknown;
  waiting?: { until?: unknown; why?: unknown } | null;
}

/**
 * The compensation run under way: which, the step it is on, what is done, what failed, and a wait
 * for Cosmos DB. Every shape `compensateOrder` leaves: planning, a step, recording the outcome, and
 * a run that ended or stopped (whose last custom status still names the step and wait it was in).
 */
function compensationTerms(compensation: OrderView['compensation']): HTMLDivElement[] {
  if (!compensation || typeof compensation.run !== 'number') return [];
  if (typeof compensation.requestedAt === 'string') {
    // Asked for again: the monitor begins the run at its next look.
    return [
      term('Compensation run', `${compensation.run} · asked for, not begun yet`),
      term('Asked for at', timeElement(compensation.requestedAt, formatPreciseTime)),
    ];
  }
  const status = compensation.status;
  const runtime = status?.runtimeStatus;
  const custom: CompensationCustomStatus = status?.customStatus !== null && typeof status?.customStatus === 'object' ? (status.customStatus as CompensationCustomStatus) : {};
  const done = Array.isArray(custom.done) ? custom.done.filter((d): d is string => typeof d === 'string') : [];
  // A step that failed is not retried by this run, which goes on to the others and ends in attention.
  const failures = Array.isArray(custom.failures)
    ? custom.failures.flatMap((f: { name?: unknown; error?: unknown } | null) =>
        f && typeof f.name === 'string' ? [`${stepWords(f.name)}${typeof f.error === 'string' && f.error ? `: ${f.error}` : ''}`] : [],
      )
    : [];
  const stopped = runtime !== undefined && RUN_STOPPED.includes(runtime);
  const over = stopped || runtime === 'Completed';
  const step = runStep(custom);
  const waiting = !over && custom.waiting && typeof custom.waiting.until === 'string' ? custom.waiting : undefined;
  return [
    term('Compensation run', `${compensation.run}${runtime ? ` · ${runtime}` : ' · status not known'}`),
    ...(step && runtime !== 'Completed' ? [term(stopped ? 'Compensation stopped at' : 'Compensation step', step)] : []),
    ...(done.length ? [term('Compensation done', done.map(stepWords).join(', '))] : []),
    ...(failures.length ? [term('Compensation failed', failures.join('; '))] : []),
    ...(waiting
      ? [
          term('Compensation waits until', timeElement(String(waiting.until), formatPreciseTime)),
          term('Because', typeof waiting.why === 'string' ? waiting.why : 'Cosmos DB did not serve the step'),
        ]
      : []),
  ];
}

/** A compensation step's name in words: `refundPayment` reads "refund payment". */
function stepWords(name: string): string {
  return name.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

/** What a run is doing by its custom status: planning, a step, or writing its outcome on the order. */
function runStep(custom: CompensationCustomStatus): string | undefined {
  if (typeof custom.current === 'string') return stepWords(custom.current);
  if (custom.phase === 'planning') return 'planning';
  if (custom.phase === 'cancelled' || custom.phase === 'attention') return `recording the outcome (${statusLabel(custom.phase)})`;
  return undefined;
}

function customStatusTerms(custom: unknown): HTMLDivElement[] {
  if (custom === null || custom === undefined || custom === '') return [];
  if (typeof custom !== 'object') return [term('Custom status', String(custom))];
  const fields = custom as Record<string, unknown>;
  const known = MONITOR_FIELDS.filter(([key]) => fields[key] !== undefined && fields[key] !== null);
  if (known.length === 0) return [term('Custom status', JSON.stringify(custom))];
  return known.map(([key, label, isTime]) =>
    term(label, isTime ? timeElement(String(fields[key]), formatPreciseTime) : String(fields[key])),
  );
}
