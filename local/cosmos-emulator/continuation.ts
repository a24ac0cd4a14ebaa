/**
 * Continuation tokens the stand-in did not issue are refused, as Cosmos DB refuses them (400
 * BadRequest). @vercel/cosmosdb-server 1.0.1 parses the `x-ms-continuation` header as JSON and
 * treats anything it cannot parse as no token at all: a garbled token brought back the first page
 * again, so a client walking pages could loop, and the app's answer to a bad token was never seen
 * locally.
 */
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { libraryRequire } from './library';

type ReadItems = (req: IncomingMessage, res: ServerResponse, itemsName: string, fn: (options: unknown) => Promise<unknown>) => Promise<unknown>;

const readItemsModule = libraryRequire('./handler/_read-items') as { default: ReadItems };
const queryRequire = createRequire(libraryRequire.resolve('@zeit/cosmosdb-query'));
const tokenModule = queryRequire('./continuation-token') as { decode(token: string): Record<string, unknown> };

const INVALID_TOKEN = { code: 'BadRequest', message: 'Invalid Continuation Token' };

/** True for a token of the shape the stand-in's queries hand out: `{"token": "+RID:...#RT:n#TRC:n..."}`. */
export function isIssuedContinuation(header: string): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(header);
  } catch {
    return false;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return false;
  const token = (parsed as { token?: unknown }).token;
  if (typeof token !== 'string' || !token.startsWith('+RID:')) return false;
  try {
    const fields = tokenModule.decode(token);
    return typeof fields['RID'] === 'string' && Number.isInteger(fields['RT']) && Number.isInteger(fields['TRC']);
  } catch {
    return false;
  }
}

let installed = false;

/** Wraps the library's paged reads and queries (once per process). */
export function installContinuationCheck(): void {
  if (installed) return;
  installed = true;
  const readItems = readItemsModule.default;
  readItemsModule.default = async (req, res, itemsName, fn) => {
    const header = req.headers['x-ms-continuation'];
    if (typeof header === 'string' && header !== '' && !isIssuedContinuation(header)) {
      res.statusCode = 400;
      return { ...INVALID_TOKEN };
    }
    return readItems(req, res, itemsName, fn);
  };
}
