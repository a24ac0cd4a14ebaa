import { createRequire } from 'node:module';
import { inspect } from 'node:util';
import { installConditionalPatch } from '../../local/cosmos-emulator/conditional-patch';
import { recordStoredBytes } from '../../local/cosmos-emulator/item-size';
import { patchDocument, type Collection, type PatchResult } from '../../local/cosmos-emulator/patch-operations';

type Doc = Record<string, unknown>;
type PatchFn = (collection: Collection, input: Record<string, unknown>) => PatchResult;

// The library's own modules, taken before anything in this file replaces its patch entry point.
const libraryRequire = createRequire(require.resolve('@vercel/cosmosdb-server'));
const libraryModule = libraryRequire('./handler/_patch-operations') as { patchOperation: PatchFn };
const libraryPatch = libraryModule.patchOperation;
const Account = (libraryRequire('./account') as { default: new (host: string, port: number) => LibraryAccount }).default;
const ours = patchDocument as unknown as PatchFn;

interface LibraryCollection extends Collection {
  documents: Collection['documents'] & { create(doc: Doc): Doc };
}
interface LibraryAccount {
  databases: { create(db: Doc): Doc };
  database(id: string): { collections: { create(c: Doc): Doc }; collection(id: string): LibraryCollection };
}

const ORDER: Doc = {
  id: 'o1',
  pk: 'p1',
  email: 'o1@example.com',
  status: 'Pending',
  total: 10,
  count: 1,
  nothing: null,
  text: 'abc',
  flags: { a: true },
  'a/b': 1,
  'm~n': 2,
  list: [1, 2, 3],
  mixed: [{ k: 1 }, 'str', null],
  nested: { deep: { x: 1 } },
  timeline: [
    { at: '2024-01-01T00:00:00.000Z', state: 'accepted' },
    { at: '2024-01-01T00:00:01.000Z', state: 'processing' },
  ],
};
const OTHER: Doc = { id: 'o2', pk: 'p1', email: 'o2@example.com' };

/** A fresh in-memory collection of the library (partitioned on /pk, unique /email) holding ORDER and OTHER. */
function freshCollection(): LibraryCollection {
  const account = new Account('localhost', 0);
  account.databases.create({ id: 'db' });
  account.database('db').collections.create({
    id: 'orders',
    partitionKey: { paths: ['/pk'] },
    uniqueKeyPolicy: { uniqueKeys: [{ paths: ['/email'] }] },
  });
  const collection = account.database('db').collection('orders');
  collection.documents.create(structuredClone(ORDER));
  collection.documents.create(structuredClone(OTHER));
  return collection;
}

const stored = (collection: Collection, id: string): Doc | undefined => collection.document(id, 'p1').read();
/** Everything a document holds, odd values and prototypes included, as text to compare later. */
const snapshot = (doc: unknown): string => inspect(doc, { depth: null, showHidden: true, sorted: true });

/** Etags are random and _ts is the clock: both are replaced by what they say (changed or not). */
function comparable(value: unknown, originalEtag: string): unknown {
  if (typeof value !== 'object' || value === null || !('_etag' in value)) return value;
  const doc = value as Doc;
  expect(typeof doc._ts).toBe('number');
  return { ...doc, _etag: doc._etag === originalEtag ? 'original etag' : 'new etag', _ts: 'ts' };
}

interface Case {
  name: string;
  operations: unknown[];
  /** Input fields besides id, partitionKey and operations; `ifMatch: 'current'` means the stored etag. */
  input?: { id?: string; partitionKey?: string; ifMatch?: string };
  status: number;
}

interface Outcome {
  result: PatchResult;
  order: unknown;
  other: unknown;
  operationsAfter: unknown;
  /** The stored order is still the very object it was before the patch. */
  untouched: boolean;
  /** The version stored before the patch still holds what it held (a new version shares its unchanged parts). */
  previousVersionIntact: boolean;
}

