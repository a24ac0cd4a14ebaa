/**
 * Properties of the orders list (GET /api/orders), through the route, the Cosmos DB repository and
 * the real SDK against the Cosmos stand-in, on the query path Azure takes for a cross-partition
 * ORDER BY (test/support/cosmosGateway.ts). What is promised to a client that follows the
 * continuation token until it is absent:
 *
 * - every page holds only orders that match the filters (as the order read when its page was read),
 *   newest first across pages (createdAt never rises), and no order comes twice;
 * - with nothing changing meanwhile, every matching order comes, once;
 * - while orders are placed and change between page reads, every order placed before the first
 *   page that matched the filters all along still comes; one placed after it (newer than the pages
 *   already read) or one whose state changed may or may not;
 * - a continuation token the API did not issue, or issued for other filters, or one changed on the
 *   way, is a 4xx problem, never a 5xx.
 */
import type { Container } from '@azure/cosmos';
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import fc from 'fast-check';
import { container } from '../../src/azure/clients';
import { CosmosOrderRepository } from '../../src/azure/orderRepository';
import type { OrderDocument, OrderState, ServiceStatus } from '../../src/domain/order';
import { newOrder } from '../../src/domain/orderState';
import { handleListOrders } from '../../src/http/orderRoutes';
import type { OrderSagaDependencies } from '../../src/services/dependencies';
import type { SupportAccess } from '../../src/support/principal';
import { SERVICES, type ServiceName } from '../../src/topology';
import { startGatewayCosmos, type GatewayCosmos } from '../support/cosmosGateway';
import { memoryDependencies } from '../unit/support/memoryStores';
import { searchOptions } from '../unit/support/searchOptions';

const BASE = 'http://localhost:7071/api';
const LOCAL: SupportAccess = { developmentPrincipal: 'support@localhost' };
const STATES: OrderState[] = ['accepted', 'processing', 'completed', 'compensating', 'cancelled', 'attention'];
const STATUSES: ServiceStatus[] = ['pending', 'done', 'failed'];
const CUSTOMERS = ['ana', 'bo', 'cy'];

let cosmos: GatewayCosmos;
let orders: Container;
let deps: OrderSagaDependencies;

beforeAll(async () => {
  cosmos = await startGatewayCosmos();
  orders = container('orders', cosmos.client);
  deps = { ...memoryDependencies({ faultInjectionEnabled: false }), orders: new CosmosOrderRepository(orders) };
});

afterAll(async () => {
  await cosmos?.stop();
});

function context(): InvocationContext {
  return new InvocationContext({ functionName: 'listOrders', invocationId: 'inv-1', logHandler: () => undefined });
}

function list(query: Record<string, string>): Promise<HttpResponseInit> {
  return handleListOrders(new HttpRequest({ method: 'GET', url: `${BASE}/orders?${new URLSearchParams(query)}`, query }), context(), () => deps, LOCAL);
}

interface Shape {
  customerId: string;
  state: OrderState;
  status: Record<ServiceName, ServiceStatus>;
}

type Filter = Partial<{ state: OrderState; customerId: string; 'status.inventory': ServiceStatus; 'status.billing': ServiceStatus; 'status.notification': ServiceStatus }>;

interface Summary extends Shape {
  id: string;
  createdAt: string;
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({
  customerId: fc.constantFrom(...CUSTOMERS),
  state: fc.constantFrom(...STATES),
  status: fc.record({ inventory: fc.constantFrom(...STATUSES), billing: fc.constantFrom(...STATUSES), notification: fc.constantFrom(...STATUSES) }),
});

/** Up to two filters at once: more would match next to nothing among a few orders. */
const filterArb: fc.Arbitrary<Filter> = fc
  .tuple(
    fc.shuffledSubarray(['state', 'customerId', 'status.inventory', 'status.billing', 'status.notification'] as const, { maxLength: 2 }),
    fc.record({
      state: fc.constantFrom(...STATES),
      customerId: fc.constantFrom(...CUSTOMERS),
      'status.inventory': fc.constantFrom(...STATUSES),
      'status.billing': fc.constantFrom(...STATUSES),
      'status.notification': fc.constantFrom(...STATUSES),
    }),
  )
  .map(([keys, values]) => Object.fromEntries(keys.map((k) => [k, values[k]])) as Filter);

function matches(order: Shape, filter: Filter): boolean {
  return (
    (filter.state === undefined || order.state === filter.state) &&
    (filter.customerId === undefined || order.customerId === filter.customerId) &&
    SERVICES.every((s) => filter[`status.${s}`] === undefined || order.status[s] === filter[`status.${s}`])
  );
}

/** Seconds after a fixed start, so several orders share a creation time. */
function at(second: number): string {
  return new Date(Date.UTC(2026, 5, 1) + second * 1000).toISOString();
}

let serial = 0;

function orderDocument(shape: Shape, createdAt: string): OrderDocument {
  const id = `00000000-0000-4000-8000-${String(++serial).padStart(12, '0')}`;
  const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `c-${id}`, customerId: shape.customerId, items: [{ sku: 'S', quantity: 1, unitPrice: 1 }], total: 1, now: createdAt });
  return { ...order, state: shape.state, status: { ...shape.status } };
}

