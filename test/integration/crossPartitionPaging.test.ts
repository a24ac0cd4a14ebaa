/**
 * Paging a cross-partition ORDER BY the way it runs against Azure Cosmos DB: the SDK queries each
 * partition key range itself (test/support/cosmosGateway.ts answers for the gateway).
 */
import type { CosmosClient } from '@azure/cosmos';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { container } from '../../src/azure/clients';
import { CosmosDeadLetterArchive } from '../../src/azure/deadLetterArchive';
import { CosmosOrderRepository } from '../../src/azure/orderRepository';
import { newOrder } from '../../src/domain/orderState';
import { handleListOrders } from '../../src/http/orderRoutes';
import { memoryDependencies } from '../unit/support/memoryStores';
import { startGatewayCosmos, type GatewayCosmos } from '../support/cosmosGateway';

let cosmos: GatewayCosmos;
let client: CosmosClient;
let served: GatewayCosmos['served'];

beforeAll(async () => {
  cosmos = await startGatewayCosmos();
  client = cosmos.client;
  served = cosmos.served;
});

afterAll(async () => {
  await cosmos?.stop();
});

async function everyPage<T>(read: (token?: string) => Promise<{ items: T[]; continuationToken?: string }>): Promise<T[][]> {
  const pages: T[][] = [];
  let token: string | undefined;
  do {
    const page = await read(token);
    pages.push(page.items);
    token = page.continuationToken;
  } while (token && pages.length < 50);
  return pages;
}

it('pages through the orders list, filtered or not, newest first, on the SDK path Azure takes', async () => {
  const orders = new CosmosOrderRepository(container('orders', client));
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    const id = `0000bbbb-0000-4000-8000-${String(i).padStart(12, '0')}`;
    ids.push(id);
    const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `c-${id}`, customerId: i % 2 ? 'odd' : 'even', items: [{ sku: 'S', quantity: 1, unitPrice: 1 }], total: 1, now: `2026-01-0${i + 1}T00:00:00.000Z` });
    await orders.create(order);
  }
  const all = await everyPage((token) => orders.list({}, { pageSize: 3, ...(token ? { continuationToken: token } : {}) }).then((p) => ({ items: p.orders.map((o) => o.id), continuationToken: p.continuationToken })));
  // Before query control was on, the first page came back with no token: the list ended at 3.
  expect(all.flat()).toEqual([...ids].reverse());
  expect(all.length).toBeGreaterThanOrEqual(3);
  // Pages hold at most pageSize; on this path the SDK learns only on the next read that the last
  // page was the last, so the page after it may be empty (with no token): 3, 3, 1, 0 here.
  expect(all.slice(0, -1).every((page) => page.length > 0 && page.length <= 3)).toBe(true);
  expect(all.at(-1)!.length).toBeLessThanOrEqual(3);

  const even = await everyPage((token) =>
    orders.list({ customerId: 'even' }, { pageSize: 2, ...(token ? { continuationToken: token } : {}) }).then((p) => ({ items: p.orders.map((o) => o.id), continuationToken: p.continuationToken })),
  );
  expect(even.flat()).toEqual([ids[6], ids[4], ids[2], ids[0]]);
  // The gateway's path, not the stand-in's own ORDER BY, served these pages.
  expect(served.perRange).toBeGreaterThan(0);
});

it('pages through the unreadable messages newest first the same way', async () => {
  const archive = new CosmosDeadLetterArchive(container('deadletters', client));
  for (let i = 0; i < 5; i++) {
    await archive.park({ source: 'orders/Subscriptions/billing-sub/$DeadLetterQueue', messageId: `m-${i}`, body: `x${i}`, parkedAt: `2026-02-0${i + 1}T00:00:00.000Z` });
  }
  const pages = await everyPage((token) => archive.list({ pageSize: 2, ...(token ? { continuationToken: token } : {}) }).then((p) => ({ items: p.deadLetters.map((d) => d.messageId), continuationToken: p.continuationToken })));
  expect(pages.flat()).toEqual(['m-4', 'm-3', 'm-2', 'm-1', 'm-0']);
});

it('lists orders placed in the same millisecond each once, whichever page they fall on', async () => {
  const orders = new CosmosOrderRepository(container('orders', client));
  const now = '2026-03-01T00:00:00.000Z';
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const id = `0000cccc-0000-4000-8000-${String(i).padStart(12, '0')}`;
    ids.push(id);
    await orders.create(newOrder({ id, eventId: `ev-${id}`, correlationId: `c-${id}`, customerId: 'same-ms', items: [{ sku: 'S', quantity: 1, unitPrice: 1 }], total: 1, now }));
  }
  for (const pageSize of [1, 2, 3]) {
    const pages = await everyPage((token) =>
      orders.list({ customerId: 'same-ms' }, { pageSize, ...(token ? { continuationToken: token } : {}) }).then((p) => ({ items: p.orders.map((o) => o.id), continuationToken: p.continuationToken })),
    );
    expect(pages.flat().sort()).toEqual(ids);
  }
});

it('answers a page asked for while Cosmos DB does not answer with a 503, as the first page, not a 400 for its token', async () => {
  // A stand-in of its own, to stop midway.
  const own = await startGatewayCosmos();
  let stopped = false;
  try {
    const deps = { ...memoryDependencies({ faultInjectionEnabled: false }), orders: new CosmosOrderRepository(container('orders', own.client)) };
    for (let i = 0; i < 3; i++) {
      const id = `0000dddd-0000-4000-8000-${String(i).padStart(12, '0')}`;
      await deps.orders.create(newOrder({ id, eventId: `ev-${id}`, correlationId: `c-${id}`, customerId: 'outage', items: [{ sku: 'S', quantity: 1, unitPrice: 1 }], total: 1, now: `2026-04-0${i + 1}T00:00:00.000Z` }));
    }
    const list = (query: Record<string, string>) =>
      handleListOrders(
        new HttpRequest({ method: 'GET', url: `http://localhost:7071/api/orders?${new URLSearchParams(query)}`, query }),
        new InvocationContext({ functionName: 'listOrders', invocationId: 'inv-1', logHandler: () => undefined }),
        () => deps,
        { developmentPrincipal: 'support@localhost' },
      );
    const first = await list({ pageSize: '1' });
    const token = (first.jsonBody as { continuationToken: string }).continuationToken;
    expect(token).toEqual(expect.any(String));
    await own.stop();
    stopped = true;
    const firstAgain = await list({ pageSize: '1' });
    const second = await list({ pageSize: '1', continuationToken: token });
    expect(firstAgain.status).toBe(503);
    expect({ status: second.status, type: (second.jsonBody as { type?: string }).type }).toEqual({ status: 503, type: (firstAgain.jsonBody as { type?: string }).type });
  } finally {
    if (!stopped) await own.stop();
  }
});
