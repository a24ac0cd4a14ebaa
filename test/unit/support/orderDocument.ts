/** An order document for tests of the domain rules: what a test is about is passed in, the rest is fixed. */
import type { OrderDocument } from '../../../src/domain/order';

const ORDER_CREATED_AT = '2026-01-01T00:00:00.000Z';

export function orderDocument(over: Partial<OrderDocument> = {}): OrderDocument {
  return {
    id: 'o-1',
    customerId: 'c-1',
    items: [{ sku: 'sku-1', quantity: 1, unitPrice: 10 }],
    currency: 'EUR',
    total: 10,
    state: 'processing',
    status: { inventory: 'pending', billing: 'pending', notification: 'pending' },
    statusReason: {},
    payment: { charged: 0, refunded: 0 },
    notifications: [],
    timeline: [],
    correlationId: 'corr-1',
    eventId: 'e-1',
    createdAt: ORDER_CREATED_AT,
    updatedAt: ORDER_CREATED_AT,
    published: true,
    billingAttempts: 0,
    notified: { confirmation: false, cancellation: false },
    ...over,
  };
}
