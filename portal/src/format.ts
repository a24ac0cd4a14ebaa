/** How times, amounts, ids and statuses read on screen. */

export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

/** The start of `text` up to `max` characters and an ellipsis; never between the two halves of one character (an emoji). */
export function preview(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}

export function formatTime(iso: string | undefined): string {
  if (!iso) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/** Milliseconds matter on a timeline where three consumers act within the same second. */
export function formatPreciseTime(iso: string | undefined): string {
  if (!iso) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${formatTime(iso)}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** With the time zone: support staff compare it with logs and with customers elsewhere. */
export function formatDateTime(iso: string | undefined): string {
  if (!iso) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'long', hour12: false });
}

/** The time alone for today's moments, with the day for older ones (a list spans days). */
export function formatWhen(iso: string | undefined, now = new Date()): string {
  if (!iso) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  if (date.toDateString() === now.toDateString()) return formatTime(iso);
  return date.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });
}

export function formatMoney(amount: number | undefined, currency: string | undefined): string {
  if (typeof amount !== 'number' || !Number.isFinite(amount)) return '–';
  if (currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(amount);
    } catch {
      // Not an ISO currency code: fall through to a plain number with the code after it.
    }
  }
  return `${amount.toFixed(2)}${currency ? ` ${currency}` : ''}`;
}

const STATUS_LABELS: Record<string, string> = {
  pending: 'pending',
  processing: 'processing',
  done: 'done',
  failed: 'failed',
  deadlettered: 'dead-lettered',
  compensated: 'compensated',
  accepted: 'accepted',
  completed: 'completed',
  compensating: 'compensating',
  cancelled: 'cancelled',
  attention: 'needs attention',
};

/** A symbol next to each word so a status never depends on colour alone. */
const STATUS_SYMBOLS: Record<string, string> = {
  pending: '○',
  accepted: '○',
  processing: '◔',
  done: '✓',
  completed: '✓',
  failed: '!',
  deadlettered: '✕',
  compensating: '↺',
  compensated: '↺',
  cancelled: '⊘',
  attention: '⚠',
};

export function statusLabel(status: string | undefined): string {
  if (!status) return 'unknown';
  return STATUS_LABELS[status] ?? status;
}

export function statusSymbol(status: string | undefined): string {
  return (status && STATUS_SYMBOLS[status]) || '·';
}

/** `deadlettered` → `dead-lettered`, `support-action` → `support action`. */
export function humanizeKind(kind: string | undefined): string {
  if (!kind) return 'event';
  return statusLabel(kind).replace(/[-_]/g, ' ').replace(/\bdead lettered\b/, 'dead-lettered');
}

export function capitalize(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** The order form's own words for the fields an API error names by path. */
const FIELD_NAMES: Record<string, string> = {
  customerId: 'Customer id',
  items: 'Items',
  sku: 'product',
  quantity: 'quantity',
  'simulate/billingFailures': 'Billing fails on the first attempts',
  'headers/Idempotency-Key': 'Idempotency-Key',
};

/** `items/0/quantity` → `Item 1 quantity`, as the form numbers its rows; unknown paths as they are. */
export function readableFieldPath(path: string): string {
  const item = /^items\/(\d+)(?:\/(\w+))?$/.exec(path);
  if (item) return `Item ${Number(item[1]) + 1}${item[2] ? ` ${FIELD_NAMES[item[2]] ?? item[2]}` : ''}`;
  return FIELD_NAMES[path] ?? path;
}

/** Orders named one by one in one announcement; past it, they are counted by state. */
export const LIST_ANNOUNCE_MAX = 3;

/**
 * What the order list says of the state changes one refresh brought: each order when there are
 * few, else a count per state, so a busy list does not talk over everything else every few
 * seconds. The order shown in the detail is left out: the detail says its changes.
 */
export function listChangesAnnouncement(changes: { id: string; state: string | undefined }[], shownInDetail?: string): string | undefined {
  const told = changes.filter((c) => c.id !== shownInDetail);
  if (told.length === 0) return undefined;
  if (told.length <= LIST_ANNOUNCE_MAX) return told.map((c) => `Order ${shortId(c.id)}: ${statusLabel(c.state)}.`).join(' ');
  const byState = new Map<string, number>();
  for (const c of told) byState.set(statusLabel(c.state), (byState.get(statusLabel(c.state)) ?? 0) + 1);
  // "needs attention" is the one label that is a verb: two orders need attention.
  return `${told.length} orders changed: ${[...byState].map(([state, n]) => `${n} ${n > 1 ? state.replace(/^needs /, 'need ') : state}`).join(', ')}.`;
}
