import { buildOrderCreatedEvent, CLOUDEVENTS_CONTENT_TYPE, orderCreatedProperties, parseOrderCreatedEvent } from '../../src/domain/orderCreatedEvent';
import { orderIdFrom } from '../../src/domain/orderId';
import { orderRequestFingerprint, parseOrderRequest } from '../../src/domain/orderRequest';
import { billingMustFail, isReadyToComplete, newOrder } from '../../src/domain/orderState';
import { mergeLines, priceLines } from '../../src/domain/pricing';

const valid = { customerId: 'c-1', items: [{ sku: 'MOUSE-01', quantity: 2 }] };

describe('parseOrderRequest', () => {
  it('accepts a minimal valid order', () => {
    expect(parseOrderRequest(valid, { faultInjectionEnabled: false })).toEqual({ ok: true, value: valid });
  });

  it.each([
    ['a missing customerId', { items: valid.items }, { customerId: 'is required' }],
    ['an empty customerId', { ...valid, customerId: '   ' }, { customerId: 'must be a non-empty string' }],
    ['a customerId that is a number', { ...valid, customerId: 7 }, { customerId: 'must be a string' }],
    ['a customerId over 128 characters', { ...valid, customerId: 'c'.repeat(129) }, { customerId: 'must be at most 128 characters long' }],
    ['no items', { ...valid, items: [] }, { items: 'must list at least one item' }],
    ['items that are not an array', { ...valid, items: 'x' }, { items: 'must be an array' }],
    ['51 items', { ...valid, items: Array.from({ length: 51 }, (_, i) => ({ sku: `S${i}`, quantity: 1 })) }, { items: 'must list at most 50 items' }],
    ['a zero quantity', { ...valid, items: [{ sku: 'A', quantity: 0 }] }, { 'items/0/quantity': 'must be at least 1' }],
    ['a quantity over 1000', { ...valid, items: [{ sku: 'A', quantity: 1001 }] }, { 'items/0/quantity': 'must be at most 1000' }],
    ['a fractional quantity', { ...valid, items: [{ sku: 'A', quantity: 1.5 }] }, { 'items/0/quantity': 'must be a whole number' }],
    ['a quantity given as a string', { ...valid, items: [{ sku: 'A', quantity: '2' }] }, { 'items/0/quantity': 'must be a number' }],
    ['an item without a quantity', { ...valid, items: [{ sku: 'A' }] }, { 'items/0/quantity': 'is required' }],
    ['a sku with a slash', { ...valid, items: [{ sku: 'a/b', quantity: 1 }] }, { 'items/0/sku': 'may contain only letters, digits, dot, underscore and dash' }],
    ['a sku of dots alone, a path step in a URL', { ...valid, items: [{ sku: '..', quantity: 1 }] }, { 'items/0/sku': 'must not be only dots' }],
    ['a sku over 64 characters', { ...valid, items: [{ sku: 'S'.repeat(65), quantity: 1 }] }, { 'items/0/sku': 'must be at most 64 characters long' }],
    ['an item that is not an object', { ...valid, items: ['A'] }, { 'items/0': 'must be a JSON object' }],
    ['an unknown field', { ...valid, coupon: 'FREE' }, { coupon: 'is not a known field' }],
    ['negative billingFailures', { ...valid, simulate: { billingFailures: -1 } }, { 'simulate/billingFailures': 'must be at least 0' }],
    ['fractional billingFailures', { ...valid, simulate: { billingFailures: 0.5 } }, { 'simulate/billingFailures': 'must be a whole number' }],
    ['billingFailures past exact JSON numbers', { ...valid, simulate: { billingFailures: 1e20 } }, { 'simulate/billingFailures': 'must be at most 9007199254740991' }],
    ['a quantity past exact JSON numbers', { ...valid, items: [{ sku: 'A', quantity: 9007199254740993 }] }, { 'items/0/quantity': 'must be at most 1000' }],
    ['a quantity far below zero', { ...valid, items: [{ sku: 'A', quantity: -1e20 }] }, { 'items/0/quantity': 'must be at least 1' }],
    ['billingFailures far below zero', { ...valid, simulate: { billingFailures: -1e20 } }, { 'simulate/billingFailures': 'must be at least 0' }],
    [
      'lines of one SKU above the limit together',
      { ...valid, items: [{ sku: 'A', quantity: 600 }, { sku: 'B', quantity: 1 }, { sku: 'A', quantity: 400 }, { sku: 'A', quantity: 1 }, { sku: 'A', quantity: 5 }] },
      { 'items/3/quantity': 'with the lines before it for A, must be at most 1000 in all' },
    ],
    ['a body that is not an object', 42, { '(body)': 'must be a JSON object' }],
    ['null', null, { '(body)': 'must be a JSON object' }],
  ])('rejects %s, naming the field in plain words', (_label, body, problems) => {
    const result = parseOrderRequest(body, { faultInjectionEnabled: true });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems).toEqual(Object.entries(problems).map(([path, message]) => ({ path, message })));
  });

  it('names every bad field at once', () => {
    const result = parseOrderRequest({ customerId: '', items: [{ sku: '', quantity: -1 }, { sku: 'B' }] }, { faultInjectionEnabled: true });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problems.map((p) => p.path).sort()).toEqual(['customerId', 'items/0/quantity', 'items/0/sku', 'items/1/quantity']);
    }
  });

  it.each([
    ['a control character', 'cust\u0000omer'],
    ['a line break', 'cust\nomer'],
    ['half of a character', 'x\ud800y'],
  ])('refuses a customer id with %s, which could not be typed or searched for', (_what, customerId) => {
    const result = parseOrderRequest({ ...valid, customerId }, { faultInjectionEnabled: false });
    expect(result).toEqual({ ok: false, problems: [{ path: 'customerId', message: 'must not contain control characters or broken characters' }] });
  });

  it('takes a customer id in any script, emoji included', () => {
    for (const customerId of ['Jürgen Groß', '顧客-42', 'ana 👩‍💻']) {
      expect(parseOrderRequest({ ...valid, customerId }, { faultInjectionEnabled: false })).toMatchObject({ ok: true });
    }
  });

  it('refuses simulate where fault injection is disabled and accepts it where enabled', () => {
    const body = { ...valid, simulate: { billingFailures: 2 } };
    const off = parseOrderRequest(body, { faultInjectionEnabled: false });
    expect(off.ok).toBe(false);
    if (!off.ok) expect(off.problems).toEqual([{ path: 'simulate', message: expect.stringContaining('not enabled') }]);
    expect(parseOrderRequest(body, { faultInjectionEnabled: true })).toEqual({ ok: true, value: body });
  });

  it('where fault injection is disabled, names simulate once, whatever its shape', () => {
    const notEnabled = [{ path: 'simulate', message: 'fault injection is not enabled on this deployment' }];
    for (const simulate of [null, 'x', [], { billingFailures: -1 }, { billingFailures: 1.5, other: true }]) {
      expect(parseOrderRequest({ ...valid, simulate }, { faultInjectionEnabled: false })).toEqual({ ok: false, problems: notEnabled });
    }
    // The other fields' problems are still all there.
    const both = parseOrderRequest({ ...valid, customerId: '', simulate: null }, { faultInjectionEnabled: false });
    expect(both).toEqual({ ok: false, problems: [{ path: 'customerId', message: 'must be a non-empty string' }, ...notEnabled] });
  });

  it('takes any whole billingFailures, so that billing can be made to fail past every requeue', () => {
    // Before, 11 and above got 400 "must be at most 10", while using up the monitor's requeues takes 12.
    for (const billingFailures of [11, 12, 100, 1_000_000, Number.MAX_SAFE_INTEGER]) {
      const body = { ...valid, simulate: { billingFailures } };
      expect(parseOrderRequest(body, { faultInjectionEnabled: true })).toEqual({ ok: true, value: body });
    }
  });
});

