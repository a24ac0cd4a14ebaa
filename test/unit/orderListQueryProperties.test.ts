/**
 * Properties of the orders list's query string (GET /api/orders, src/http/orderRoutes.ts), over
 * orders in the in-memory store (which lists as the stand-in does: test/integration/
 * orderListingProperties.test.ts). For any query string of known and unknown parameters, valid or
 * not, some given twice:
 *
 * - the answer is 200 or a 400 problem, never anything else;
 * - 400 exactly when a parameter is unknown, given twice or not valid, naming each such parameter;
 * - a 200 followed to the end lists exactly the orders every filter given matches (filters
 *   combine with AND), newest first.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import fc from 'fast-check';
import type { OrderState, ServiceStatus } from '../../src/domain/order';
import { newOrder } from '../../src/domain/orderState';
import { handleListOrders } from '../../src/http/orderRoutes';
import type { SupportAccess } from '../../src/support/principal';
import { SERVICES } from '../../src/topology';
import { memoryDependencies } from './support/memoryStores';
import { searchOptions } from './support/searchOptions';

const BASE = 'http://localhost:7071/api';
const LOCAL: SupportAccess = { developmentPrincipal: 'support@localhost' };
const STATES: OrderState[] = ['accepted', 'processing', 'completed', 'compensating', 'cancelled', 'attention'];
const STATUSES: ServiceStatus[] = ['pending', 'processing', 'done', 'failed', 'deadlettered', 'compensated'];
const CUSTOMERS = ['ana', 'bo', 'Ana', 'ana b'];
const FILTERS = ['state', 'customerId', 'status.inventory', 'status.billing', 'status.notification'] as const;
const UNKNOWN = ['State', 'customerid', 'status', 'status.payment', 'page', 'status.'];

function context(): InvocationContext {
  return new InvocationContext({ functionName: 'listOrders', invocationId: 'inv-1', logHandler: () => undefined });
}

/** Whether `value` is a valid value of parameter `name` (undefined: not a parameter the list knows). */
function valid(name: string, value: string): boolean | undefined {
  switch (name) {
    case 'state':
      return (STATES as string[]).includes(value);
    case 'customerId':
      return value.trim().length >= 1 && value.trim().length <= 128 && !/\p{Cc}/u.test(value);
    case 'status.inventory':
    case 'status.billing':
    case 'status.notification':
      return (STATUSES as string[]).includes(value);
    case 'pageSize':
      return /^[0-9]+$/.test(value) && Number(value) >= 1 && Number(value) <= 100;
    default:
      return undefined;
  }
}

/** Mostly a value the parameter takes, sometimes one it does not. */
function valueFor(name: string): fc.Arbitrary<string> {
  const junk = fc.constantFrom('', ' ', 'DONE', 'done ', '0', '101', '1e1', '-1', 'ana\u0007');
  const fitting =
    name === 'state'
      ? fc.constantFrom(...STATES)
      : name === 'customerId'
        ? fc.constantFrom(...CUSTOMERS, ' ana ', 'nobody')
        : name.startsWith('status.')
          ? fc.constantFrom(...STATUSES)
          : name === 'pageSize'
            ? fc.integer({ min: 1, max: 100 }).map(String)
            : fc.constantFrom(...STATES, 'x');
  return fc.oneof({ arbitrary: fitting, weight: 6 }, { arbitrary: junk, weight: 1 });
}

const paramArb = fc
  .oneof({ arbitrary: fc.constantFrom<string>(...FILTERS, 'pageSize'), weight: 12 }, { arbitrary: fc.constantFrom(...UNKNOWN), weight: 1 })
  .chain((name) => valueFor(name).map((value): [string, string] => [name, value]));

describe('GET /api/orders query string', () => {
  it('is a 400 naming each bad parameter, or lists exactly the orders every filter matches', async () => {
    const deps = memoryDependencies({ faultInjectionEnabled: false });
    const shapes = fc.sample(
      fc.record({
        customerId: fc.constantFrom(...CUSTOMERS),
        state: fc.constantFrom(...STATES),
        status: fc.record({ inventory: fc.constantFrom(...STATUSES), billing: fc.constantFrom(...STATUSES), notification: fc.constantFrom(...STATUSES) }),
        second: fc.integer({ min: 0, max: 20 }),
      }),
      { numRuns: 60, seed: 7 },
    );
    for (const [i, shape] of shapes.entries()) {
      const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `c-${id}`, customerId: shape.customerId, items: [{ sku: 'S', quantity: 1, unitPrice: 1 }], total: 1, now: new Date(Date.UTC(2026, 0, 1, 0, 0, shape.second)).toISOString() });
      await deps.orders.create({ ...order, state: shape.state, status: shape.status });
    }
    const docs = [...deps.orders.docs.values()];
    const list = (params: [string, string][]): Promise<HttpResponseInit> => {
      const search = new URLSearchParams(params);
      return handleListOrders(new HttpRequest({ method: 'GET', url: `${BASE}/orders?${search}`, query: Object.fromEntries(search) }), context(), () => deps, LOCAL);
    };

    await fc.assert(
      fc.asyncProperty(fc.array(paramArb, { maxLength: 5 }), async (params) => {
        const res = await list(params);
        const counts = new Map<string, number>();
        for (const [name] of params) counts.set(name, (counts.get(name) ?? 0) + 1);
        const bad = [...counts.keys()].filter((name) => counts.get(name)! > 1 || !valid(name, params.find(([n]) => n === name)![1]));
        if (bad.length > 0) {
          expect(res.status).toBe(400);
          const named = new Set(((res.jsonBody as { errors?: { path: string }[] }).errors ?? []).map((e) => e.path));
          expect([...bad].filter((name) => !named.has(name))).toEqual([]);
          return;
        }
        expect(res.status).toBe(200);
        const given = new Map(params);
        const expected = docs
          .filter((o) => !given.has('state') || o.state === given.get('state'))
          .filter((o) => !given.has('customerId') || o.customerId === given.get('customerId')!.trim())
          .filter((o) => SERVICES.every((s) => !given.has(`status.${s}`) || o.status[s] === given.get(`status.${s}`)));
        const listed: { id: string; createdAt: string }[] = [];
        let page = res.jsonBody as { orders: { id: string; createdAt: string }[]; continuationToken?: string };
        for (;;) {
          listed.push(...page.orders);
          if (!page.continuationToken) break;
          const next = await list([...params, ['continuationToken', page.continuationToken]]);
          expect(next.status).toBe(200);
          page = next.jsonBody as typeof page;
        }
        expect(listed.map((o) => o.id).sort()).toEqual(expected.map((o) => o.id).sort());
        for (let i = 1; i < listed.length; i++) expect(listed[i - 1]!.createdAt >= listed[i]!.createdAt).toBe(true);
      }),
      searchOptions(300),
    );
  });
});
