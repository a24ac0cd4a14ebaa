import { cancellationMessage } from '../../src/services/notices';

describe('cancellation notice', () => {
  const order = (charged: number, refunded: number) => ({ id: 'order-1', currency: 'EUR', payment: { charged, refunded } });

  it.each([
    ['never charged', order(0, 0), 'You have not been charged.'],
    ['charged and refunded', order(49, 49), 'Your payment of 49.00 EUR has been refunded.'],
    // A refund that keeps failing leaves the order for a person: the customer is not told it is done.
    ['charged, refund not through', order(49, 0), 'A refund of 49.00 EUR is on its way; our support team will follow up.'],
  ])('%s', (_case, o, money) => {
    expect(cancellationMessage(o, 'inventory failed: out of stock: MOUSE-01 (requested 1000)')).toBe(
      `Your order order-1 was cancelled: out of stock: MOUSE-01 (requested 1000). ${money}`,
    );
  });

  it.each([
    // Before, the customer read the support person's address and the monitor's internals.
    ['requested by ana@contoso.com', 'Your order order-1 was cancelled by our support team.'],
    ['requested again by ana@contoso.com', 'Your order order-1 was cancelled by our support team.'],
    ['billing dead-lettered after 3 requeues', 'Your order order-1 was cancelled: the payment could not be completed.'],
    ['notification stuck pending after 2 republishes', 'Your order order-1 was cancelled: it could not be completed.'],
    [undefined, 'Your order order-1 was cancelled.'],
  ])('says why in words for the customer: %s', (reason, start) => {
    const message = cancellationMessage(order(0, 0), reason);
    expect(message).toBe(`${start} You have not been charged.`);
    expect(message).not.toMatch(/@|dead-letter|requeue|republish/);
  });
});
