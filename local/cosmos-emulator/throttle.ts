/**
 * Throttling, as Cosmos DB answers it when a container's RU/s are used up: 429 TooManyRequests
 * with substatus 3200 and `x-ms-retry-after-ms`, nothing changed. The stand-in never throttles on
 * its own (every request costs it "1 RU"); this fault makes it answer a share of the requests on
 * documents (reads, writes, patches, queries) that way, so the SDK's throttle retries and what the
 * app does with a 429 that outlasts them can be seen locally.
 *
 * Off by default. Switched at run time over the stand-in's own port (the chaos run does):
 *   GET /_emulator/throttle                       -> {share, retryAfterMs, throttled, passed}
 *   PUT /_emulator/throttle {"share": 0.4, "retryAfterMs": 100}   (share 0 turns it off)
 *   PUT /_emulator/throttle {"share": 1, "containers": ["payments"]}  (only those containers; null: all)
 * Requests for the account, databases, containers and partition key ranges are never throttled:
 * the client's start-up and the bootstrap do not depend on the fault.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { libraryRequire, readRawBody } from './library';

export interface ThrottleSettings {
  /** Share of document requests answered 429, 0 (off) to 1 (every one). */
  share: number;
  /** What `x-ms-retry-after-ms` says; the SDK waits that long before its next try. */
  retryAfterMs: number;
  /** Only requests on documents of these containers are throttled; null: of every container. */
  containers: string[] | null;
}

export interface ThrottleState extends ThrottleSettings {
  /** Requests answered 429 since the stand-in started. */
  throttled: number;
  /** Document requests let through since the stand-in started. */
  passed: number;
}

/** The path of the control route, on the stand-in's own port. */
export const THROTTLE_CONTROL_PATH = '/_emulator/throttle';

/** Cosmos DB's substatus for a request throttled because the partition's RU/s were used up. */
export const RU_BUDGET_EXCEEDED = '3200';

const DEFAULT_RETRY_AFTER_MS = 100;
const MAX_RETRY_AFTER_MS = 60_000;

type Handler = (account: unknown, req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => Promise<unknown> | unknown;
type Route = [Record<string, string>, Handler] | null | undefined;

const routesModule = libraryRequire('./routes') as { default: (req: IncomingMessage) => Route };

const state: ThrottleState = { share: 0, retryAfterMs: DEFAULT_RETRY_AFTER_MS, containers: null, throttled: 0, passed: 0 };

/** The body Cosmos DB's gateway sends with a 429. */
export const TOO_MANY_REQUESTS_BODY = {
  code: 'TooManyRequests',
  message:
    'Message: {"Errors":["Request rate is large. More Request Units may be needed, so no changes were made. Please retry this request later. Learn more: http://aka.ms/cosmosdb-error-429"]}',
};

/** Validates and applies new settings (unnamed fields keep their value); throws on a bad one. */
export function setThrottle(settings: Partial<ThrottleSettings>): ThrottleState {
  const { share, retryAfterMs, containers } = settings;
  if (share !== undefined && !(typeof share === 'number' && share >= 0 && share <= 1)) throw new Error('share must be a number from 0 to 1');
  if (retryAfterMs !== undefined && !(Number.isInteger(retryAfterMs) && retryAfterMs >= 0 && retryAfterMs <= MAX_RETRY_AFTER_MS)) {
    throw new Error(`retryAfterMs must be a whole number from 0 to ${MAX_RETRY_AFTER_MS}`);
  }
  if (containers !== undefined && containers !== null && !(Array.isArray(containers) && containers.every((c) => typeof c === 'string' && c !== ''))) {
    throw new Error('containers must be null or a list of container names');
  }
  if (share !== undefined) state.share = share;
  if (containers !== undefined) state.containers = containers === null ? null : [...containers];
  if (retryAfterMs !== undefined) state.retryAfterMs = retryAfterMs;
  return throttleState();
}

export function throttleState(): ThrottleState {
  return { ...state, containers: state.containers && [...state.containers] };
}

/** The container a request on documents (or a query over them: what its RU/s pay for) is for; undefined for any other request. */
function documentContainer(url: string | undefined): string | undefined {
  const path = (url ?? '').split('?')[0]!;
  const match = /^\/dbs\/[^/]+\/colls\/([^/]+)\/docs(\/|$)/.exec(path);
  return match ? decodeURIComponent(match[1]!) : undefined;
}

const throttledAnswer: Handler = (_account, req, res) => {
  // The body is not read: drain it, so the kept-alive connection carries the next request.
  req.resume();
  res.statusCode = 429;
  res.setHeader('x-ms-retry-after-ms', String(state.retryAfterMs));
  res.setHeader('x-ms-substatus', RU_BUDGET_EXCEEDED);
  return { ...TOO_MANY_REQUESTS_BODY };
};

const control: Handler = async (_account, req, res) => {
  if (req.method === 'PUT' || req.method === 'POST') {
    try {
      const body = JSON.parse((await readRawBody(req)).toString() || '{}') as Partial<ThrottleSettings>;
      return setThrottle({ share: body.share, retryAfterMs: body.retryAfterMs, containers: body.containers });
    } catch (err) {
      res.statusCode = 400;
      return { code: 'BadRequest', message: err instanceof Error ? err.message : String(err) };
    }
  }
  if (req.method === 'GET') return throttleState();
  res.statusCode = 405;
  return { code: 'MethodNotAllowed', message: `${THROTTLE_CONTROL_PATH} takes GET and PUT` };
};

let installed = false;

/** Puts the fault (off) and its control route in front of the library's routes (once per process). */
export function installThrottle(random: () => number = Math.random): void {
  if (installed) return;
  installed = true;
  const route = routesModule.default;
  routesModule.default = (req) => {
    if ((req.url ?? '').split('?')[0] === THROTTLE_CONTROL_PATH) return [{}, control];
    const found = route(req);
    const container = found ? documentContainer(req.url) : undefined;
    if (found && container !== undefined) {
      const chosen = state.containers === null || state.containers.includes(container);
      if (chosen && state.share > 0 && random() < state.share) {
        state.throttled++;
        return [found[0], throttledAnswer];
      }
      state.passed++;
    }
    return found;
  };
}
