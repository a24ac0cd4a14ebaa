/**
 * Patch (`set`, `add`, `replace`, `remove`, `incr`, `move`) applied without copying the whole
 * document.
 *
 * @vercel/cosmosdb-server 1.0.1 deep-copies the whole stored document (`JSON.parse(JSON.stringify())`)
 * once per operation, so an order of a few KB patched with 3-6 operations is copied 3-6 times per
 * request. Here the same rules, error messages and answers as the library's `patchOperation`, but an
 * operation copies only the objects and arrays on its path (each once per request, shallowly) and
 * changes those copies; the rest of the new version is shared with the stored one, which is never
 * changed. A stored document is what JSON carries (it came from a request body), so the library's
 * copy would change nothing in it.
 *
 * What the library's copy between operations also does, turning the document into exactly what JSON
 * can carry, is kept: a value an operation stores is itself copied through JSON when more
 * operations follow, and after an operation that may leave something JSON would change (a number
 * that is not finite or -0, `undefined`, a path through `__proto__`) the whole document is copied
 * through JSON before the next operation, at the point where the library copies it. A path through
 * anything but an object's own property or an array's element (an inherited name, a missing node,
 * `__proto__`) takes that whole copy too, so the library's walk answers it exactly; so does the next
 * patch of a document such a patch stored.
 */
import { libraryRequire } from './library';
import { ITEM_TOO_LARGE, patchedBytes, recordStoredBytes } from './item-size';

export interface StoredDocument {
  _etag: string;
  [key: string]: unknown;
}

export interface Collection {
  document(id: string, partitionKey: unknown): { read(): StoredDocument | undefined };
  documents: { replace(data: object, original: StoredDocument): unknown };
}

export interface PatchInput {
  id: string;
  partitionKey: string | undefined;
  ifMatch?: string;
  operations: unknown[];
}

export interface PatchResult {
  statusCode: number;
  body: unknown;
}

export const partitionModule = libraryRequire('./utils/get-partition-from-header') as {
  parsePartitionKey(header: string | undefined, id: string): unknown;
};

const MAX_OPERATIONS = 10;
const CANT_CREATE_RECURSIVELY =
  "Add Operation can only create a child object of an existing node (array or object) and can't create path recursively.";
const OUT_OF_BOUNDS = 'Index to operate on is out of array bounds.';

/**
 * The document being patched. `root` may hold something JSON would change while `stale` is set.
 * `own` holds the objects and arrays this patch copied (it may change them); null once the whole
 * document is this patch's own copy. `more` says whether operations follow the current one.
 */
interface Draft {
  root: unknown;
  stale: boolean;
  own: WeakSet<object> | null;
  more: boolean;
}

/**
 * The document as the library's operation sees it after its own `JSON.parse(JSON.stringify())`,
 * all of it this patch's own copy.
 */
function copied(draft: Draft): unknown {
  if (draft.stale || draft.own !== null) {
    draft.root = JSON.parse(JSON.stringify(draft.root));
    draft.stale = false;
    draft.own = null;
  }
  return draft.root;
}

const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;

/** An object as JSON.parse makes it: its prototype is an `Object.prototype` (of any realm). */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as object | null;
  return prototype !== null && Object.getPrototypeOf(prototype) === null;
}

/**
 * The node at `pathSegments`, with it and every node above it this patch's own (copied on the way
 * where they were not yet), when each segment names an own property of a plain object or an
 * element of an array and leads to an object or an array; undefined otherwise, with nothing
 * changed that the document shows (only nodes on the path were swapped for copies).
 */
function ownNodeAt(draft: Draft, pathSegments: string[]): unknown {
  if (draft.stale) return undefined;
  let current = draft.root;
  for (const segment of pathSegments) {
    if (segment === '__proto__') return undefined;
    let child: unknown;
    let key: string | number;
    if (Array.isArray(current)) {
      if (!ARRAY_INDEX.test(segment)) return undefined;
      key = Number(segment);
      if (key >= current.length) return undefined;
      child = current[key];
    } else if (isPlainObject(current) && Object.hasOwn(current, segment)) {
      key = segment;
      child = current[segment];
    } else {
      return undefined;
    }
    if (!Array.isArray(child) && !isPlainObject(child)) return undefined;
    if (draft.own !== null && !draft.own.has(child)) {
      const copy: unknown[] | Record<string, unknown> = Array.isArray(child) ? child.slice() : { ...child };
      draft.own.add(copy);
      (current as Record<string | number, unknown>)[key] = copy;
      child = copy;
    }
    current = child;
  }
  return current;
}

/**
 * The parent an operation changes, as the library's walk on its copy finds it: without copying the
 * document where the path is plain (above), else on a whole copy.
 */