function run(patch: PatchFn, testCase: Case): Outcome {
  const collection = freshCollection();
  const before = stored(collection, 'o1')!;
  const beforeContent = snapshot(before);
  const etag = before._etag as string;
  const operations = structuredClone(testCase.operations); // keeps shared references and odd values
  const ifMatch = testCase.input?.ifMatch === 'current' ? etag : testCase.input?.ifMatch;
  const result = patch(collection, {
    id: testCase.input?.id ?? 'o1',
    partitionKey: testCase.input?.partitionKey ?? '["p1"]',
    ...(ifMatch !== undefined ? { ifMatch } : {}),
    operations,
  });
  return {
    result: { statusCode: result.statusCode, body: comparable(result.body, etag) },
    order: comparable(stored(collection, 'o1'), etag),
    other: comparable(stored(collection, 'o2'), stored(collection, 'o2')!._etag as string),
    operationsAfter: operations,
    untouched: stored(collection, 'o1') === before,
    previousVersionIntact: snapshot(before) === beforeContent,
  };
}

const set = (path: string, value: unknown) => ({ op: 'set', path, value });
const add = (path: string, value: unknown) => ({ op: 'add', path, value });
const replace = (path: string, value: unknown) => ({ op: 'replace', path, value });
const remove = (path: string) => ({ op: 'remove', path });
const incr = (path: string, value: unknown) => ({ op: 'incr', path, value });
const move = (from: unknown, path: string) => ({ op: 'move', from, path });

const shared = { x: 1 };

