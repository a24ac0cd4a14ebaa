/**
 * The stand-in's SQL engine (@zeit/cosmosdb-query 0.7.2, used by @vercel/cosmosdb-server) without
 * its quadratic costs; same results, same continuation tokens.
 *
 * - The JavaScript it generates gathers rows with `coll.reduce(($, c) => [...$, {c}], [])`: every
 *   row copies all rows before it, O(n^2) in the container's size (~6 s a query at 20k documents).
 *   The generated syntax tree is rewritten to push onto the accumulator, which each `reduce`
 *   creates for itself (`[]`), so nothing else can see the difference.
 * - `stripUndefined` (applied to every result) copies its array the same way.
 * - Each execution compiled the generated code again with `new Function`; compiled queries are
 *   kept by their code.
 *
 * One answer differs from the library's, to match Cosmos DB's: an ORDER BY on one property keeps
 * the documents that lack it (the library drops them), sorted below every value, null included.
 * Cosmos DB has returned them since 2022 ("Queries with ORDER BY will return all items, including
 * items where the property in the ORDER BY clause isn't defined"; learn.microsoft.com, Azure Cosmos
 * DB for NoSQL, ORDER BY). A list sorted on a field some documents lack showed fewer of them here.
 *
 * `=` and `!=` between values of different types are undefined, as in Cosmos DB (see `cosmosEqual`).
 *
 * And ties are ordered as Cosmos DB orders them: by the documents' `_rid`, compared as the SDK
 * compares them, in the direction of the ORDER BY (see `ridInCosmosOrder`).
 */
import { createRequire } from 'node:module';

interface Query {
  ast: unknown;
  _code: string | null;
  readonly code: string;
  exec(collection: unknown[], options: Record<string, unknown>): { result: unknown[]; continuation: unknown };
}

const queryRequire = createRequire(require.resolve('@zeit/cosmosdb-query'));
const makeQuery = (queryRequire('@zeit/cosmosdb-query') as { default: (sql: string) => Query }).default;
const transform = (queryRequire('./transformer') as { default: (ast: unknown) => unknown }).default;
const generate = (queryRequire('@babel/generator') as { default: (ast: unknown) => { code: string } }).default;
const executor = queryRequire('./executor') as { default: (collection: unknown[], options: ExecOptions) => unknown };
type SortOrder = [string[], boolean];
type GetRid = (row: unknown) => unknown;
type Sort = (collection: unknown[], getRid: GetRid, compositeIndexes: unknown, ...orders: SortOrder[]) => unknown[];
type Paginate = (collection: unknown[], maxItemCount: unknown, continuation: unknown, getRid: GetRid, ...orders: SortOrder[]) => unknown;
type Equality = (a: unknown, b: unknown) => boolean | undefined;
const helpers = queryRequire('./helpers') as {
  stripUndefined: (value: unknown) => unknown;
  sort: Sort;
  paginate: Paginate;
  equal: Equality;
  notEqual: Equality;
};
const tokenModule = queryRequire('./continuation-token') as {
  encode(fields: { RTD?: unknown[] } & Record<string, unknown>): string;
  decode(token: string): { RTD?: unknown[] } & Record<string, unknown>;
};

interface ExecOptions {
  code: string;
  parameters?: { name: string; value: unknown }[];
  udf?: unknown;
  maxItemCount?: number;
  continuation?: unknown;
  compositeIndexes?: unknown;
}

interface Node {
  type?: string;
  [key: string]: unknown;
}

const isNode = (value: unknown): value is Node => typeof value === 'object' && value !== null;
const isAccumulator = (node: unknown): boolean => isNode(node) && node.type === 'Identifier' && node['name'] === '$';

