/**
 * Paging a cross-partition ORDER BY the way it runs against Azure Cosmos DB. The gateway does not
 * serve such a query: it answers 400 (substatus 1004) with a query plan, and the SDK then queries
 * each partition key range itself. The stand-in serves ORDER BY directly, so a client plugin here
 * answers for the gateway (the query plan; the per-range queries still reach the stand-in). On that
 * path the SDK gives a continuation token, and takes one back, only with query control on.
 */
import { CosmosClient, type CosmosClientOptions, type PluginConfig } from '@azure/cosmos';
import { Agent } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos-emulator';
import { container } from '../../src/azure/clients';
import { CosmosDeadLetterArchive } from '../../src/azure/deadLetterArchive';
import { CosmosOrderRepository } from '../../src/azure/orderRepository';
import { newOrder } from '../../src/domain/orderState';

const ORDER_BY = /^SELECT \* FROM c(?: WHERE (.+))? ORDER BY c\.(\w+) (DESC|ASC)$/;

/** What the gateway answers for a cross-partition ORDER BY: the plan the SDK then runs per range. */
function queryPlan(query: string) {
  const [, where, field, direction] = ORDER_BY.exec(query)!;
  return {
    partitionedQueryExecutionInfoVersion: 2,
    queryInfo: {
      distinctType: 'None',
      top: null,
      offset: null,
      limit: null,
      orderBy: [direction === 'DESC' ? 'Descending' : 'Ascending'],
      orderByExpressions: [`c.${field}`],
      groupByExpressions: [],
      groupByAliases: [],
      aggregates: [],
      groupByAliasToAggregateType: {},
      rewrittenQuery: `SELECT c._rid, [{"item": c.${field}}] AS orderByItems, c AS payload FROM c WHERE ${where ? `(${where}) AND ` : ''}({documentdb-formattableorderbyquery-filter}) ORDER BY c.${field} ${direction}`,
      hasSelectValue: false,
      hasNonStreamingOrderBy: false,
    },
    queryRanges: [{ min: '', max: 'FF', isMinInclusive: true, isMaxInclusive: false }],
  };
}

let emulator: CosmosEmulator;
let certDir: string;
let client: CosmosClient;
let agent: Agent;
const served = { plans: 0, refused: 0, perRange: 0 };

const azureGateway: PluginConfig = {
  on: 'request',
  plugin: async (context, diagnostics, next) => {
    const body = typeof context.body === 'string' ? JSON.parse(context.body) : context.body;
    const query: string | undefined = body?.query;
    if (context.resourceType === 'docs' && query && ORDER_BY.test(query)) {
      if (context.headers?.['x-ms-cosmos-is-query-plan-request']) {
        served.plans += 1;
        return { headers: {}, result: queryPlan(query), code: 200 } as never;
      }
      served.refused += 1;
      throw Object.assign(new Error('The provided cross partition query can not be directly served by the gateway.'), {
        code: 400,
        substatus: 1004,
        headers: {},
        body: { code: 'BadRequest', message: 'cross partition query', additionalErrorInfo: JSON.stringify(queryPlan(query)) },
      });
    }
    if (query?.includes('orderByItems')) served.perRange += 1;
    return next(context);
  },
};

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'cosmos-paging-'));
  emulator = await startCosmosEmulator({ port: 0, certDir });
  agent = new Agent({ ca: readFileSync(emulator.caCertificateFile), keepAlive: true });
  client = new CosmosClient({
    endpoint: emulator.endpoint,
    key: emulator.key,
    agent,
    connectionPolicy: { enableEndpointDiscovery: false },
    plugins: [azureGateway],
    // `plugins` is a hidden option of the SDK: not in its published types.
  } as CosmosClientOptions);
});

afterAll(async () => {
  client?.dispose();
  agent?.destroy();
  await emulator?.stop();
  rmSync(certDir, { recursive: true, force: true });
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
