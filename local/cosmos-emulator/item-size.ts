/**
 * Cosmos DB's limit on the size of an item: 2 MB of JSON. The library stores documents of any size,
 * so code that let a document grow without end (a timeline appended to forever, say) would work
 * here and fail on Azure. Here, as there, a create, replace or upsert of a larger document, and a
 * patch that would take a document over the limit, is answered 413 and stores nothing.
 *
 * Measuring every write would cost a serialization of the whole document per request. Instead each
 * stored document carries an upper bound of its size: the bytes of the request that wrote it, plus
 * those of every patch since (a patch adds at most what its request carries). Only a bound over the
 * limit is checked against the document's exact size, which then becomes the bound again.
 */
import { libraryRequire, readRawBody } from './library';
import type { PatchResult } from './patch-operations';

/** The largest item Cosmos DB stores: 2 MB, system properties included. */
export const MAX_ITEM_BYTES = 2 * 1024 * 1024;

/** What Cosmos DB answers for a document over the limit. */
export const ITEM_TOO_LARGE: PatchResult = {
  statusCode: 413,
  body: { code: 'RequestEntityTooLarge', message: 'Request size is too large' },
};

/** `_rid`, `_self`, `_etag`, `_attachments` and `_ts` as the stand-in writes them, rounded up. */
const SYSTEM_PROPERTY_BYTES = 200;

const jsonModule = libraryRequire('./json') as { default: (request: unknown) => Promise<unknown> };

type DocumentOperation = (collection: unknown, input: { resourceBody?: unknown }) => PatchResult;
const documentOperations = libraryRequire('./handler/_document-operations') as Record<
  'createOperation' | 'replaceOperation' | 'upsertOperation',
  DocumentOperation
>;

/** The bytes of the request body each parsed body (and a patch's operations) came from. */
const requestBytes = new WeakMap<object, number>();
/** An upper bound of each stored document's size as JSON. */
const storedBytes = new WeakMap<object, number>();

function exactBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '');
}

/**
 * The size of a body as it came over the wire, or as JSON when it did not (an operation of a batch).
 * What the SDK sends is JSON.stringify's own output, which the stand-in's writes back at the same
 * length. A client writing numbers in exponent form sends fewer bytes than are stored (`1e20` is
 * stored as 21 digits), so its document can pass the limit by that much unnoticed.
 */
export function bytesOfRequest(value: unknown): number {
  return (typeof value === 'object' && value !== null && requestBytes.get(value)) || exactBytes(value);
}

/** The stored document's size bound, measured (and kept) the first time it is asked for. */
function boundOf(document: object): number {
  let bytes = storedBytes.get(document);
  if (bytes === undefined) {
    bytes = exactBytes(document);
    storedBytes.set(document, bytes);
  }
  return bytes;
}

/** The size bound of `patched`, to be stored over `previous` by a patch; undefined when it is over the limit. */
export function patchedBytes(previous: object, operations: unknown, patched: unknown): number | undefined {
  const bound = boundOf(previous) + bytesOfRequest(operations);
  if (bound <= MAX_ITEM_BYTES) return bound;
  // The patched document still holds the system properties of the one it replaces.
  const bytes = exactBytes(patched);
  return bytes <= MAX_ITEM_BYTES ? bytes : undefined;
}

/** Records the size bound of a document just stored. */
export function recordStoredBytes(stored: unknown, bytes: number): void {
  if (typeof stored === 'object' && stored !== null) storedBytes.set(stored, bytes);
}

function limited(write: DocumentOperation): DocumentOperation {
  return (collection, input) => {
    const bytes = bytesOfRequest(input?.resourceBody) + SYSTEM_PROPERTY_BYTES;
    if (bytes > MAX_ITEM_BYTES) return ITEM_TOO_LARGE;
    const result = write(collection, input);
    if (result.statusCode < 300) recordStoredBytes(result.body, bytes);
    return result;
  };
}

let installed = false;

/** Puts the limit on the library's writes (once per process); patches check it in patch-operations.ts. */
export function installItemSizeLimit(): void {
  if (installed) return;
  installed = true;
  jsonModule.default = async (request) => {
    const bytes = await readRawBody(request);
    const body = JSON.parse(bytes.toString()) as unknown;
    if (typeof body === 'object' && body !== null) {
      requestBytes.set(body, bytes.length);
      const operations = (body as { operations?: unknown }).operations;
      if (Array.isArray(operations)) requestBytes.set(operations, bytes.length);
    }
    return body;
  };
  for (const name of ['createOperation', 'replaceOperation', 'upsertOperation'] as const) {
    documentOperations[name] = limited(documentOperations[name]);
  }
}