describe('orderRequestFingerprint', () => {
  it('is the same for the same order written differently and differs for another order', () => {
    const a = orderRequestFingerprint({ items: [{ quantity: 2, sku: 'MOUSE-01' }], customerId: 'c-1' } as never);
    expect(orderRequestFingerprint(valid)).toBe(a);
    expect(orderRequestFingerprint({ ...valid, items: [{ sku: 'MOUSE-01', quantity: 3 }] })).not.toBe(a);
    expect(orderRequestFingerprint({ ...valid, simulate: { billingFailures: 1 } })).not.toBe(a);
  });
});

describe('pricing', () => {
  it('computes the total in cents, so 3 x 0.1 is exactly 0.3', () => {
    const { items, total } = priceLines([{ sku: 'A', quantity: 3 }], new Map([['A', 0.1]]));
    expect(total).toBe(0.3);
    expect(items).toEqual([{ sku: 'A', quantity: 3, unitPrice: 0.1 }]);
  });

  it('sums several lines and rounds unit prices to cents', () => {
    const { total } = priceLines(
      [
        { sku: 'A', quantity: 2 },
        { sku: 'B', quantity: 1 },
      ],
      new Map([
        ['A', 19.99],
        ['B', 0.005],
      ]),
    );
    expect(total).toBe(39.99);
  });

  it('merges repeated SKUs into one line', () => {
    expect(mergeLines([{ sku: 'A', quantity: 1 }, { sku: 'B', quantity: 1 }, { sku: 'A', quantity: 2 }])).toEqual([
      { sku: 'A', quantity: 3 },
      { sku: 'B', quantity: 1 },
    ]);
  });
});