const CASES: Case[] = [
  // One operation of each kind that succeeds
  { name: 'set a new field', operations: [set('/state', 'Done')], status: 200 },
  { name: 'set an existing field', operations: [set('/status', { billing: 'done' })], status: 200 },
  { name: 'set the last segment of a nested path', operations: [set('/nested/deep/y', [1, 2])], status: 200 },
  { name: 'set an array element', operations: [set('/list/1', 20)], status: 200 },
  { name: 'set inside an array element', operations: [set('/timeline/0/state', 'created')], status: 200 },
  { name: 'add appends with -', operations: [add('/timeline/-', { at: 'now', state: 'completed' })], status: 200 },
  { name: 'add inserts at an index', operations: [add('/list/0', 0)], status: 200 },
  { name: 'add at the array length appends', operations: [add('/list/3', 4)], status: 200 },
  { name: 'add - on an object is a key', operations: [add('/flags/-', 'dash')], status: 200 },
  { name: 'add an existing key overwrites', operations: [add('/status', 'Overwritten')], status: 200 },
  { name: 'replace a field', operations: [replace('/status', 'Replaced')], status: 200 },
  { name: 'replace an array element', operations: [replace('/list/2', { three: 3 })], status: 200 },
  { name: 'remove a field', operations: [remove('/status')], status: 200 },
  { name: 'remove an array element', operations: [remove('/timeline/0')], status: 200 },
  { name: 'remove an inherited name is a no-op', operations: [remove('/toString')], status: 200 },
  { name: 'incr a number', operations: [incr('/total', 5)], status: 200 },
  { name: 'incr by a fraction', operations: [incr('/total', -2.5)], status: 200 },
  { name: 'incr a missing field sets it', operations: [incr('/newCount', 3)], status: 200 },
  { name: 'incr null sets it', operations: [incr('/nothing', 2)], status: 200 },
  { name: 'incr an array element', operations: [incr('/list/0', 1)], status: 200 },
  { name: 'incr a null array element', operations: [incr('/mixed/2', 4)], status: 200 },
  { name: 'move a field', operations: [move('/status', '/state')], status: 200 },
  { name: 'move an array element out', operations: [move('/list/0', '/first')], status: 200 },
  { name: 'move within an array', operations: [move('/timeline/0', '/timeline/-')], status: 200 },
  { name: 'move an object', operations: [move('/nested/deep', '/moved')], status: 200 },
  { name: 'move into a sibling', operations: [move('/flags', '/nested/flags')], status: 200 },
  { name: 'JSON pointer ~1 in set', operations: [set('/a~1b', 5)], status: 200 },
  { name: 'JSON pointer ~0 in remove', operations: [remove('/m~0n')], status: 200 },
  { name: 'JSON pointer in move from', operations: [move('/a~1b', '/c~0d')], status: 200 },
  { name: 'no operations', operations: [], status: 200 },
  { name: 'If-Match with the current etag', operations: [set('/state', 'x')], input: { ifMatch: 'current' }, status: 200 },

  // Several operations on one document
  {
    name: 'a typical order patch',
    operations: [
      set('/status', 'Completed'),
      add('/timeline/-', { at: '2024-01-01T00:00:02.000Z', state: 'completed' }),
      incr('/count', 1),
      set('/completedAt', '2024-01-01T00:00:02.000Z'),
      set('/nested/deep/x', 2),
      remove('/nothing'),
    ],
    status: 200,
  },
  {
    name: 'later operations change a value an earlier one stored',
    operations: [add('/extra', { x: 1, y: [] }), incr('/extra/x', 2), add('/extra/y/-', 'a'), set('/extra/y/0', 'b'), move('/extra/x', '/ex')],
    status: 200,
  },
  { name: 'one value object stored twice', operations: [set('/a', shared), set('/b', shared), incr('/a/x', 1)], status: 200 },
  { name: 'move then change what was moved', operations: [move('/nested', '/n2'), incr('/n2/deep/x', 5), remove('/n2/deep')], status: 200 },
  { name: 'ten operations', operations: Array.from({ length: 10 }, (_, i) => incr('/count', i)), status: 200 },
  { name: 'add then remove the same index', operations: [add('/list/1', 'new'), remove('/list/1'), add('/list/-', 'end')], status: 200 },

  // Values JSON would change, and paths through inherited names
  { name: 'undefined then replace it', operations: [set('/u', undefined), replace('/u', 1)], status: 400 },
  { name: 'undefined then set it', operations: [set('/u', undefined), incr('/u', 1)], status: 200 },
  { name: 'undefined as the last value', operations: [set('/u', undefined)], status: 200 },
  { name: 'undefined inside an object value', operations: [set('/obj', { a: undefined, b: 1 }), remove('/obj/a')], status: 400 },
  { name: 'undefined inside an array value', operations: [set('/arr', [undefined, 1]), incr('/arr/0', 1)], status: 200 },
  { name: 'minus zero then incr', operations: [set('/z', -0), set('/w', 1)], status: 200 },
  { name: 'minus zero last', operations: [set('/w', 1), set('/z', -0)], status: 200 },
  { name: 'incr to minus zero', operations: [incr('/mz', -0), set('/w', 1)], status: 200 },
  { name: 'incr to Infinity then incr again', operations: [incr('/total', Number.MAX_VALUE), incr('/total', Number.MAX_VALUE), incr('/total', 1)], status: 200 },
  { name: 'NaN as a value', operations: [set('/nan', NaN), incr('/nan', 1)], status: 200 },
  { name: 'incr by NaN', operations: [incr('/total', NaN), set('/w', 1)], status: 200 },
  { name: 'a Date value then more', operations: [set('/when', new Date(0)), set('/w', 1)], status: 200 },
  { name: 'a Date value last', operations: [set('/when', new Date(0))], status: 200 },
  { name: 'a BigInt value then more', operations: [set('/big', BigInt(1)), set('/w', 1)], status: 400 },
  { name: 'a BigInt value then an invalid path', operations: [set('/big', BigInt(1)), set('w', 1)], status: 400 },
  { name: 'set through __proto__ then replace', operations: [set('/nested/__proto__', { polluted: 1 }), replace('/nested/polluted', 2)], status: 400 },
  { name: 'set through __proto__ last', operations: [set('/nested/__proto__', { polluted: 1 })], status: 200 },
  { name: 'move from __proto__ then set under it', operations: [move('/nested/__proto__', '/p'), set('/p/k', 1)], status: 200 },
  { name: '__proto__ at the top is a system property', operations: [move('/__proto__', '/p')], status: 400 },
  { name: 'set through an inherited function', operations: [set('/constructor/x', 1)], status: 400 },
  { name: 'replace an inherited name', operations: [replace('/toString', 1), set('/w', 1)], status: 200 },
  { name: 'move an inherited function', operations: [move('/toString', '/fn'), set('/w', 1)], status: 200 },
  { name: 'incr an inherited function', operations: [incr('/valueOf', 1)], status: 400 },

  // Errors of the operations, each with nothing stored
  { name: 'eleven operations', operations: Array.from({ length: 11 }, () => incr('/count', 1)), status: 400 },
  { name: 'no path', operations: [{ op: 'set', value: 1 }], status: 400 },
  { name: 'a path without a slash', operations: [set('status', 1)], status: 400 },
  { name: 'a path that is not a string', operations: [{ op: 'set', path: 5, value: 1 }], status: 400 },
  { name: 'an empty path', operations: [set('', 1)], status: 400 },
  { name: 'the root path', operations: [set('/', 1)], status: 200 },
  { name: 'a system property', operations: [set('/_etag', 'x')], status: 400 },
  { name: 'a nested system property', operations: [remove('/_foo/bar')], status: 400 },
  { name: 'an unsupported op', operations: [{ op: 'copy', path: '/x', from: '/status' }], status: 400 },
  { name: 'no op', operations: [{ path: '/x', value: 1 }], status: 400 },
  { name: 'a null operation', operations: [null], status: 400 },
  { name: 'a string operation', operations: ['set'], status: 400 },
  { name: 'set can not create a path', operations: [set('/nested/missing/more/x', 1)], status: 400 },
  { name: 'set past the array end', operations: [set('/list/3', 1)], status: 400 },
  { name: 'set a negative index', operations: [set('/list/-1', 1)], status: 400 },
  { name: 'set a non-numeric index', operations: [set('/list/x', 1)], status: 400 },
  { name: 'set - on an array', operations: [set('/list/-', 1)], status: 400 },
  { name: 'set under a string', operations: [set('/text/x', 1)], status: 400 },
  { name: 'set through a missing array index', operations: [set('/list/7/x', 1)], status: 400 },
  { name: 'add past the array end', operations: [add('/list/4', 1)], status: 400 },
  { name: 'add a negative index', operations: [add('/list/-1', 1)], status: 400 },
  { name: 'add a non-numeric index', operations: [add('/list/a', 1)], status: 400 },
  { name: 'add under a string', operations: [add('/text/x', 1)], status: 400 },
  { name: 'add can not create a path', operations: [add('/missing/more/x', 1)], status: 400 },
  { name: 'replace a missing field', operations: [replace('/missing', 1)], status: 400 },
  { name: 'replace past the array end', operations: [replace('/list/3', 1)], status: 400 },
  { name: 'replace under a string', operations: [replace('/text/x', 1)], status: 400 },
  { name: 'replace under a missing path', operations: [replace('/missing/deep/x', 1)], status: 400 },
  { name: 'remove a missing field', operations: [remove('/missing')], status: 400 },
  { name: 'remove past the array end', operations: [remove('/list/9')], status: 400 },
  { name: 'remove a negative index', operations: [remove('/list/-1')], status: 400 },
  { name: 'remove under a string', operations: [remove('/text/0')], status: 400 },
  { name: 'incr by a string', operations: [incr('/total', '1')], status: 400 },
  { name: 'incr without a value', operations: [{ op: 'incr', path: '/total' }], status: 400 },
  { name: 'incr a string', operations: [incr('/status', 1)], status: 400 },
  { name: 'incr an object', operations: [incr('/flags', 1)], status: 400 },
  { name: 'incr past the array end', operations: [incr('/list/9', 1)], status: 400 },
  { name: 'incr under a string', operations: [incr('/text/x', 1)], status: 400 },
  { name: 'incr can not create a path', operations: [incr('/missing/more/x', 1)], status: 400 },
  { name: 'move without from', operations: [{ op: 'move', path: '/x' }], status: 400 },
  { name: 'move from without a slash', operations: [move('status', '/x')], status: 400 },
  { name: 'move from a number', operations: [move(5, '/x')], status: 400 },
  { name: 'move to itself', operations: [move('/status', '/status')], status: 400 },
  { name: 'move to itself through an escape', operations: [move('/x/y', '/x~1y')], status: 400 },
  { name: 'move from a system property', operations: [move('/_rid', '/x')], status: 400 },
  { name: 'move to a child of itself', operations: [move('/nested', '/nested/deep/x')], status: 400 },
  { name: 'move from a missing field', operations: [move('/missing', '/x')], status: 400 },
  { name: 'move to a path that can not be created', operations: [move('/status', '/missing/more/x')], status: 400 },
  { name: 'move past the array end after removing', operations: [move('/list/0', '/list/3')], status: 400 },
  { name: 'move a null', operations: [move('/nothing', '/x')], status: 200 },

  // A later operation fails: nothing of the earlier ones is stored
  {
    name: 'the third of three fails',
    operations: [set('/status', 'Completed'), add('/timeline/-', { state: 'completed' }), incr('/status', 1)],
    status: 400,
  },
  { name: 'the last of ten fails', operations: [...Array.from({ length: 9 }, () => incr('/count', 1)), remove('/missing')], status: 400 },
  { name: 'a move fails after an add', operations: [add('/list/-', 4), move('/list/9', '/x')], status: 400 },

  // The request around the operations, and the replace step
  { name: 'a stale If-Match', operations: [set('/state', 'x')], input: { ifMatch: 'stale' }, status: 412 },
  { name: 'a missing document', operations: [set('/state', 'x')], input: { id: 'missing' }, status: 404 },
  { name: 'another partition', operations: [set('/state', 'x')], input: { partitionKey: '["p2"]' }, status: 404 },
  { name: 'changing the partition key', operations: [set('/pk', 'p2')], status: 400 },
  { name: 'changing the id', operations: [set('/id', 'o3')], status: 400 },
  { name: 'removing the id', operations: [remove('/id')], status: 400 },
  { name: 'a unique key taken by another document', operations: [set('/email', 'o2@example.com')], status: 409 },
  { name: 'a unique key changed after other operations', operations: [incr('/count', 1), set('/email', 'o2@example.com')], status: 409 },
];

