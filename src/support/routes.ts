/**
 * HTTP handlers of the support API: POST /api/orders/{id}/requeue, POST /api/orders/{id}/compensate,
 * GET|POST /api/support/faults, GET /api/support/deadletters. Every call is authorized first
 * (support role); answers are JSON, errors problem+json.
 */
import { z } from 'zod';
import { orderIdFrom } from '../domain/orderId';
import { pageQueryFields, validate, validateQuery } from '../domain/validation';
import { ValidationError } from '../errors';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { createLogger, type Logger } from '../log';
import { bodyTooLarge, refuseChunkedBody, notFound, problem, problemFromError } from '../http/problem';
import { withinStoreWait } from '../deadline';
import { storeWaitMs, type OrderSagaDependencies } from '../services/dependencies';
import type { MonitorClient } from '../services/ports';
import { requestCompensation, requestRequeue, type SupportActionResult } from './actions';
import { changeFaults, faultChangeSchema, readFaults, type CompensationFaultStore } from './faults';
import { authorizeSupport, CLIENT_PRINCIPAL_HEADER, type Authorization, type SupportAccess, type SupportPrincipal } from './principal';

export interface SupportHttpEnvironment extends SupportAccess {
  deps: OrderSagaDependencies;
  monitor: MonitorClient;
  compensationFaults: CompensationFaultStore;
}

export type SupportEnvironmentFactory = (log: Logger) => SupportHttpEnvironment;

const MAX_BODY_BYTES = 4 * 1024;

/** Whether a request comes from a support principal, and if not, why. */
export function supportAuthorization(request: HttpRequest, access: SupportAccess): Authorization {
  return authorizeSupport(request.headers.get(CLIENT_PRINCIPAL_HEADER), access.developmentPrincipal, access.appServiceAuthEnabled);
}

/** The support principal of a request, or the 401/403 problem to answer it with. */
export function authorizeSupportRequest(request: HttpRequest, access: SupportAccess): SupportPrincipal | HttpResponseInit {
  const auth = supportAuthorization(request, access);
  if (auth.ok) return auth.principal;
  return auth.status === 401
    ? problem(401, 'unauthenticated', 'Sign-in required', auth.detail, auth.signIn ? { signIn: auth.signIn } : {}, { 'WWW-Authenticate': 'Bearer' })
    : problem(403, 'forbidden', 'Support role required', auth.detail);
}

export const isResponse = (v: SupportPrincipal | HttpResponseInit): v is HttpResponseInit => 'status' in v;

/**
 * Refuses a support action that a page of another site had the browser send. The sign-in rides on
 * a cookie, so without this a page a support person merely opens could requeue or compensate
 * orders in their name: a form posts across sites without asking, and so does `fetch` in
 * `no-cors` mode. Every current browser names where a request comes from in `Sec-Fetch-Site`; one
 * too old to do so still sends `Origin` with a POST to another origin. Clients that are not
 * browsers (automation, curl) send neither, and need no particular body or Content-Type.
 */
export function refuseForeignAction(request: HttpRequest): HttpResponseInit | undefined {
  const site = request.headers.get('sec-fetch-site')?.trim().toLowerCase();
  const foreign = site ? (site === 'same-origin' || site === 'none' ? undefined : `a ${site} page`) : foreignOrigin(request);
  if (!foreign) return undefined;
  return problem(403, 'cross-site-request', 'Request from another site', `support actions are taken from the portal's own page, not from ${foreign}`);
}

/** What `Origin` names when it is not the request's own origin; undefined when it is, or when absent. */
function foreignOrigin(request: HttpRequest): string | undefined {
  const origin = request.headers.get('origin')?.trim();
  if (!origin) return undefined;
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    // `null` (a sandboxed or opaque page) and anything unreadable are another site.
  }
  return host !== undefined && host === new URL(request.url).host ? undefined : `a page of ${origin.slice(0, 100)}`;
}

function actionResponse(result: SupportActionResult, orderId: string): HttpResponseInit {
  switch (result.kind) {
    case 'accepted':
      return { status: 202, jsonBody: result.body, headers: { Location: `/api/orders/${orderId}` } };
    case 'notFound':
      return notFound(`order ${orderId} does not exist`);
    case 'notApplicable':
      return problem(409, 'action-not-applicable', 'The action does not apply to this order now', result.detail, {
        orderId,
        state: result.state,
        // Not `status`: that member of a problem is the HTTP status code.
        services: result.status,
      });
  }
}

