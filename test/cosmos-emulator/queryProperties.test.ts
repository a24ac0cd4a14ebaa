/**
 * The stand-in against a small model of Azure Cosmos DB for NoSQL, through the real SDK: the query
 * and patch shapes the app uses (src/azure/*.ts, src/support/monitorSweep.ts), on documents whose
 * fields take values of every scalar type or are missing.
 *
 * What the model holds, and where it is documented (learn.microsoft.com, Azure Cosmos DB for NoSQL):
 * - "Equality and comparison operators": `=` between values of two different types, or with an
 *   undefined side, is undefined (not false); `!=`, `<`, `>`, `<=`, `>=` across types, or between
 *   objects or arrays, are undefined too.
 * - "Logical operators": the truth tables of AND, OR and NOT over true, false and undefined
 *   (false AND undefined = false, true OR undefined = true, NOT undefined = undefined).
 * - "WHERE": an item comes back only when the filter is true (undefined is not true).
 * - "ORDER BY": items of different types sort undefined < null < boolean < number < string, and
 *   an item lacking the property comes back too (below every value).
 * - "Partial document update": add/set create or replace an object's property, add `/-` appends to
 *   an array; replace and remove fail when the path does not exist; incr adds to a number and
 *   creates a missing property with the value; any failing operation fails the whole patch; a
 *   conditional patch whose filter predicate is not true fails with 412, as does a stale If-Match.
 *
 * Left out, as the documentation does not settle them: comparisons and ORDER BY of objects and
 * arrays, string order beyond ASCII, relational comparison of booleans, string functions on
 * non-strings, the order of ties (only that they come together), fractional numbers.
 *
 * Paging promise (ORDER BY walks with maxItemCount, documents inserted and deleted between pages):
 * no document comes twice; every document present, unchanged and matching during the whole walk
 * comes exactly once; every document that comes matched the filter; the sort values never go back.
 */
import type { Container, FeedOptions, PatchOperation } from '@azure/cosmos';
import fc from 'fast-check';
import { CONTAINERS, cosmosTopology } from '../../src/topology';
import { startGatewayCosmos, type GatewayCosmos } from '../support/cosmosGateway';
import { searchOptions } from '../unit/support/searchOptions';
import { emulatorWithClient } from './emulator-with-client';

type Scalar = null | boolean | number | string;
type Value = Scalar | undefined;
type Doc = { id: string; a?: Scalar; n?: number; s: string; tags: string[]; st: { b?: string } };

// ---------------------------------------------------------------------------------------------
// The model

type Kind = 'undefined' | 'null' | 'boolean' | 'number' | 'string';
const kindOf = (v: Value): Kind => (v === undefined ? 'undefined' : v === null ? 'null' : (typeof v as Kind));
const KIND_ORDER: Kind[] = ['undefined', 'null', 'boolean', 'number', 'string'];

/** Three-valued: true, false, or undefined (Cosmos DB's undefined). */
type Truth = boolean | undefined;

function equals(a: Value, b: Value): Truth {
  if (a === undefined || b === undefined || kindOf(a) !== kindOf(b)) return undefined;
  return a === b;
}

function relational(op: '<' | '>' | '<=' | '>=', a: Value, b: Value): Truth {
  if (a === undefined || b === undefined || kindOf(a) !== kindOf(b)) return undefined;
  const x = a as number | string;
  const y = b as number | string;
  return op === '<' ? x < y : op === '>' ? x > y : op === '<=' ? x <= y : x >= y;
}

const and = (a: Truth, b: Truth): Truth => (a === false || b === false ? false : a === true && b === true ? true : undefined);
const or = (a: Truth, b: Truth): Truth => (a === true || b === true ? true : a === false && b === false ? false : undefined);
const not = (a: Truth): Truth => (a === undefined ? undefined : !a);

/** ORDER BY's comparison of two values of this model (no objects, no arrays). */
function compareForOrder(a: Value, b: Value): number {
  const ka = KIND_ORDER.indexOf(kindOf(a));
  const kb = KIND_ORDER.indexOf(kindOf(b));
  if (ka !== kb) return ka - kb;
  if (a === b || a === undefined || a === null) return 0;
  return (a as number | string) < (b as number | string) ? -1 : 1;
}

type Field = 'a' | 'n' | 's' | 'st.b';
const valueAt = (doc: Doc, field: Field): Value => (field === 'st.b' ? doc.st.b : (doc as unknown as Record<string, Value>)[field]);

