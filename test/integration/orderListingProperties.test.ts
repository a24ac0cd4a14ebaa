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
 * - a continuation token the API did not issue, or issued for other filters, or changed on the way,
 *   is a 400 problem naming the token, never a 5xx. (The token is not signed: one changed into
 *   another position the store can read is answered with that position's page.)
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
import type { OrderFilter } from '../../src/services/ports';
import { memoryDependencies, MemoryOrderStore } from '../unit/support/memoryStores';
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

function list(query: Record<string, string>, over: OrderSagaDependencies = deps): Promise<HttpResponseInit> {
  return handleListOrders(new HttpRequest({ method: 'GET', url: `${BASE}/orders?${new URLSearchParams(query)}`, query }), context(), () => over, LOCAL);
}

/** Where a case's orders are kept: the stand-in through the SDK, or the unit suites' in-memory store. */
interface OrdersKept {
  deps: OrderSagaDependencies;
  place(doc: OrderDocument): Promise<void>;
  change(doc: OrderDocument): Promise<void>;
}

function inCosmos(): OrdersKept {
  return {
    deps,
    place: async (doc) => void (await orders.items.create(doc)),
    change: async (doc) => void (await orders.item(doc.id, doc.id).replace(doc)),
  };
}

function inMemory(): OrdersKept {
  const memory = memoryDependencies({ faultInjectionEnabled: false });
  return {
    deps: memory,
    place: async (doc) => void (await memory.orders.create(doc)),
    change: async (doc) => void memory.orders.docs.set(doc.id, structuredClone(doc)),
  };
}

interface Shape {
  customerId: string;
  state: OrderState;
  status: Record<ServiceName, ServiceStatus>;
}

type Filter = Partial<{ state: OrderState; customerId: string; 'status.inventory': ServiceStatus; 'status.billing': ServiceStatus; 'status.notification': ServiceStatus; updatedBefore: string }>;

interface Summary extends Shape {
  id: string;
  createdAt: string;
  updatedAt: string;
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({
  customerId: fc.constantFrom(...CUSTOMERS),
  state: fc.constantFrom(...STATES),
  status: fc.record({ inventory: fc.constantFrom(...STATUSES), billing: fc.constantFrom(...STATUSES), notification: fc.constantFrom(...STATUSES) }),
});

/** Up to two filters at once: more would match next to nothing among a few orders. */
const filterArb: fc.Arbitrary<Filter> = fc
  .tuple(
    fc.shuffledSubarray(['state', 'customerId', 'status.inventory', 'status.billing', 'status.notification', 'updatedBefore'] as const, { maxLength: 2 }),
    fc.record({
      state: fc.constantFrom(...STATES),
      customerId: fc.constantFrom(...CUSTOMERS),
      'status.inventory': fc.constantFrom(...STATUSES),
      'status.billing': fc.constantFrom(...STATUSES),
      'status.notification': fc.constantFrom(...STATUSES),
      // Among the orders' own stamps, so an order written at the instant itself is left out.
      updatedBefore: fc.integer({ min: 0, max: 8 }).map((second) => at(second)),
    }),
  )
  .map(([keys, values]) => Object.fromEntries(keys.map((k) => [k, values[k]])) as Filter);

function matches(order: Shape & { updatedAt?: string }, filter: Filter): boolean {
  return (
    (filter.updatedBefore === undefined || (order.updatedAt !== undefined && order.updatedAt < filter.updatedBefore)) &&
    (filter.state === undefined || order.state === filter.state) &&
    (filter.customerId === undefined || order.customerId === filter.customerId) &&
    SERVICES.every((s) => filter[`status.${s}`] === undefined || order.status[s] === filter[`status.${s}`])
  );
}

/** The filters as the route hands them to the store. */
function filterOf(filter: Filter): OrderFilter {
  const status: OrderFilter['status'] = {};
  for (const s of SERVICES) if (filter[`status.${s}`]) status[s] = filter[`status.${s}`];
  return {
    ...(filter.state ? { state: filter.state } : {}),
    ...(filter.customerId ? { customerId: filter.customerId } : {}),
    status,
    ...(filter.updatedBefore ? { updatedBefore: filter.updatedBefore } : {}),
  };
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
async function walk(filter: Filter, pageSize: number, between: (page: number) => Promise<void> = async () => undefined, over = deps): Promise<Summary[][]> {
  const pages: Summary[][] = [];
  let token: string | undefined;
  do {
    const res = await list(queryOf(filter, pageSize, token), over);
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
          // The unit suites' in-memory store lists the same orders in the same order, ties included.
          const memory = new MemoryOrderStore();
          for (const doc of docs) await memory.create(doc);
          const fromMemory: string[] = [];
          let token: string | undefined;
          do {
            const page = await memory.list(filterOf(filter), { pageSize, ...(token ? { continuationToken: token } : {}) });
            fromMemory.push(...page.orders.map((o) => o.id));
            token = page.continuationToken;
          } while (token);
          expect(fromMemory).toEqual(all.map((o) => o.id));
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
          // The same case in the stand-in and in the unit suites' in-memory store.
          for (const kept of [inCosmos(), inMemory()]) {
            serial = 0;
            const docs = placed.map((p) => orderDocument(p.shape, at(p.second)));
            for (const doc of docs) await kept.place(doc);
            let newest = Math.max(...placed.map((p) => p.second));
            // Orders that matched the filters at every moment of the walk.
            const steady = new Set(docs.filter((d) => matches(d, filter)).map((d) => d.id));
            const current = new Map(docs.map((d) => [d.id, d]));
            const between = async (page: number) => {
              for (const c of changes[page] ?? []) {
                if (c.kind === 'place') {
                  // A new order is placed now: never older than one placed before it.
                  newest += c.later;
                  const doc = orderDocument(c.shape, at(newest));
                  await kept.place(doc);
                  current.set(doc.id, doc);
                } else {
                  const ids = [...current.keys()];
                  const id = ids[c.pick % ids.length]!;
                  // State and statuses change, as consumers and the monitor patch them; createdAt does not.
                  const changed = { ...current.get(id)!, state: c.shape.state, status: { ...c.shape.status }, updatedAt: at(newest) };
                  await kept.change(changed);
                  current.set(id, changed);
                  if (!matches(changed, filter)) steady.delete(id);
                }
              }
            };
            const pages = await walk(filter, pageSize, between, kept.deps);
            const listed = new Set(expectWellFormed(pages, filter, pageSize).map((o) => o.id));
            expect([...steady].filter((id) => !listed.has(id))).toEqual([]);
          }
        },
      ),
      searchOptions(25),
    );
  });
});