// Where the library is wrong and the stand-in answers as Cosmos DB does ("Get started with Azure
// Cosmos DB partial document update", troubleshooting: an add, set or incr cannot create a path,
// "no path found beyond"). The library writes the value into the grandparent when only the last
// parent is missing: `set /holds/x` on a document without `holds` stored `x` at the top level.
describe('Cosmos DB stand-in: an operation below a missing field is refused, as Cosmos DB refuses it', () => {
  it.each([
    ['set', set('/nested/missing/x', 1)],
    ['add', add('/missing/x', 1)],
    ['add to an array that is not there', add('/missing/-', 1)],
    ['incr', incr('/missing/x', 1)],
  ])('%s', (_name, operation) => {
    const answer = run(ours, { name: 'missing parent', operations: [operation], status: 400 });
    expect(answer.result.statusCode).toBe(400);
    expect(JSON.stringify(answer.result.body)).toContain("can't create path recursively");
    expect(answer.untouched).toBe(true);
    // The library's answer, kept here so the difference stays deliberate.
    expect(run(libraryPatch, { name: 'missing parent', operations: [operation], status: 200 }).result.statusCode).toBe(200);
  });
});

describe("Cosmos DB stand-in: patch operations match the library's", () => {
  it('compares against the library itself', () => {
    expect(libraryPatch).not.toBe(ours);
    expect(String(libraryPatch)).toContain('applyPatchOperations');
    expect(String(libraryRequire('./handler/_patch-operations').patchOperation)).toContain('applyPatchOperations');
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, testCase) => {
    const expected = run(libraryPatch, testCase);
    const actual = run(ours, testCase);
    expect(expected.result.statusCode).toBe(testCase.status); // the table says what the library does
    expect(actual.result).toStrictEqual(expected.result);
    expect(actual.order).toStrictEqual(expected.order);
    expect(actual.other).toStrictEqual(expected.other);
    expect(actual.operationsAfter).toStrictEqual(structuredClone(testCase.operations));
    expect(actual.untouched).toBe(expected.untouched);
    expect(actual.untouched).toBe(testCase.status !== 200);
    expect(actual.previousVersionIntact).toBe(true);
  });

  // A patch whose last operation leaves a value JSON would change stores it so (as the library
  // does); the next patch of that document must see it as the library's copy makes it.
  const SEQUENCES: { name: string; first: unknown[]; second: unknown[] }[] = [
    { name: 'undefined left by the last operation, then replaced', first: [set('/u', undefined)], second: [replace('/u', 1)] },
    { name: 'undefined left by the last operation, then removed', first: [set('/u', undefined)], second: [remove('/u')] },
    { name: 'Infinity left by the last operation, then another field set', first: [incr('/total', Number.MAX_VALUE), incr('/total', Number.MAX_VALUE)], second: [set('/w', 1)] },
    { name: 'Infinity left by the last operation, then incremented', first: [incr('/total', Number.MAX_VALUE), incr('/total', Number.MAX_VALUE)], second: [incr('/total', 1)] },
    { name: 'minus zero left inside an array, then the array appended to', first: [set('/list/0', -0)], second: [add('/list/-', 4)] },
    { name: 'a prototype set through __proto__, then a field under it', first: [set('/nested/__proto__', { polluted: 1 })], second: [replace('/nested/polluted', 2)] },
    { name: 'a Date left by the last operation, then a field next to it', first: [set('/when', new Date(0))], second: [set('/w', 1)] },
    { name: 'undefined left inside an object value, then that value replaced', first: [set('/obj', { a: undefined, b: 1 })], second: [replace('/obj/a', 2)] },
    // eslint-disable-next-line no-sparse-arrays
    { name: 'a sparse array left by the last operation, then another field set', first: [set('/arr', [1, , 3])], second: [set('/w', 1)] },
    { name: 'a plain patch, then another on the shared parts', first: [add('/timeline/-', { state: 'x' })], second: [set('/timeline/0/state', 'y'), remove('/nested/deep')] },
  ];

  it.each(SEQUENCES.map((c) => [c.name, c] as const))('two patches in a row: %s', (_name, sequence) => {
    const outcome = (patch: PatchFn) => {
      const collection = freshCollection();
      const patchWith = (operations: unknown[]) => patch(collection, { id: 'o1', partitionKey: '["p1"]', operations: structuredClone(operations) });
      const first = patchWith(sequence.first);
      const afterFirst = stored(collection, 'o1')!;
      const afterFirstContent = snapshot(afterFirst);
      const second = patchWith(sequence.second);
      const etag = afterFirst._etag as string;
      return {
        statuses: [first.statusCode, second.statusCode],
        second: comparable(second.body, etag),
        order: comparable(stored(collection, 'o1'), etag),
        firstVersionIntact: snapshot(afterFirst) === afterFirstContent,
      };
    };
    const expected = outcome(libraryPatch);
    const actual = outcome(ours);
    expect(actual.statuses).toEqual(expected.statuses);
    expect(actual.second).toStrictEqual(expected.second);
    expect(actual.order).toStrictEqual(expected.order);
    expect(actual.firstVersionIntact).toBe(true);
  });

  it('leaves Object.prototype alone', () => {
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Doc).polluted).toBeUndefined();
  });

  it('throws for a partition key header it can not read, as the library does', () => {
    const input = { id: 'o1', partitionKey: 'not json', operations: [set('/x', 1)] };
    expect(() => libraryPatch(freshCollection(), input)).toThrow('Failed to parse x-ms-documentdb-partitionkey headers: not json');
    expect(() => ours(freshCollection(), input)).toThrow('Failed to parse x-ms-documentdb-partitionkey headers: not json');
  });
});