/** Empties the container between runs. */
async function clear(): Promise<void> {
  const { resources } = await orders.items.query<{ id: string }>('SELECT c.id FROM c').fetchAll();
  for (const { id } of resources) await orders.item(id, id).delete();
}

const json = (res: HttpResponseInit) => res.jsonBody as { orders: Summary[]; continuationToken?: string };

/** The filters as the query string carries them. */
function queryOf(filter: Filter, pageSize: number, continuationToken?: string): Record<string, string> {
  return { ...(filter as Record<string, string>), pageSize: String(pageSize), ...(continuationToken ? { continuationToken } : {}) };
}

/** Follows the token to the end; `between` runs after each page that has a next one. */
async function walk(filter: Filter, pageSize: number, between: (page: number) => Promise<void> = async () => undefined): Promise<Summary[][]> {
  const pages: Summary[][] = [];
  let token: string | undefined;
  do {
    const res = await list(queryOf(filter, pageSize, token));
    if (res.status !== 200) throw new Error(`page ${pages.length} answered ${res.status}: ${JSON.stringify(res.jsonBody)}`);
    const page = json(res);
    pages.push(page.orders);
    token = page.continuationToken;
    if (token) await between(pages.length - 1);
  } while (token && pages.length < 200);
  if (token) throw new Error('the list did not end within 200 pages');
  return pages;
}

/** What holds of every walk: pages hold matching orders only, newest first, none twice, none beyond pageSize. */
function expectWellFormed(pages: Summary[][], filter: Filter, pageSize: number): Summary[] {
  const all = pages.flat();
  for (const page of pages) expect(page.length).toBeLessThanOrEqual(pageSize);
  for (const o of all) expect({ id: o.id, matches: matches(o, filter) }).toEqual({ id: o.id, matches: true });
  const ids = all.map((o) => o.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (let i = 1; i < all.length; i++) expect(all[i - 1]!.createdAt >= all[i]!.createdAt).toBe(true);
  return all;
}

describe('GET /api/orders paged through to the end', () => {
  it('with nothing changing, lists every matching order once, newest first', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ shape: shapeArb, second: fc.integer({ min: 0, max: 6 }) }), { maxLength: 18 }),
        filterArb,
        fc.integer({ min: 1, max: 5 }),
        async (placed, filter, pageSize) => {
          await clear();
          const docs = placed.map((p) => orderDocument(p.shape, at(p.second)));
          for (const doc of docs) await orders.items.create(doc);
          const all = expectWellFormed(await walk(filter, pageSize), filter, pageSize);
          const expected = docs.filter((d) => matches(d, filter)).map((d) => d.id);
          expect(all.map((o) => o.id).sort()).toEqual([...expected].sort());
        },
      ),
      searchOptions(25),
    );
  });

  it('while orders are placed and change between pages, still lists every order that matched all along, once', async () => {
    const change = fc.oneof(
      fc.record({ kind: fc.constant('place' as const), shape: shapeArb, later: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ kind: fc.constant('change' as const), pick: fc.nat(), shape: shapeArb }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ shape: shapeArb, second: fc.integer({ min: 0, max: 6 }) }), { minLength: 1, maxLength: 16 }),
        filterArb,
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.array(change, { maxLength: 3 }), { maxLength: 8 }),
        async (placed, filter, pageSize, changes) => {
          await clear();
          const docs = placed.map((p) => orderDocument(p.shape, at(p.second)));
          for (const doc of docs) await orders.items.create(doc);
          let newest = Math.max(...placed.map((p) => p.second));
          // Orders that matched the filters at every moment of the walk.
          const steady = new Set(docs.filter((d) => matches(d, filter)).map((d) => d.id));
          const current = new Map(docs.map((d) => [d.id, d]));
          const pages = await walk(filter, pageSize, async (page) => {
            for (const c of changes[page] ?? []) {
              if (c.kind === 'place') {
                // A new order is placed now: never older than one placed before it.
                newest += c.later;
                const doc = orderDocument(c.shape, at(newest));
                await orders.items.create(doc);
                current.set(doc.id, doc);
              } else {
                const ids = [...current.keys()];
                const id = ids[c.pick % ids.length]!;
                // State and statuses change, as consumers and the monitor patch them; createdAt does not.
                const changed = { ...current.get(id)!, state: c.shape.state, status: { ...c.shape.status }, updatedAt: at(newest) };
                await orders.item(id, id).replace(changed);
                current.set(id, changed);
                if (!matches(changed, filter)) steady.delete(id);
              }
            }
          });
          const listed = new Set(expectWellFormed(pages, filter, pageSize).map((o) => o.id));
          expect([...steady].filter((id) => !listed.has(id))).toEqual([]);
        },
      ),
      searchOptions(25),
    );
  });
});