const order = newOrder({
  id: 'order-1',
  eventId: 'event-1',
  correlationId: 'corr-1',
  customerId: 'c-1',
  items: [{ sku: 'A', quantity: 1, unitPrice: 5 }],
  total: 5,
  now: '2026-01-01T00:00:00.000Z',
});

describe('OrderCreated CloudEvent', () => {
  it('carries the CloudEvents 1.0 attributes and the contract properties', () => {
    const event = buildOrderCreatedEvent(order);
    expect(event).toMatchObject({ specversion: '1.0', id: 'event-1', type: 'OrderCreated', subject: 'order-1', datacontenttype: 'application/json' });
    expect(event.data).toMatchObject({ orderId: 'order-1', correlationId: 'corr-1', total: 5 });
    expect(orderCreatedProperties(order)).toEqual({ event_type: 'OrderCreated', order_id: 'order-1', correlation_id: 'corr-1' });
    expect(CLOUDEVENTS_CONTENT_TYPE).toBe('application/cloudevents+json');
  });

  it('parses what it builds, as object, JSON text or bytes', () => {
    const event = buildOrderCreatedEvent(order);
    for (const body of [event, JSON.stringify(event), Buffer.from(JSON.stringify(event))]) {
      expect(parseOrderCreatedEvent(body)).toEqual({ ok: true, event });
    }
  });

  it.each([
    ['bad JSON', '{not json', 'not JSON'],
    ['another event type', { ...buildOrderCreatedEvent(order), type: 'OrderShipped' }, 'type'],
    ['a missing order id', { ...buildOrderCreatedEvent(order), data: { ...buildOrderCreatedEvent(order).data, orderId: '' } }, 'orderId'],
    ['a subject for another order', { ...buildOrderCreatedEvent(order), subject: 'other' }, 'subject'],
  ])('rejects %s with a reason', (_label, body, reason) => {
    const parsed = parseOrderCreatedEvent(body);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain(reason);
  });
});

describe('order state rules', () => {
  it('starts accepted with every status pending, nothing paid or sent, not yet published', () => {
    expect(order).toMatchObject({
      state: 'accepted',
      status: { inventory: 'pending', billing: 'pending', notification: 'pending' },
      payment: { charged: 0, refunded: 0 },
      notifications: [],
      published: false,
      billingAttempts: 0,
    });
  });

  it.each([
    [{ inventory: 'done', billing: 'done', notification: 'done' }, 'processing', true],
    [{ inventory: 'done', billing: 'done', notification: 'done' }, 'accepted', true],
    [{ inventory: 'done', billing: 'processing', notification: 'done' }, 'processing', false],
    [{ inventory: 'done', billing: 'done', notification: 'done' }, 'compensating', false],
    [{ inventory: 'failed', billing: 'done', notification: 'done' }, 'processing', false],
  ] as const)('ready to complete with %o in state %s: %s', (status, state, expected) => {
    expect(isReadyToComplete({ state, status: { ...status } })).toBe(expected);
  });

  it.each([
    [1, 2, false, true],
    [2, 2, false, true],
    [3, 2, false, false],
    [1, undefined, false, false],
    [5, 0, true, true],
  ])('billing attempt %d with billingFailures %s and switch %s fails: %s', (attempt, failures, switchOn, expected) => {
    expect(billingMustFail(attempt, { simulate: failures === undefined ? undefined : { billingFailures: failures } }, switchOn)).toBe(expected);
  });
});

describe('orderIdFrom', () => {
  it('reads a UUID in any case as the lower-case id orders get, and keeps other ids as they are', () => {
    expect(orderIdFrom('5F0C1E8A-93B2-4C7D-A1E6-0B9D2C4F7A31')).toBe('5f0c1e8a-93b2-4c7d-a1e6-0b9d2c4f7a31');
    expect(orderIdFrom('5f0c1e8a-93b2-4c7d-a1e6-0b9d2c4f7a31')).toBe('5f0c1e8a-93b2-4c7d-a1e6-0b9d2c4f7a31');
    expect(orderIdFrom('Order-1')).toBe('Order-1');
  });

  it.each(['', 'a/b', 'id?x', 'x'.repeat(65), 42, undefined])('names no order for %p', (value) => {
    expect(orderIdFrom(value)).toBeUndefined();
  });
});
