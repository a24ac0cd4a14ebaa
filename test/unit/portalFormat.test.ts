// How the portal writes times: the list spans days, and support compares times with logs.
import { formatDateTime, formatTime, formatWhen, listChangesAnnouncement, preview, readableFieldPath } from '../../portal/src/format';

describe('portal time formats', () => {
  const now = new Date(2026, 10, 28, 15, 0, 0);

  it("shows a moment of today by its time alone, and an older one with its day", () => {
    const today = new Date(2026, 10, 28, 9, 5, 7).toISOString();
    const yesterday = new Date(2026, 10, 27, 23, 14, 0).toISOString();
    expect(formatWhen(today, now)).toBe(formatTime(today));
    expect(formatWhen(yesterday, now)).not.toBe(formatTime(yesterday));
    expect(formatWhen(yesterday, now)).toMatch(/27/);
    expect(formatWhen(yesterday, now)).toMatch(/23:14/);
  });

  it('names the time zone of a full date and time', () => {
    const text = formatDateTime('2026-11-28T07:14:03.000Z');
    const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' }).formatToParts(new Date('2026-11-28T07:14:03.000Z')).find((p) => p.type === 'timeZoneName')!.value;
    expect(text).toContain(zone);
  });

  it('keeps what it cannot read as it came', () => {
    expect(formatWhen(undefined)).toBe('–');
    expect(formatWhen('not a time')).toBe('not a time');
  });
});

describe('field paths in API errors', () => {
  it("reads them in the order form's words, numbering items as the form does", () => {
    expect(readableFieldPath('items/0/quantity')).toBe('Item 1 quantity');
    expect(readableFieldPath('items/2/sku')).toBe('Item 3 product');
    expect(readableFieldPath('items/1')).toBe('Item 2');
    expect(readableFieldPath('customerId')).toBe('Customer id');
    expect(readableFieldPath('simulate/billingFailures')).toBe('Billing fails on the first attempts');
    expect(readableFieldPath('(body)')).toBe('(body)');
  });
});

describe('previews of long text', () => {
  it('cut to the length asked for, with an ellipsis', () => {
    expect(preview('abcdef', 6)).toBe('abcdef');
    expect(preview('abcdefg', 6)).toBe('abcdef…');
  });

  it('never keep half of a character made of two code units', () => {
    const text = `${'x'.repeat(5)}\u{1F600}tail`;
    expect(preview(text, 6)).toBe('xxxxx…');
    expect(preview(text, 7)).toBe('xxxxx\u{1F600}…');
  });
});

describe('what the order list announces', () => {
  const id = (n: number) => `${n}0000000-0000-4000-8000-000000000000`;

  it('names a few changed orders, leaving out the one the detail shows', () => {
    expect(listChangesAnnouncement([{ id: id(1), state: 'completed' }, { id: id(2), state: 'attention' }])).toBe(
      'Order 10000000: completed. Order 20000000: needs attention.',
    );
    expect(listChangesAnnouncement([{ id: id(1), state: 'completed' }, { id: id(2), state: 'cancelled' }], id(1))).toBe('Order 20000000: cancelled.');
    expect(listChangesAnnouncement([{ id: id(1), state: 'completed' }], id(1))).toBeUndefined();
    expect(listChangesAnnouncement([])).toBeUndefined();
  });

  it('counts them by state when many changed at once, rather than reading every one', () => {
    const changes = [1, 2, 3, 4, 5].map((n) => ({ id: id(n), state: n === 3 ? 'cancelled' : 'completed' }));
    expect(listChangesAnnouncement(changes)).toBe('5 orders changed: 4 completed, 1 cancelled.');
    const attention = [1, 2, 3, 4].map((n) => ({ id: id(n), state: n === 1 ? 'completed' : 'attention' }));
    expect(listChangesAnnouncement(attention)).toBe('4 orders changed: 1 completed, 3 need attention.');
    const oneInAttention = [1, 2, 3, 4].map((n) => ({ id: id(n), state: n === 1 ? 'attention' : 'completed' }));
    expect(listChangesAnnouncement(oneInAttention)).toBe('4 orders changed: 1 needs attention, 3 completed.');
    // Four, one of them in the detail: three named.
    expect(listChangesAnnouncement(changes.slice(0, 4), id(4))).toBe('Order 10000000: completed. Order 20000000: completed. Order 30000000: cancelled.');
  });
});