type Expr =
  | { t: 'cmp'; field: Field; op: '=' | '!=' | '<' | '>' | '<=' | '>='; value: Scalar; param: boolean }
  | { t: 'defined'; field: Field; quoted: boolean }
  | { t: 'tagCount'; count: number }
  | { t: 'tag'; tag: string }
  | { t: 'idIn'; ids: string[] }
  | { t: 'starts'; prefix: string }
  | { t: 'and' | 'or'; l: Expr; r: Expr }
  | { t: 'not'; e: Expr };

function evaluate(e: Expr, doc: Doc): Truth {
  switch (e.t) {
    case 'cmp': {
      const v = valueAt(doc, e.field);
      if (e.op === '=') return equals(v, e.value);
      if (e.op === '!=') return not(equals(v, e.value));
      return relational(e.op, v, e.value);
    }
    case 'defined':
      return valueAt(doc, e.field) !== undefined;
    case 'tagCount':
      return doc.tags.length === e.count;
    case 'tag':
      return doc.tags.includes(e.tag);
    case 'idIn':
      return e.ids.includes(doc.id);
    case 'starts':
      return doc.s.startsWith(e.prefix);
    case 'and':
      return and(evaluate(e.l, doc), evaluate(e.r, doc));
    case 'or':
      return or(evaluate(e.l, doc), evaluate(e.r, doc));
    case 'not':
      return not(evaluate(e.e, doc));
  }
}

const matches = (e: Expr | undefined, doc: Doc): boolean => e === undefined || evaluate(e, doc) === true;

// ---------------------------------------------------------------------------------------------
// SQL text

type Parameter = { name: string; value: Scalar | string[] };

function literal(v: Scalar): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `'${v}'`;
  return String(v);
}