/** Every place in a JSON value, as the keys and indexes that lead to it; strings holding JSON are gone into too. */
function placesIn(value: unknown, at: (string | number)[] = [], found: (string | number)[][] = []): (string | number)[][] {
  found.push(at);
  const inner = typeof value === 'string' ? parsedJson(value) : value;
  if (inner !== null && typeof inner === 'object') {
    for (const [key, v] of Object.entries(inner)) placesIn(v, [...at, Array.isArray(inner) ? Number(key) : key], found);
  }
  return found;
}

function sameFilters(a: Filter, b: Filter): boolean {
  const sorted = (f: Filter) => JSON.stringify(Object.entries(f).sort(([x], [y]) => x.localeCompare(y)));
  return sorted(a) === sorted(b);
}

function parsedJson(text: string): unknown {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** `value` with what is at `place` replaced (or, with `remove`, taken out), JSON inside strings written back as strings. */
function changedAt(value: unknown, place: (string | number)[], replacement: unknown, remove: boolean): unknown {
  if (place.length === 0) return replacement;
  const [key, ...rest] = place;
  const asText = typeof value === 'string';
  const inner = (asText ? parsedJson(value) : value) as Record<string | number, unknown>;
  const copy = (Array.isArray(inner) ? [...inner] : { ...inner }) as Record<string | number, unknown>;
  if (rest.length === 0 && remove) {
    if (Array.isArray(copy)) copy.splice(Number(key), 1);
    else delete copy[key!];
  } else {
    copy[key!] = changedAt(inner[key!], rest, replacement, remove);
  }
  return asText ? JSON.stringify(copy) : copy;
}

describe('GET /api/orders with a continuation token it did not issue as it is', () => {
  const anyJson = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom('', '-1', 'FF', '+RID:', '{}', '[]', 'null', 'gAABAIAAAAEEAAAAAAAAAA==', '2026-01-01T00:00:00.000Z'),
    fc.integer({ min: -(2 ** 31), max: 2 ** 40 }),
  );
  const tampering = fc.oneof(
    // Anything at all, as the client's own token.
    fc.record({ kind: fc.constant('anything' as const), text: fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.base64String()) }),
    // The store's token inside the API's wrapping, changed in one place.
    fc.record({ kind: fc.constant('changed' as const), pick: fc.nat(), value: anyJson, remove: fc.boolean() }),
    // The store's token inside the API's wrapping, cut short.
    fc.record({ kind: fc.constant('cut' as const), keep: fc.nat() }),
    // A token issued for other filters.
    fc.record({ kind: fc.constant('foreign' as const), filter: filterArb }),
  );

  it('answers a 4xx problem naming the token, or a page, never a 5xx', async () => {
    await clear();
    for (let i = 0; i < 9; i++) await orders.items.create(orderDocument({ customerId: CUSTOMERS[i % 2]!, state: STATES[i % 3]!, status: { inventory: 'done', billing: 'pending', notification: 'done' } }, at(i % 4)));
    const issued = new Map<string, string>();
    await fc.assert(
      fc.asyncProperty(filterArb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 3 }), tampering, async (filter, pageSize, pagesIn, tamper) => {
        // A token the API issued for these filters, some pages in.
        const key = JSON.stringify([filter, pageSize, pagesIn]);
        if (!issued.has(key)) {
          let token: string | undefined;
          for (let i = 0; i <= pagesIn; i++) {
            const next = json(await list(queryOf(filter, pageSize, token))).continuationToken;
            if (!next) break;
            token = next;
          }
          issued.set(key, token ?? '');
        }
        const token = issued.get(key)!;
        fc.pre(token !== '' || tamper.kind === 'anything');
        const [version, fingerprint, inner] = token.split('.');
        const storeToken = token ? Buffer.from(inner!, 'base64url').toString('utf8') : '';
        let sent: string;
        let sentWith = filter;
        if (tamper.kind === 'anything') sent = tamper.text;
        else if (tamper.kind === 'foreign') {
          fc.pre(!sameFilters(tamper.filter, filter));
          sent = token;
          sentWith = tamper.filter;
        } else {
          const changed =
            tamper.kind === 'cut'
              ? storeToken.slice(0, tamper.keep % storeToken.length)
              : (() => {
                  const places = placesIn(storeToken);
                  const place = places[tamper.pick % places.length]!;
                  const v = changedAt(storeToken, place, tamper.value, tamper.remove && place.length > 0);
                  return typeof v === 'string' ? v : JSON.stringify(v);
                })();
          fc.pre(changed !== storeToken);
          sent = `${version}.${fingerprint}.${Buffer.from(changed, 'utf8').toString('base64url')}`;
        }
        const res = await list(queryOf(sentWith, pageSize, sent));
        const body = res.jsonBody as { errors?: { path: string }[] };
        expect({ sent, status: res.status! < 500 }).toEqual({ sent, status: true });
        // Only a token changed into another position may be read: one not ours, or not for these filters, never.
        if (tamper.kind !== 'changed') expect(res.status === 200 && sent === '').toBe(res.status === 200);
        if (res.status !== 200) expect({ sent, status: res.status, errors: body.errors?.map((e) => e.path) }).toEqual({ sent, status: 400, errors: ['continuationToken'] });
      }),
      searchOptions(80),
    );
  });
});

