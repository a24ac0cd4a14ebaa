/**
 * The library's patch entry point, replaced: every patch applies its operations to one copy of the
 * document (patch-operations.ts; the library copies the whole document once per operation), and a
 * conditional patch (`{condition: "from c where ...", operations}`) is evaluated the way Cosmos DB
 * does: against the ONE document being patched, with the condition exactly as written.
 *
 * @vercel/cosmosdb-server 1.0.1 runs the condition as a query over the whole container (cost grows
 * with every stored document) and lower-cases it first (`c.state = 'Pending'` never matches).
 * Here the condition is checked on the document, then the operations are applied without the
 * condition but guarded by the document's etag, so no other write can land between the check and
 * the patch (a changed etag means check again). A patch of more than 10 operations is refused, as
 * Cosmos DB refuses it.
 */
import { libraryRequire } from './library';
import {
  patchDocument,
  partitionModule,
  type Collection,
  type PatchInput,
  type PatchResult,
  type StoredDocument,
} from './patch-operations';
import { compileQuery } from './query-engine';

type PatchOperation = (collection: Collection, input: PatchInput & { condition?: string }) => PatchResult;

const patchModule = libraryRequire('./handler/_patch-operations') as { patchOperation: PatchOperation };

const MAX_ATTEMPTS = 10;

/** The answers Cosmos DB gives (and the library already uses) for a false and an invalid condition. */
const CONDITION_FAILED: PatchResult = {
  statusCode: 412,
  body: { code: 'PreconditionFailed', message: 'Condition specified in the patch request is not satisfied.' },
};
const CONDITION_INVALID: PatchResult = {
  statusCode: 400,
  body: { code: 'BadRequest', message: 'Invalid condition in patch request.' },
};

/** Cosmos DB takes at most 10 operations in one patch; the library takes any number. */
export const MAX_PATCH_OPERATIONS = 10;
const TOO_MANY_OPERATIONS: PatchResult = {
  statusCode: 400,
  body: { code: 'BadRequest', message: `A patch request can have at most ${MAX_PATCH_OPERATIONS} operations.` },
};

/** `from c where ...` (what the SDKs send), `where ...`, or a whole `select ...`, case kept. */
export function conditionQuery(condition: string): string {
  const text = condition.trim();
  if (/^select\b/i.test(text)) return text;
  // Only whether a row comes back matters: selecting a constant spares copying the document.
  if (/^from\b/i.test(text)) return `SELECT VALUE true ${text}`;
  if (/^where\b/i.test(text)) return `SELECT VALUE true FROM c ${text}`;
  throw new Error(`a patch condition starts with FROM: ${condition}`);
}

interface Parameterized {
  query: string;
  parameters: { name: string; value: string }[];
}

/**
 * The query with its plain string literals turned into parameters (`c.holds["<order id>"]` ->
 * `c.holds[@s0]`), so conditions that differ only in ids share one parsed and compiled query.
 * Literals with escapes, and text that may hold comments, are left as they are.
 */
export function parameterize(query: string): Parameterized {
  const parameters: Parameterized['parameters'] = [];
  if (query.includes('--') || query.includes('@')) return { query, parameters };
  let out = '';
  let i = 0;
  while (i < query.length) {
    const quote = query[i];
    if (quote !== "'" && quote !== '"') {
      out += quote;
      i++;
      continue;
    }
    const end = query.indexOf(quote, i + 1);
    const literal = end < 0 ? undefined : query.slice(i + 1, end);
    if (literal === undefined || literal.includes('\\')) return { query, parameters: [] };
    const name = `@s${parameters.length}`;
    parameters.push({ name, value: literal });
    out += name;
    i = end + 1;
  }
  return { query: out, parameters };
}

/** True when the condition holds for this document; throws when it is not a valid filter. */
export function conditionHolds(condition: string, document: StoredDocument): boolean {
  const query = conditionQuery(condition);
  const shared = parameterize(query);
  if (shared.parameters.length > 0) {
    try {
      const { result } = compileQuery(shared.query).exec([document], { parameters: shared.parameters });
      return result.length > 0;
    } catch {
      // Not valid with parameters in place of literals: judge the text as written.
    }
  }
  const { result } = compileQuery(query).exec([document], {});
  return result.length > 0;
}

let installed = false;

/** Replaces the library's patch entry point (once per process). */
export function installConditionalPatch(): void {
  if (installed) return;
  installed = true;
  patchModule.patchOperation = function conditionalPatch(collection, input) {
    if (Array.isArray(input.operations) && input.operations.length > MAX_PATCH_OPERATIONS) return TOO_MANY_OPERATIONS;
    const { condition, ...unconditional } = input;
    if (!condition) return patchDocument(collection, unconditional);
    let partitionKey: unknown;
    try {
      partitionKey = partitionModule.parsePartitionKey(input.partitionKey, input.id);
    } catch {
      return patchDocument(collection, unconditional); // answers a bad header as the library does
    }
    for (let attempt = 1; ; attempt++) {
      const document = collection.document(input.id, partitionKey).read();
      if (!document) return { statusCode: 404, body: {} };
      if (input.ifMatch && input.ifMatch !== document._etag) return patchDocument(collection, unconditional); // its 412
      let holds: boolean;
      try {
        holds = conditionHolds(condition, document);
      } catch {
        return CONDITION_INVALID;
      }
      if (!holds) return CONDITION_FAILED;
      const result = patchDocument(collection, { ...unconditional, ifMatch: document._etag });
      // 412 here means the document changed since it was checked: check the new version.
      if (result.statusCode !== 412 || input.ifMatch || attempt >= MAX_ATTEMPTS) return result;
    }
  };
}
