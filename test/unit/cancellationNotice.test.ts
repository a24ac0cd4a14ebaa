import { cancellationMessage } from '../../src/services/notices';

describe('cancellation notice', () => {
  const order = (charged: number, refunded: number) => ({ id: 'order-1', currency: 'EUR', payment: { charged, refunded } });

  it.each([
    ['never charged', order(0, 0), 'You have not been charged.'],
    ['charged and refunded', order(49, 49), 'Your payment of 49.00 EUR has been refunded.'],
    // A refund that keeps failing leaves the order for a person: the customer is not told it is done.
    ['charged, refund not through', order(49, 0), 'A refund of 49.00 EUR is on its way; our support team will follow up.'],
  ])('%s', (_case, o, money) => {
    expect(cancellationMessage(o, 'out of stock: MOUSE-01')).toBe(`Your order order-1 was cancelled: out of stock: MOUSE-01. ${money}`);
  });
});