function parentOf(draft: Draft, parentSegments: string[], createPath = false): unknown {
  return ownNodeAt(draft, parentSegments) ?? getValueAtPath(copied(draft), parentSegments, createPath);
}

/** A value JSON carries unchanged. */
function isJsonPrimitive(value: unknown): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  return typeof value === 'number' && Number.isFinite(value) && !Object.is(value, -0);
}

/**
 * The value to store. The library's copy before the next operation would turn it into its JSON
 * form (and detach it from the request), so that is stored when more operations follow; the last
 * operation's value is stored as given, as the library does.
 */
function stored(draft: Draft, value: unknown): unknown {
  if (isJsonPrimitive(value)) return value;
  if (!draft.more) {
    // Stored as it is; if JSON would change it, the document's next patch starts from its JSON copy.
    if (!isJsonValue(value)) draft.stale = true;
    return value;
  }
  if (typeof value === 'object' && value !== null) {
    try {
      const text = JSON.stringify(value);
      if (text !== undefined) return JSON.parse(text);
    } catch {
      // Left as it is: the copy before the next operation fails the way the library's does.
    }
  }
  draft.stale = true;
  return value;
}

/** A value JSON carries unchanged, all the way down (what a request body's values always are). */
function isJsonValue(value: unknown): boolean {
  if (isJsonPrimitive(value)) return true;
  if (Array.isArray(value)) {
    // Element by element: a hole (which `every` skips) is undefined here, and JSON makes it null.
    for (let i = 0; i < value.length; i++) if (!isJsonValue(value[i])) return false;
    return true;
  }
  if (!isPlainObject(value)) return false;
  for (const key in value) {
    if (!Object.hasOwn(value, key) || !isJsonValue(value[key])) return false;
  }
  return true;
}

