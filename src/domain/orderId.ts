/**
 * What an order id can look like. Ids reach us from URLs and from message properties written by
 * anyone; Cosmos DB refuses ids with `/`, `\`, `#` or `?` before a request is even sent, so
 * anything else is "no such order", never an error.
 */
const ORDER_ID = /^[A-Za-z0-9-]{1,64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isOrderId(value: unknown): boolean {
  return typeof value === 'string' && ORDER_ID.test(value);
}

/** Whether it has the form of the ids orders get (a UUID, in any case). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/**
 * The stored id an id from outside names, or undefined when it cannot name an order. Orders get
 * lower-case UUIDs, and a UUID is case-insensitive on input (RFC 9562): one pasted in capitals,
 * as some tools and e-mail clients show them, names the same order. Other ids are kept as they are.
 */
export function orderIdFrom(value: unknown): string | undefined {
  if (!isOrderId(value)) return undefined;
  const id = value as string;
  return isUuid(id) ? id.toLowerCase() : id;
}