describe('Cosmos DB stand-in: no copy of the whole document for a plain patch', () => {
  const SIX = [
    set('/status', 'Completed'),
    add('/timeline/-', { at: '2024-01-01T00:00:02.000Z', state: 'completed' }),
    incr('/count', 1),
    replace('/nested/deep', { x: 2 }),
    remove('/nothing'),
    set('/completedAt', '2024-01-01T00:00:02.000Z'),
  ];

  /** How many times the whole document (the object with the order's id) goes through JSON.stringify. */
  function documentCopies(patch: PatchFn, input: Record<string, unknown>): number {
    const collection = freshCollection();
    // A document written through the stand-in's API carries its size; one made here is given it.
    recordStoredBytes(stored(collection, 'o1'), Buffer.byteLength(JSON.stringify(ORDER)));
    const spy = jest.spyOn(JSON, 'stringify');
    try {
      const result = patch(collection, { id: 'o1', partitionKey: '["p1"]', ...input });
      expect(result.statusCode).toBe(200);
      return spy.mock.calls.filter(([value]) => (value as Doc | undefined)?.id === 'o1').length;
    } finally {
      spy.mockRestore();
    }
  }

  it('copies none of it for six operations, where the library copies it six times', () => {
    expect(documentCopies(libraryPatch, { operations: SIX })).toBe(6);
    expect(documentCopies(ours, { operations: SIX })).toBe(0);
  });

  it('copies it once when an operation leaves a value JSON would change and more follow', () => {
    expect(documentCopies(ours, { operations: [incr('/total', Number.MAX_VALUE), incr('/total', Number.MAX_VALUE), set('/w', 1), set('/v', 2)] })).toBe(1);
  });

  it('is what the installed patch entry point does, with and without a condition', () => {
    installConditionalPatch();
    const installed = libraryModule.patchOperation;
    expect(installed).not.toBe(libraryPatch);
    expect(documentCopies(installed, { operations: SIX })).toBe(0);
    expect(documentCopies(installed, { operations: SIX, condition: "from c where c.status = 'Pending'" })).toBe(0);
  });
});
