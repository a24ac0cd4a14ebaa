/**
 * What an order id can look like. Ids reach us from URLs and from message properties written by
 * anyone; Cosmos DB refuses ids with `/`, `\`, `#` or `?` before a request is even sent, so
 * anything else is "no such order", never an error.
 */
const ORDER_ID = /^[A-Za-z0-9-]{1,64}$/;

export function isOrderId(value: unknown): boolean {
  return typeof value === 'string' && ORDER_ID.test(value);
}
