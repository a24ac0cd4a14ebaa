/** The status pill used for order states and service statuses alike. */
import { h } from './dom';
import { statusLabel, statusSymbol } from './format';

export function badge(status: string | undefined, prefix?: string): HTMLSpanElement {
  const known = status ?? 'unknown';
  return h(
    'span',
    { class: `badge badge--${known.replace(/[^a-z-]/gi, '')}`, 'data-status': known },
    h('span', { class: 'badge__symbol', 'aria-hidden': 'true' }, statusSymbol(status)),
    prefix ? h('span', { class: 'visually-hidden' }, `${prefix}: `) : null,
    statusLabel(status),
  );
}