/** The filter as SQL; with `params` undefined, every value inline (a patch's filter predicate takes no parameters). */
function sql(e: Expr, params: Parameter[] | undefined): string {
  const param = (value: Parameter['value']): string => {
    if (!params) return Array.isArray(value) ? `[${value.map(literal).join(', ')}]` : literal(value);
    const name = `@p${params.length}`;
    params.push({ name, value });
    return name;
  };
  switch (e.t) {
    case 'cmp':
      return `c.${e.field} ${e.op} ${e.param ? param(e.value) : literal(e.value)}`;
    case 'defined':
      // `c["st"]["b"]`, as the inventory's conditions write `c.holds["<order id>"]`.
      return `IS_DEFINED(${e.quoted ? `c${e.field.split('.').map((p) => `["${p}"]`).join('')}` : `c.${e.field}`})`;
    case 'tagCount':
      return `ARRAY_LENGTH(c.tags) = ${e.count}`;
    case 'tag':
      return `ARRAY_CONTAINS(c.tags, ${literal(e.tag)})`;
    case 'idIn':
      return `ARRAY_CONTAINS(${param(e.ids)}, c.id)`;
    case 'starts':
      return `STARTSWITH(c.s, ${literal(e.prefix)})`;
    case 'and':
    case 'or':
      return `(${sql(e.l, params)} ${e.t.toUpperCase()} ${sql(e.r, params)})`;
    case 'not':
      return `NOT (${sql(e.e, params)})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Generators

const STRINGS = ['', 'a', 'ab', 'b', 'B', 'pending', 'done'];
const TAGS = ['x', 'y', 'z'];
const scalar: fc.Arbitrary<Scalar> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -3, max: 3 }).map((n) => (Object.is(n, -0) ? 0 : n)),
  fc.constantFrom(...STRINGS),
);
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 4 });

const docBody = fc.record({
  a: maybe(scalar),
  n: maybe(fc.integer({ min: 0, max: 4 })),
  s: fc.constantFrom(...STRINGS),
  tags: fc.uniqueArray(fc.constantFrom(...TAGS), { maxLength: 3 }),
  b: maybe(fc.constantFrom('pending', 'done', 'failed')),
});
type DocBody = typeof docBody extends fc.Arbitrary<infer T> ? T : never;

function makeDoc(id: string, body: DocBody): Doc {
  const doc: Doc = { id, s: body.s, tags: body.tags, st: {} };
  if (body.a !== undefined) doc.a = body.a;
  if (body.n !== undefined) doc.n = body.n;
  if (body.b !== undefined) doc.st.b = body.b;
  return doc;
}

const FIELDS: Field[] = ['a', 'n', 's', 'st.b'];
const ID_POOL = Array.from({ length: 12 }, (_, i) => `d${i}`);

const leaf: fc.Arbitrary<Expr> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('cmp' as const), field: fc.constantFrom(...FIELDS), op: fc.constantFrom('=' as const, '!=' as const), value: scalar, param: fc.boolean() }) },
  // Relational comparisons only against numbers and strings (booleans are left out, above).
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('cmp' as const),
      field: fc.constantFrom(...FIELDS),
      op: fc.constantFrom('<' as const, '>' as const, '<=' as const, '>=' as const),
      value: fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constantFrom(...STRINGS)) as fc.Arbitrary<Scalar>,
      param: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('defined' as const), field: fc.constantFrom(...FIELDS), quoted: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('tagCount' as const), count: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('tag' as const), tag: fc.constantFrom(...TAGS) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('idIn' as const), ids: fc.subarray(ID_POOL) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('starts' as const), prefix: fc.constantFrom('', 'a', 'p', 'do') }) },
);

const expr: fc.Arbitrary<Expr> = fc.letrec<{ e: Expr }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 3, arbitrary: leaf },
    { weight: 1, arbitrary: fc.record({ t: fc.constantFrom('and' as const, 'or' as const), l: tie('e'), r: tie('e') }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('not' as const), e: tie('e') }) },
  ),
})).e;

// ---------------------------------------------------------------------------------------------
// The stand-in

const strip = (doc: Record<string, unknown>): Record<string, unknown> => {
  const { _rid, _self, _etag, _attachments, _ts, ...rest } = doc;
  void [_rid, _self, _etag, _attachments, _ts];
  return rest;
};

/** Between two pages, documents created (ids not used before) and removed (picked among those live). */
type Step = { insert: [string, DocBody][]; remove: number[] };
const stepArb: fc.Arbitrary<Step> = fc.record({
  insert: fc.array(fc.tuple(fc.constantFrom(...ID_POOL.map((id) => `n${id}`)), docBody), { maxLength: 2 }),
  remove: fc.array(fc.nat(), { maxLength: 2 }),
});

interface Walk {
  query: string;
  parameters: Parameter[];
  docs: Doc[];
  e: Expr | undefined;
  pageSize: number;
  steps: Step[];
  desc: boolean;
  sortValue: (doc: Doc) => Value;
  maxPages: number;
  queryOptions?: FeedOptions;
}

/**
 * Pages through an ORDER BY query with continuation tokens, creating and removing documents
 * between pages as `steps` say, and checks what paging promises: no document twice, each one as it
 * was written and matching the filter, every document present, unchanged and matching for the
 * whole walk exactly once, and sort values never going back.
 */
async function walkWhileChanging(c: Container, walk: Walk): Promise<void> {
  const { query, parameters, docs, e, pageSize, steps, desc, sortValue } = walk;
  const live = new Map(docs.map((d) => [d.id, d]));
  const everSeen = new Map(docs.map((d) => [d.id, d]));
  const touched = new Set<string>();
  const got: Doc[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page = await c.items
      .query<Doc>({ query, parameters }, { ...walk.queryOptions, maxItemCount: pageSize, ...(token ? { continuationToken: token } : {}) })
      .fetchNext();
    got.push(...page.resources);
    token = page.continuationToken;
    const step = steps[pages];
    if (token && step) {
      for (const [id, body] of step.insert) {
        if (everSeen.has(id)) continue;
        const doc = makeDoc(id, body);
        await c.items.create(doc);
        live.set(id, doc);
        everSeen.set(id, doc);
        touched.add(id);
      }
      const ids = [...live.keys()];
      for (const pick of step.remove) {
        const id = ids[pick % Math.max(ids.length, 1)];
        if (id === undefined || !live.has(id)) continue;
        await c.item(id, id).delete();
        live.delete(id);
        touched.add(id);
      }
    }
  } while (token && ++pages < walk.maxPages);
  expect(token).toBeUndefined();
  const ids = got.map((d) => d.id);
  expect({ query, ids: ids.filter((id, i) => ids.indexOf(id) !== i) }).toEqual({ query, ids: [] });
  for (const d of got) expect({ query, doc: strip(d as never) }).toEqual({ query, doc: everSeen.get(d.id) });
  for (const d of got) expect({ query, id: d.id, matches: matches(e, d) }).toEqual({ query, id: d.id, matches: true });
  const steady = docs.filter((d) => !touched.has(d.id) && matches(e, d)).map((d) => d.id).sort();
  expect({ query, missing: steady.filter((id) => !ids.includes(id)) }).toEqual({ query, missing: [] });
  for (let i = 1; i < got.length; i++) {
    const r = compareForOrder(sortValue(got[i - 1]!), sortValue(got[i]!));
    expect({ query, at: i, backwards: desc ? r < 0 : r > 0 }).toEqual({ query, at: i, backwards: false });
  }
}

/** Long enough for a search (FC_RUNS in the hundreds); the default runs take seconds. */
const SEARCH_TIMEOUT_MS = 15 * 60_000;

const orderKey = (v: Value): string => (v === undefined ? '<undefined>' : JSON.stringify(v));

describe('Cosmos DB stand-in against a model of Cosmos DB: queries and patches through the SDK', () => {
  const { container } = emulatorWithClient('cosmos-props-', { maxSockets: 16 });
  let cases = 0;

  /** A new container (pk /id) holding these documents; dropped by `done`. */
  async function freshContainer(docs: Doc[]): Promise<{ c: Container; done(): Promise<void> }> {
    const { database } = container(CONTAINERS.orders);
    const { container: c } = await database.containers.create({ id: `props-${process.pid}-${cases++}`, partitionKey: { paths: ['/id'] } });
    for (const doc of docs) await c.items.create(doc);
    return { c, done: async () => void (await c.delete()) };
  }

  const docsArb = fc.uniqueArray(fc.tuple(fc.constantFrom(...ID_POOL), docBody), { selector: ([id]) => id, maxLength: 10 }).map((rows) => rows.map(([id, body]) => makeDoc(id, body)));

  it('WHERE: the documents whose filter is true, no others', async () => {
    await fc.assert(
      fc.asyncProperty(docsArb, expr, async (docs, e) => {
        const { c, done } = await freshContainer(docs);
        try {
          const parameters: Parameter[] = [];
          const query = `SELECT * FROM c WHERE ${sql(e, parameters)}`;
          const { resources } = await c.items.query<Record<string, unknown>>({ query, parameters }).fetchAll();
          const got = resources.map(strip).sort((x, y) => String(x['id']).localeCompare(String(y['id'])));
          const want = docs.filter((d) => matches(e, d)).sort((x, y) => x.id.localeCompare(y.id));
          expect({ query, got }).toEqual({ query, got: want });
          const counted = await c.items.query<number>({ query: `SELECT VALUE COUNT(1) FROM c WHERE ${sql(e, [])}`, parameters }).fetchAll();
          expect({ query, count: counted.resources }).toEqual({ query, count: [want.length] });
        } finally {
          await done();
        }
      }),
      searchOptions(40),
    );
  }, SEARCH_TIMEOUT_MS);

  const orderArb = fc.record({ field: fc.constantFrom<Field>('a', 'n', 'st.b'), desc: fc.boolean() });

  /** The model's ORDER BY: the order keys in sequence, and which ids each run of equal keys holds. */
  function modelOrder(docs: Doc[], e: Expr | undefined, field: Field, desc: boolean): Doc[] {
    const sorted = docs.filter((d) => matches(e, d)).sort((x, y) => compareForOrder(valueAt(x, field), valueAt(y, field)));
    return desc ? sorted.reverse() : sorted;
  }

  /** Ties may come in any order: the keys in sequence, and the set of ids under each key. */
  function shape(docs: { id: string; key: string }[]): { keys: string[]; groups: Record<string, string[]> } {
    const groups: Record<string, string[]> = {};
    for (const { id, key } of docs) (groups[key] ??= []).push(id);
    for (const ids of Object.values(groups)) ids.sort();
    return { keys: docs.map((d) => d.key), groups };
  }

  it('ORDER BY one field, ASC or DESC, with TOP: Cosmos DB type order, missing values first, ties together', async () => {
    await fc.assert(
      fc.asyncProperty(docsArb, maybe(expr), orderArb, maybe(fc.integer({ min: 1, max: 6 })), async (docs, e, { field, desc }, top) => {
        const { c, done } = await freshContainer(docs);
        try {
          const parameters: Parameter[] = [];
          const where = e ? ` WHERE ${sql(e, parameters)}` : '';
          const query = `SELECT ${top ? `TOP ${top} ` : ''}* FROM c${where} ORDER BY c.${field} ${desc ? 'DESC' : 'ASC'}`;
          const { resources } = await c.items.query<Doc>({ query, parameters }).fetchAll();
          const want = modelOrder(docs, e, field, desc);
          const key = (d: Doc) => ({ id: d.id, key: orderKey(valueAt(d, field)) });
          if (top === undefined) {
            expect({ query, ...shape(resources.map(key)) }).toEqual({ query, ...shape(want.map(key)) });
            expect(resources.map(strip)).toEqual(expect.arrayContaining(want));
          } else {
            // The first `top` keys; the ids of the last run of ties may be any of that run's.
            const gotKeys = resources.map((d) => key(d).key);
            expect({ query, keys: gotKeys }).toEqual({ query, keys: want.slice(0, top).map((d) => key(d).key) });
            const byId = new Map(want.map((d) => [d.id, d]));
            for (const d of resources) expect({ query, doc: strip(d as never) }).toEqual({ query, doc: byId.get(d.id) });
            expect(new Set(resources.map((d) => d.id)).size).toBe(resources.length);
          }
        } finally {
          await done();
        }
      }),
      searchOptions(40),
    );
  }, SEARCH_TIMEOUT_MS);


  it('pages an ORDER BY with continuation tokens while documents come and go: each steady document once, in order', async () => {
    await fc.assert(
      fc.asyncProperty(docsArb, maybe(expr), orderArb, fc.integer({ min: 1, max: 4 }), fc.array(stepArb, { maxLength: 8 }), async (docs, e, { field, desc }, pageSize, steps) => {
        const { c, done } = await freshContainer(docs);
        try {
          const parameters: Parameter[] = [];
          const where = e ? ` WHERE ${sql(e, parameters)}` : '';
          const query = `SELECT * FROM c${where} ORDER BY c.${field} ${desc ? 'DESC' : 'ASC'}`;
          await walkWhileChanging(c, { query, parameters, docs, e, pageSize, steps, desc, sortValue: (d) => valueAt(d, field), maxPages: 50 });
        } finally {
          await done();
        }
      }),
      searchOptions(30),
    );
  }, SEARCH_TIMEOUT_MS);

  // -------------------------------------------------------------------------------------------
  // Patch

  type PatchPath = '/a' | '/n' | '/s' | '/st/b' | '/q';
  /** `/n` only ever holds integers, so `incr` (on `/n` only) always finds a number or nothing. */
  const opArb: fc.Arbitrary<PatchOperation> = fc.oneof(
    fc.record({ op: fc.constantFrom('set' as const, 'add' as const, 'replace' as const), path: fc.constantFrom<PatchPath>('/a', '/s', '/st/b', '/q'), value: scalar }),
    fc.record({ op: fc.constantFrom('set' as const, 'add' as const, 'replace' as const), path: fc.constant<PatchPath>('/n'), value: fc.integer({ min: -3, max: 3 }) }),
    fc.record({ op: fc.constant('remove' as const), path: fc.constantFrom<PatchPath>('/a', '/n', '/s', '/st/b', '/q') }),
    fc.record({ op: fc.constant('incr' as const), path: fc.constant<PatchPath>('/n'), value: fc.integer({ min: -3, max: 3 }) }),
    fc.record({ op: fc.constant('add' as const), path: fc.constant('/tags/-'), value: fc.constantFrom(...TAGS) }),
  ) as fc.Arbitrary<PatchOperation>;

  /** The model's patch: the new document, or 400 when an operation fails (and then nothing changes). */
  function modelPatch(doc: Doc, ops: PatchOperation[]): Record<string, unknown> | 400 {
    const next = structuredClone(doc) as unknown as Record<string, unknown> & { st: Record<string, unknown>; tags: unknown[] };
    for (const op of ops) {
      if (op.path === '/tags/-') {
        next.tags.push((op as { value: unknown }).value);
        continue;
      }
      const [parent, key] = op.path === '/st/b' ? [next.st, 'b'] : [next, op.path.slice(1)];
      const present = Object.hasOwn(parent, key);
      switch (op.op) {
        case 'set':
        case 'add':
          parent[key] = op.value;
          break;
        case 'replace':
          if (!present) return 400;
          parent[key] = op.value;
          break;
        case 'remove':
          if (!present) return 400;
          delete parent[key];
          break;
        case 'incr':
          parent[key] = present ? (parent[key] as number) + (op.value as number) : op.value;
          break;
        default:
          throw new Error(`not in the model: ${JSON.stringify(op)}`);
      }
    }
    return next;
  }

  it('patch with a filter predicate and If-Match: 412 unless both hold, 400 and nothing changed when an operation fails, else the model document', async () => {
    await fc.assert(
      fc.asyncProperty(
        docBody,
        maybe(expr),
        fc.array(opArb, { minLength: 1, maxLength: 5 }),
        fc.constantFrom('none' as const, 'current' as const, 'stale' as const),
        async (body, e, operations, ifMatch) => {
          const doc = makeDoc('d0', body);
          const { c, done } = await freshContainer([doc]);
          try {
            const item = c.item(doc.id, doc.id);
            const { resource: before } = await item.read<Record<string, unknown>>();
            const condition = e ? `from c where ${sql(e, undefined)}` : undefined;
            const etag = ifMatch === 'current' ? String(before!['_etag']) : ifMatch === 'stale' ? '"00000000-0000-0000-0000-000000000000"' : undefined;
            const modelled = modelPatch(doc, operations);
            const want = ifMatch === 'stale' || (e && !matches(e, doc)) ? 412 : modelled === 400 ? 400 : 200;
            let status = 200;
            let returned: Record<string, unknown> | undefined;
            try {
              const response = await item.patch<Record<string, unknown>>(
                condition ? { condition, operations } : operations,
                etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : undefined,
              );
              returned = response.resource;
            } catch (err) {
              status = (err as { code?: number }).code ?? -1;
            }
            const label = { condition, operations, ifMatch };
            expect({ ...label, status }).toEqual({ ...label, status: want });
            const { resource: after } = await item.read<Record<string, unknown>>();
            if (want === 200) {
              expect({ ...label, doc: strip(returned!) }).toEqual({ ...label, doc: modelled });
              expect({ ...label, doc: strip(after!) }).toEqual({ ...label, doc: modelled });
              expect(after!['_etag']).not.toBe(before!['_etag']);
            } else {
              expect({ ...label, doc: after }).toEqual({ ...label, doc: before });
            }
          } finally {
            await done();
          }
        },
      ),
      searchOptions(50),
    );
  }, SEARCH_TIMEOUT_MS);
});

/**
 * The same walk on the path Azure makes the SDK take for a cross-partition ORDER BY (the orders list
 * and the dead-letter list): the SDK runs it per partition key range, keeps its own continuation
 * token (query control on), and resumes after the previous page's last document by its sort value
 * and rid. Only a field every document holds as a string is sorted on here (`s`, with many ties):
 * how Azure resumes across types or past missing values is not documented.
 */
describe('Cosmos DB stand-in against a model of Cosmos DB: ORDER BY paging on the SDK\'s cross-partition path', () => {
  let cosmos: GatewayCosmos;
  let cases = 0;

  beforeAll(async () => {
    cosmos = await startGatewayCosmos();
  });

  afterAll(async () => {
    await cosmos?.stop();
  });

  async function freshContainer(docs: Doc[]): Promise<{ c: Container; done(): Promise<void> }> {
    const database = cosmos.client.database(cosmosTopology.databaseName);
    const { container: c } = await database.containers.create({ id: `gw-props-${process.pid}-${cases++}`, partitionKey: { paths: ['/id'] } });
    for (const doc of docs) await c.items.create(doc);
    return { c, done: async () => void (await c.delete()) };
  }

  const docsArb = fc.uniqueArray(fc.tuple(fc.constantFrom(...ID_POOL), docBody), { selector: ([id]) => id, maxLength: 10 }).map((rows) => rows.map(([id, body]) => makeDoc(id, body)));

  it('each steady document once, only matching ones, sort values never going back', async () => {
    await fc.assert(
      fc.asyncProperty(docsArb, maybe(expr), fc.boolean(), fc.integer({ min: 1, max: 4 }), fc.array(stepArb, { maxLength: 8 }), async (docs, e, desc, pageSize, steps) => {
        const { c, done } = await freshContainer(docs);
        try {
          const parameters: Parameter[] = [];
          const where = e ? ` WHERE ${sql(e, parameters)}` : '';
          const query = `SELECT * FROM c${where} ORDER BY c.s ${desc ? 'DESC' : 'ASC'}`;
          await walkWhileChanging(c, { query, parameters, docs, e, pageSize, steps, desc, sortValue: (d) => d.s, maxPages: 80, queryOptions: { enableQueryControl: true } });
        } finally {
          await done();
        }
      }),
      searchOptions(10),
    );
    // The walks took the per-range path, not the stand-in's own ORDER BY paging.
    expect(cosmos.served.perRange).toBeGreaterThan(0);
  }, SEARCH_TIMEOUT_MS);
});