/** `[...$, a, ...b]` -> `($.push(a, ...b), $)` wherever `$` is a reduce accumulator. */
export function pushInsteadOfCopy(root: unknown): unknown {
  const seen = new Set<object>();
  const visit = (node: unknown): unknown => {
    if (!isNode(node) || seen.has(node)) return node;
    seen.add(node);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = visit(node[i]);
      return node;
    }
    for (const key of Object.keys(node)) node[key] = visit(node[key]);
    const elements = node.type === 'ArrayExpression' ? (node['elements'] as unknown[]) : undefined;
    const first = elements?.[0];
    if (elements && isNode(first) && first.type === 'SpreadElement' && isAccumulator(first['argument'])) {
      return {
        type: 'SequenceExpression',
        expressions: [
          {
            type: 'CallExpression',
            callee: {
              type: 'MemberExpression',
              object: { type: 'Identifier', name: '$' },
              property: { type: 'Identifier', name: 'push' },
              computed: false,
            },
            arguments: elements.slice(1),
          },
          { type: 'Identifier', name: '$' },
        ],
      };
    }
    return node;
  };
  return visit(root);
}

/** The library's `stripUndefined` (drop undefined properties and array items, deeply), in linear time. */
export function stripUndefined(value: unknown): unknown {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) if (typeof item !== 'undefined') out.push(stripUndefined(item));
    return out;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) if (typeof item !== 'undefined') out[key] = stripUndefined(item);
    return out;
  }
  return value;
}

const jsonType = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value);

/**
 * `=` and `!=` as Cosmos DB answers them: undefined (neither true nor false) when a side is
 * undefined or the two sides are of different types. The library answers false for `=` across
 * types, so `c.x != 'a'` and `NOT (c.x = 'a')` returned the documents whose `x` is a number, a
 * boolean or null, and `c.x != null` every document with `x` set; Cosmos DB returns none of them
 * ("Equality and comparison operators in Azure Cosmos DB for NoSQL", learn.microsoft.com: the
 * result of an equality comparison between two different JSON types is undefined).
 */
export function cosmosEqual(libraryEqual: Equality): Equality {
  return (a, b) => (a !== undefined && b !== undefined && jsonType(a) !== jsonType(b) ? undefined : libraryEqual(a, b));
}

export function cosmosNotEqual(equal: Equality): Equality {
  return (a, b) => {
    const eq = equal(a, b);
    return eq === undefined ? undefined : !eq;
  };
}

/**
 * The library's sort, without the last step that drops documents lacking the one ORDER BY property.
 * That step runs only for a single order: a second order on the empty path (undefined for every
 * document, so every comparison of it is a tie) skips it and sorts exactly the same. One order never
 * needs a composite index, so none is asked for.
 */
export function sortKeepingUndefined(librarySort: Sort): Sort {
  return (collection, getRid, compositeIndexes, ...orders) =>
    orders.length === 1 ? librarySort(collection, getRid, undefined, orders[0]!, [[], false]) : librarySort(collection, getRid, compositeIndexes, ...orders);
}

/**
 * What the library sorts ties by (and pages past them by) in place of the `_rid` itself: a key that
 * orders ties as Cosmos DB returns them. The SDK resumes a cross-partition ORDER BY (the path every
 * orders list takes on Azure) after the previous page's last document by its sort values, then by
 * its `_rid`: the rid's document id (bytes 8 to 15, little-endian), in the ORDER BY's direction
 * (`RidSkipCountFilter`: reversed when an order is descending, the backend's reverse index scan).
 * The library breaks ties by the rid's text, ascending whatever the direction, so in a list newest
 * first the SDK skipped the ties that followed a page's last document: orders placed in the same
 * millisecond went missing from the list, but on the first page.
 */
export function ridInCosmosOrder(getRid: GetRid, orders: SortOrder[]): GetRid {
  const descending = orders.some(([, desc]) => desc);
  return (row) => {
    const rid = getRid(row);
    // A rid that holds no document id (only tests write such) keeps the library's order.
    return (typeof rid === 'string' && documentIdKey(rid, descending)) || rid;
  };
}

const LAST_DOCUMENT_ID = (1n << 64n) - 1n;

/**
 * The rid's document id as the SDK reads it, as fixed-width hex (it rides in the stand-in's
 * continuation tokens, a header: ASCII only), counted down from the last when `descending`;
 * undefined for a rid too short to hold one.
 */
function documentIdKey(rid: string, descending: boolean): string | undefined {
  const bytes = Buffer.from(rid.replace(/-/g, '/'), 'base64');
  if (bytes.length < 16) return undefined;
  const id = bytes.readBigUInt64LE(8);
  return (descending ? LAST_DOCUMENT_ID - id : id).toString(16).padStart(16, '0');
}