/** An object or an array (arrays are always told apart first, as in the library). */
function isNode(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

// The library's getValueAtPath walk, including its use of `in` (inherited names count), except that
// a missing parent is refused at any depth.
function getValueAtPath(obj: unknown, pathSegments: string[], createPath = false): unknown {
  let current = obj;
  for (let i = 0; i < pathSegments.length; i += 1) {
    const segment = pathSegments[i]!;
    if (Array.isArray(current)) {
      const index = parseInt(segment, 10);
      if (Number.isNaN(index) || index < 0 || index >= current.length) {
        if (createPath) throw new Error(CANT_CREATE_RECURSIVELY);
        return undefined;
      }
      current = current[index];
    } else if (isNode(current)) {
      // The library returns the grandparent when only the last parent is missing, so `set
      // /holds/x` on a document without `holds` wrote `x` at the top level. Cosmos DB refuses it.
      if (createPath && !(segment in current)) throw new Error(CANT_CREATE_RECURSIVELY);
      current = current[segment];
    } else {
      if (createPath) throw new Error(CANT_CREATE_RECURSIVELY);
      return undefined;
    }
    if (current === undefined && !createPath) return undefined;
  }
  return current;
}

/** Removes the last segment's node from its parent (found by the caller). */
function removeFrom(parent: unknown, pathSegments: string[]): void {
  const key = pathSegments[pathSegments.length - 1]!;
  if (Array.isArray(parent)) {
    const index = parseInt(key, 10);
    if (Number.isNaN(index) || index < 0 || index >= parent.length) throw new Error(OUT_OF_BOUNDS);
    parent.splice(index, 1);
  } else if (isNode(parent)) {
    if (!(key in parent)) throw new Error('Node to be removed is absent.');
    delete parent[key];
  } else {
    throw new Error('Node to be removed is absent.');
  }
}

function removeAt(root: unknown, pathSegments: string[]): void {
  if (pathSegments.length === 0) throw new Error('Cannot remove root document.');
  removeFrom(getValueAtPath(root, pathSegments.slice(0, -1)), pathSegments);
}

function remove(draft: Draft, pathSegments: string[]): void {
  if (pathSegments.length === 0) throw new Error('Cannot remove root document.');
  removeFrom(parentOf(draft, pathSegments.slice(0, -1)), pathSegments);
}

function replace(draft: Draft, pathSegments: string[], value: unknown): void {
  if (pathSegments.length === 0) throw new Error('Cannot replace root document.');
  const parent = parentOf(draft, pathSegments.slice(0, -1));
  const key = pathSegments[pathSegments.length - 1]!;
  if (Array.isArray(parent)) {
    const index = parseInt(key, 10);
    if (Number.isNaN(index) || index < 0 || index >= parent.length) throw new Error(OUT_OF_BOUNDS);
    parent[index] = stored(draft, value);
  } else if (isNode(parent)) {
    if (!(key in parent)) throw new Error('Node to be replaced is absent.');
    parent[key] = stored(draft, value);
  } else {
    throw new Error('Node to be replaced is absent.');
  }
}

function set(draft: Draft, pathSegments: string[], value: unknown): void {
  if (pathSegments.length === 0) throw new Error('Cannot set root document.');
  const parent = parentOf(draft, pathSegments.slice(0, -1), true);
  const key = pathSegments[pathSegments.length - 1]!;
  if (Array.isArray(parent)) {
    const index = parseInt(key, 10);
    if (Number.isNaN(index) || index < 0) throw new Error('Invalid array index.');
    if (index >= parent.length) throw new Error(OUT_OF_BOUNDS);
    parent[index] = stored(draft, value);
  } else if (isNode(parent)) {
    parent[key] = stored(draft, value);
  } else {
    throw new Error('Set Operation can only create a child object of an existing node (array or object).');
  }
}

/** `add` of a value under its parent (found by the caller; the second half of `move` too). */
function addTo(parent: unknown, pathSegments: string[], value: unknown): void {
  const key = pathSegments[pathSegments.length - 1]!;
  if (Array.isArray(parent)) {
    if (key === '-') {
      parent.push(value);
    } else {
      const index = parseInt(key, 10);
      if (Number.isNaN(index) || index < 0) throw new Error('Invalid array index.');
      if (index > parent.length) throw new Error(OUT_OF_BOUNDS);
      parent.splice(index, 0, value);
    }
  } else if (isNode(parent)) {
    parent[key] = value;
  } else {
    throw new Error('Add Operation can only create a child object of an existing node (array or object).');
  }
}

function add(draft: Draft, pathSegments: string[], value: unknown): void {
  if (pathSegments.length === 0) throw new Error('Cannot add root document.');
  const parent = parentOf(draft, pathSegments.slice(0, -1), true);
  // The value is settled before it is placed; placing can still fail, and then nothing is stored.
  addTo(parent, pathSegments, stored(draft, value));
}

function incr(draft: Draft, pathSegments: string[], value: unknown): void {
  if (pathSegments.length === 0) throw new Error('Cannot increment root document.');
  if (typeof value !== 'number') throw new Error('Increment value must be a number.');
  const parent = parentOf(draft, pathSegments.slice(0, -1), true);
  const key = pathSegments[pathSegments.length - 1]!;
  let slot: Record<string, unknown> | unknown[];
  let at: string | number;
  if (Array.isArray(parent)) {
    const index = parseInt(key, 10);
    if (Number.isNaN(index) || index < 0 || index >= parent.length) throw new Error(OUT_OF_BOUNDS);
    [slot, at] = [parent, index];
  } else if (isNode(parent)) {
    [slot, at] = [parent, key];
  } else {
    throw new Error('Increment Operation can only operate on numeric properties of existing nodes (array or object).');
  }
  const currentValue = (slot as Record<string | number, unknown>)[at];
  let next: number;
  if (typeof currentValue === 'number') next = currentValue + value;
  else if (currentValue === undefined || currentValue === null) next = value;
  else throw new Error('Cannot increment non-numeric value.');
  (slot as Record<string | number, unknown>)[at] = next;
  if (!isJsonPrimitive(next)) draft.stale = true; // Infinity, NaN, -0: JSON changes them
}

function unescapePointer(path: string): string[] {
  // JSON Pointer (RFC 6901), as JSON Patch uses it
  return path
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function move(draft: Draft, pathSegments: string[], from: unknown): void {
  if (!from || typeof from !== 'string' || !from.startsWith('/')) {
    throw new Error("Move operation requires a valid 'from' path.");
  }
  if (from === `/${pathSegments.join('/')}`) throw new Error('Cannot move a value to itself.');
  if (from.startsWith('/_')) {
    throw new Error(`Can't move from system property ${from.split('/')[1]}.`);
  }
  if (`/${pathSegments.join('/')}`.startsWith(`${from}/`)) {
    throw new Error('Cannot move a value to a child of itself.');
  }
  const fromSegments = unescapePointer(from);
  const root = copied(draft);
  const sourceValue = getValueAtPath(root, fromSegments);
  if (sourceValue === undefined) throw new Error('Source location for move operation does not exist.');
  // The library takes the value from one copy and removes and adds it on later copies; here the
  // value leaves the document before it is added back, so it is never held twice.
  removeAt(root, fromSegments);
  if (pathSegments.length === 0) throw new Error('Cannot add root document.');
  addTo(getValueAtPath(root, pathSegments.slice(0, -1), true), pathSegments, sourceValue);
  // A value found through an inherited name (a function, or a prototype through `__proto__`) is
  // not JSON: the library's next copy turns it into what JSON makes of it.
  if (!isJsonPrimitive(sourceValue) && !isNode(sourceValue)) draft.stale = true;
  if (fromSegments.includes('__proto__')) draft.stale = true;
}

interface Operation {
  op?: unknown;
  path?: unknown;
  value?: unknown;
  from?: unknown;
}

function applySinglePatchOperation(draft: Draft, operation: Operation): void {
  const { op, path, value, from } = operation;
  if (!path || typeof path !== 'string' || !path.startsWith('/')) {
    throw new Error('Invalid path in patch operation.');
  }
  if (path.startsWith('/_')) {
    throw new Error(`Can't patch system property ${path.split('/')[1]}.`);
  }
  const pathSegments = unescapePointer(path);
  switch (op) {
    case 'remove':
      remove(draft, pathSegments);
      break;
    case 'replace':
      replace(draft, pathSegments, value);
      break;
    case 'set':
      set(draft, pathSegments, value);
      break;
    case 'add':
      add(draft, pathSegments, value);
      break;
    case 'incr':
      incr(draft, pathSegments, value);
      break;
    case 'move':
      move(draft, pathSegments, from);
      break;
    default:
      throw new Error(`Unsupported patch operation: ${op as string}`);
  }
  // Assigning through `__proto__` can change an object's prototype, which JSON drops.
  if (pathSegments.includes('__proto__')) draft.stale = true;
}

export interface PatchedDocument {
  document: unknown;
  /** It may hold something JSON would change (the library stores such a value as the last operation left it). */
  notJson: boolean;
}

/**
 * The document with every operation applied, as the library's applyPatchOperations computes it;
 * throws `For Operation(i): ...` for the first operation that fails. `document` itself, and every
 * object and array in it, is not changed. `asJson`: `document` is what JSON carries (a stored
 * document is, unless a patch left a value JSON would change); otherwise the first operation
 * works on a copy through JSON, as the library's does.
 */
export function applyPatchOperations(document: object, operations: unknown[], asJson = false): PatchedDocument {
  if (operations.length > MAX_OPERATIONS) {
    throw new Error("The number of patch operations can't exceed 10.");
  }
  const root = Array.isArray(document) ? document.slice() : { ...document };
  const draft: Draft = { root, stale: !asJson, own: new WeakSet([root]), more: false };
  for (let i = 0; i < operations.length; i += 1) {
    const operation = operations[i] as Operation;
    draft.more = i < operations.length - 1;
    try {
      applySinglePatchOperation(draft, operation);
    } catch (error) {
      throw new Error(`For Operation(${i}): ${(error as Error).message}`);
    }
  }
  return { document: draft.root, notJson: draft.stale };
}

/** Stored documents a patch left holding something JSON would change: their next patch copies them through JSON first. */
const notJsonDocuments = new WeakSet<object>();

/**
 * The library's `patchOperation` for a patch without a condition (conditions are judged in
 * conditional-patch.ts): same answers, and the result stored through `documents.replace`.
 */
export function patchDocument(collection: Collection, input: PatchInput): PatchResult {
  const partitionKey = partitionModule.parsePartitionKey(input.partitionKey, input.id);
  const data = collection.document(input.id, partitionKey).read();
  if (!data) return { statusCode: 404, body: {} };
  if (input.ifMatch && input.ifMatch !== data._etag) {
    return {
      statusCode: 412,
      body: {
        code: 'PreconditionFailed',
        message: 'Operation cannot be performed because one of the specified precondition is not met.',
      },
    };
  }
  let patched: PatchedDocument;
  try {
    patched = applyPatchOperations(data, input.operations, !notJsonDocuments.has(data));
  } catch (error) {
    return { statusCode: 400, body: { code: 'BadRequest', message: (error as Error).message } };
  }
  const bytes = patchedBytes(data, input.operations, patched.document);
  if (bytes === undefined) return ITEM_TOO_LARGE;
  try {
    const body = collection.documents.replace(patched.document as object, data);
    recordStoredBytes(body, bytes);
    if (patched.notJson && typeof body === 'object' && body !== null) notJsonDocuments.add(body);
    return { statusCode: 200, body };
  } catch (error) {
    const failure = error as Error & { badRequest?: boolean; conflict?: boolean };
    if (failure.badRequest) return { statusCode: 400, body: { code: 'BadRequest', message: failure.message } };
    if (failure.conflict) return { statusCode: 409, body: { code: 'Conflict', message: failure.message } };
    throw error;
  }
}