export async function handleSupportAction(
  action: 'requeue' | 'compensate',
  request: HttpRequest,
  context: InvocationContext,
  environment: SupportEnvironmentFactory,
): Promise<HttpResponseInit> {
  const log = createLogger(context).with({ invocationId: context.invocationId, action });
  try {
    const env = environment(log);
    const principal = authorizeSupportRequest(request, env);
    if (isResponse(principal)) return principal;
    const foreign = refuseForeignAction(request);
    if (foreign) return foreign;
    const asked = request.params.id ?? '';
    const orderId = orderIdFrom(asked);
    if (orderId === undefined) return notFound(`order ${asked.slice(0, 64)} does not exist`);
    const actionLog = log.with({ orderId, principal: principal.name });
    const result = await withinStoreWait(
      storeWaitMs(env.deps.settings),
      (signal) => {
        const actionEnv = { deps: env.deps, monitor: env.monitor, log: actionLog, signal };
        return action === 'requeue' ? requestRequeue(orderId, principal, actionEnv) : requestCompensation(orderId, principal, actionEnv);
      },
      { late: (outcome) => actionLog.warn('support-action-after-answer', outcome.ok ? { ok: true } : { ok: false, error: outcome.error.message }) },
    );
    return actionResponse(result, orderId);
  } catch (err) {
    return problemFromError(err, log);
  }
}

export async function handleFaults(request: HttpRequest, context: InvocationContext, environment: SupportEnvironmentFactory): Promise<HttpResponseInit> {
  const log = createLogger(context).with({ invocationId: context.invocationId });
  try {
    const env = environment(log);
    const principal = authorizeSupportRequest(request, env);
    if (isResponse(principal)) return principal;
    if (!env.deps.settings.faultInjectionEnabled) {
      return notFound('fault injection is not enabled in this environment');
    }
    if (request.method === 'GET' || request.method === 'HEAD') {
      return { status: 200, jsonBody: await readFaults(env.deps, env.compensationFaults) };
    }
    const foreign = refuseForeignAction(request);
    if (foreign) return foreign;
    const chunked = refuseChunkedBody(request);
    if (chunked) return chunked;
    const text = await request.text();
    if (Buffer.byteLength(text) > MAX_BODY_BYTES) return bodyTooLarge(MAX_BODY_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return problem(400, 'invalid-request', 'The request is not valid', 'the body is not JSON', {
        errors: [{ path: '(body)', message: 'must be a JSON object such as {"billingFails": true}' }],
      });
    }
    const parsed = validate(faultChangeSchema, body);
    if (!parsed.ok) {
      return problem(400, 'invalid-request', 'The request is not valid', 'the fault switches are not valid', { errors: parsed.problems });
    }
    const faults = await changeFaults(parsed.value, env.deps, env.compensationFaults);
    log.warn('fault-switches-changed', { by: principal.name, ...faults });
    return { status: 200, jsonBody: faults };
  } catch (err) {
    return problemFromError(err, log);
  }
}

const deadLetterQuerySchema = z.strictObject(pageQueryFields);

/**
 * The dead-lettered messages that named no order (malformed, or for an order that does not exist),
 * kept in the dead-letter archive: what the `dead-letters-parked` alert points at. The most
 * recently kept first, paged like the orders list.
 */
export async function handleParkedDeadLetters(
  request: HttpRequest,
  context: InvocationContext,
  environment: SupportEnvironmentFactory,
): Promise<HttpResponseInit> {
  const log = createLogger(context).with({ invocationId: context.invocationId });
  try {
    const env = environment(log);
    const principal = authorizeSupportRequest(request, env);
    if (isResponse(principal)) return principal;
    const parsed = validateQuery(deadLetterQuerySchema, request.url);
    if (!parsed.ok) throw new ValidationError('invalid query parameters', parsed.problems);
    const { pageSize, continuationToken } = parsed.value;
    const page = await env.deps.deadLetters.list({ pageSize, ...(continuationToken ? { continuationToken } : {}) });
    return { status: 200, jsonBody: page };
  } catch (err) {
    return problemFromError(err, log);
  }
}