/**
 * The sort values of a page's last document ride in its continuation token as JSON, where a missing
 * value became null: the next page then began after every document lacking the property (they sort
 * below null), and those were never returned. A missing value is written as a marker instead, and
 * every object value is wrapped, so that a stored object shaped like the marker cannot be read back
 * as a missing value (paging would then start again among the documents that lack the property).
 */
const UNDEFINED_KEY = '$undefined';
const OBJECT_KEY = '$object';
const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function encodeSortValue(value: unknown): unknown {
  if (value === undefined) return { [UNDEFINED_KEY]: true };
  return isPlainObject(value) ? { [OBJECT_KEY]: value } : value;
}

function decodeSortValue(value: unknown): unknown {
  if (!isPlainObject(value)) return value;
  if (OBJECT_KEY in value) return value[OBJECT_KEY];
  return value[UNDEFINED_KEY] === true ? undefined : value;
}

const COMPILED_MAX = 2_000;
const compiled = new Map<string, (...args: unknown[]) => unknown>();

function compiledFunction(code: string): (...args: unknown[]) => unknown {
  let fn = compiled.get(code);
  if (!fn) {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval, no-new-func
    fn = new Function(`"use strict";return (${code})`)() as (...args: unknown[]) => unknown;
    if (compiled.size >= COMPILED_MAX) compiled.delete(compiled.keys().next().value as string);
    compiled.set(code, fn);
  }
  return fn;
}

/** The library's executor with the compiled function reused. */
function execute(collection: unknown[], { code, parameters, udf = {}, maxItemCount, continuation, compositeIndexes }: ExecOptions): unknown {
  const params: Record<string, unknown> = {};
  for (const { name, value } of parameters ?? []) params[name.slice(1)] = value;
  const aggregateFunctions = queryRequire('./aggregate-functions') as unknown;
  const builtinFunctions = queryRequire('./builtin-functions') as unknown;
  return compiledFunction(code)(aggregateFunctions, builtinFunctions, collection, helpers, udf, params, maxItemCount, continuation, compositeIndexes);
}

let installed = false;

/** Installs the linear engine into the library for this process (once). */
export function installQueryEngine(): void {
  if (installed) return;
  installed = true;
  const prototype = Object.getPrototypeOf(makeQuery('SELECT * FROM c')) as object;
  Object.defineProperty(prototype, 'code', {
    configurable: true,
    get(this: Query): string {
      if (!this._code) this._code = generate(pushInsteadOfCopy(transform(this.ast))).code;
      return this._code;
    },
  });
  helpers.stripUndefined = stripUndefined;
  helpers.equal = cosmosEqual(helpers.equal);
  helpers.notEqual = cosmosNotEqual(helpers.equal);
  const sort = sortKeepingUndefined(helpers.sort);
  helpers.sort = (collection, getRid, compositeIndexes, ...orders) => sort(collection, ridInCosmosOrder(getRid, orders), compositeIndexes, ...orders);
  const paginate = helpers.paginate;
  helpers.paginate = (collection, maxItemCount, continuation, getRid, ...orders) => paginate(collection, maxItemCount, continuation, ridInCosmosOrder(getRid, orders), ...orders);
  const { encode, decode } = tokenModule;
  tokenModule.encode = (fields) => encode(fields.RTD ? { ...fields, RTD: fields.RTD.map(encodeSortValue) } : fields);
  tokenModule.decode = (token) => {
    const fields = decode(token);
    return fields.RTD ? { ...fields, RTD: fields.RTD.map(decodeSortValue) } : fields;
  };
  executor.default = execute;
}

const PARSED_MAX = 1_000;
const parsed = new Map<string, Query>();

/** A parsed query, kept by its text (conditions repeat per document shape). */
export function compileQuery(sql: string): Query {
  installQueryEngine();
  let query = parsed.get(sql);
  if (!query) {
    query = makeQuery(sql);
    if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value as string);
    parsed.set(sql, query);
  }
  return query;
}
