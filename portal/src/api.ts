/**
 * The order API as the portal sees it. Every field the portal reads may be missing (a list item
 * has no timeline, an older document has no monitor), so the view types are deliberately loose.
 * URLs are relative to the page (/api/portal/), so the portal follows whatever route prefix the
 * app uses.
 */
import type { NotificationKind, OrderState, ServiceStatus, TimelineEntry } from '../../src/domain/order';
import type { SupportRequestOutcome } from '../../src/domain/orderState';
import type { StoredDeadLetter } from '../../src/services/ports';
import type { ServiceName } from '../../src/topology';
import type { ActionAnswer } from './actionRules';
import { readableFieldPath } from './format';

export type { OrderState, ServiceName, ServiceStatus, SupportRequestOutcome, TimelineEntry };

export const SERVICE_NAMES: readonly ServiceName[] = ['inventory', 'billing', 'notification'];
export const ORDER_STATES: readonly OrderState[] = [
  'accepted',
  'processing',
  'completed',
  'compensating',
  'cancelled',
  'attention',
];

export interface OrderView {
  id: string;
  customerId?: string;
  items?: { sku: string; quantity: number; unitPrice?: number }[];
  total?: number;
  currency?: string;
  state?: OrderState | string;
  status?: Partial<Record<ServiceName, ServiceStatus | string>>;
  statusReason?: Partial<Record<ServiceName, string>> | null;
  payment?: { charged?: number; refunded?: number } | null;
  notifications?: { kind: NotificationKind | string; at?: string }[];
  timeline?: Partial<TimelineEntry>[];
  /** Every request a person made of the order, with what became of it (`SupportRequestOutcome`). */
  requests?: Partial<SupportRequestOutcome>[] | null;
  monitor?: { runtimeStatus?: string; customStatus?: unknown } | null;
  /**
   * While compensating: the latest run and its status (the step it is on, a wait for Cosmos DB); or
   * the run a person asked for, with `requestedAt`, until the monitor begins it.
   */
  compensation?: { run?: number; status?: { runtimeStatus?: string; customStatus?: unknown } | null; requestedAt?: string } | null;
  correlationId?: string;
  createdAt?: string;
  updatedAt?: string;
}

export interface OrderPage {
  items: OrderView[];
  continuationToken?: string | null;
}

export interface InventoryItem {
  sku: string;
  price?: number;
  available?: number;
  reserved?: number;
  name?: string;
}

export interface OrderFilter {
  state?: string;
  billingStatus?: string;
  customerId?: string;
  /** Nothing written on the order since this instant (ISO 8601). */
  updatedBefore?: string;
}

export interface NewOrder {
  customerId: string;
  items: { sku: string; quantity: number }[];
  simulate?: { billingFailures?: number };
}

export interface OrderAccepted {
  orderId: string;
  state: string;
  statusUrl?: string;
}

export type SupportAction = 'requeue' | 'compensate';

export type ActionResult = ActionAnswer;

export interface Faults {
  billingFails: boolean;
  refundFails: boolean;
}

/** An error answer from the API, carrying what its problem+json said (RFC 9457). */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    /** Field-level messages for a 400, flattened to readable lines. */
    readonly fieldErrors: string[] = [],
    /** The order a failed request still recorded (a 503 after the order was written). */
    readonly orderId?: string,
    /** Where the browser signs in, for a 401 the API can end by a sign-in. */
    readonly signIn?: string,
  ) {
    super(detail || title);
    this.name = 'ApiProblem';
  }
}

function describeFieldError(entry: unknown, key?: string): string {
  if (typeof entry === 'string') return key ? `${key}: ${entry}` : entry;
  if (entry && typeof entry === 'object') {
    const e = entry as Record<string, unknown>;
    const where = e.path ?? e.field ?? e.pointer ?? e.name ?? key;
    const what = e.message ?? e.detail ?? e.title ?? JSON.stringify(entry);
    const place = Array.isArray(where) ? where.join('/') : where;
    return place !== undefined && place !== '' ? `${readableFieldPath(String(place))}: ${String(what)}` : String(what);
  }
  return String(entry);
}

function flattenFieldErrors(errors: unknown): string[] {
  if (Array.isArray(errors)) return errors.map((e) => describeFieldError(e));
  if (errors && typeof errors === 'object') {
    return Object.entries(errors as Record<string, unknown>).flatMap(([key, value]) =>
      Array.isArray(value) ? value.map((v) => describeFieldError(v, key)) : [describeFieldError(value, key)],
    );
  }
  return [];
}

const SIGN_IN = /^\/\.auth\/login\/[a-z0-9]+$/;

/** The sign-in link for a problem that names one, coming back to this page once signed in. */
export function signInHref(problem: ApiProblem, page: Pick<Location, 'pathname' | 'search' | 'hash'>): string | undefined {
  return problem.signIn && `${problem.signIn}?post_login_redirect_uri=${encodeURIComponent(page.pathname + page.search + page.hash)}`;
}

async function problemFrom(response: Response): Promise<ApiProblem> {
  const text = await response.text().catch(() => '');
  let body: Record<string, unknown> | undefined;
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  } catch {
    body = undefined;
  }
  const title = typeof body?.title === 'string' ? body.title : response.statusText || `HTTP ${response.status}`;
  const detail =
    typeof body?.detail === 'string' && body.detail
      ? body.detail
      : text && !body
        ? text.slice(0, 300)
        : `${response.status} ${title}`;
  const orderId = typeof body?.orderId === 'string' && body.orderId ? body.orderId : undefined;
  // Only App Service Authentication's own sign-in path is followed, never a URL an answer names.
  const signIn = typeof body?.signIn === 'string' && SIGN_IN.test(body.signIn) ? body.signIn : undefined;
  return new ApiProblem(response.status, title, detail, flattenFieldErrors(body?.errors), orderId, signIn);
}

function apiUrl(relative: string): string {
  return new URL(`../${relative}`, document.baseURI).toString();
}

async function call<T>(relative: string, init: RequestInit = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(apiUrl(relative), {
      ...init,
      headers: { Accept: 'application/json, application/problem+json', ...(init.headers ?? {}) },
      cache: 'no-store',
    });
  } catch (error) {
    throw new ApiProblem(0, 'Network error', `Could not reach the order API (${(error as Error).message}).`);
  }
  if (!response.ok) throw await problemFrom(response);
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

function postJson<T>(relative: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
  return call<T>(relative, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

export function listOrders(filter: OrderFilter, continuationToken?: string, pageSize = 25): Promise<OrderPage> {
  const query = new URLSearchParams({ pageSize: String(pageSize) });
  if (filter.state) query.set('state', filter.state);
  if (filter.billingStatus) query.set('status.billing', filter.billingStatus);
  if (filter.customerId) query.set('customerId', filter.customerId);
  if (filter.updatedBefore) query.set('updatedBefore', filter.updatedBefore);
  if (continuationToken) query.set('continuationToken', continuationToken);
  return call<{ orders?: OrderView[]; continuationToken?: string }>(`orders?${query}`).then((page) => ({
    items: Array.isArray(page?.orders) ? page.orders : [],
    continuationToken: page?.continuationToken ?? null,
  }));
}

export const getOrder = (id: string): Promise<OrderView> => call<OrderView>(`orders/${encodeURIComponent(id)}`);

export const placeOrder = (order: NewOrder, idempotencyKey: string): Promise<OrderAccepted> =>
  postJson<OrderAccepted>('orders', order, { 'Idempotency-Key': idempotencyKey });

export const runSupportAction = (id: string, action: SupportAction): Promise<ActionResult> =>
  postJson<ActionResult>(`orders/${encodeURIComponent(id)}/${action}`, {});

export const listInventory = (): Promise<InventoryItem[]> =>
  call<InventoryItem[]>('inventory').then((items) => (Array.isArray(items) ? items : []));

export const getFaults = (): Promise<Faults> => call<Faults>('support/faults');

/** A kept dead letter (GET /api/support/deadletters), read as loosely as an order. */
export type ParkedMessage = Partial<StoredDeadLetter>;

export const listParkedMessages = (pageSize: number, continuationToken?: string): Promise<{ deadLetters: ParkedMessage[]; continuationToken?: string }> =>
  call<{ deadLetters?: ParkedMessage[]; continuationToken?: string }>(
    `support/deadletters?pageSize=${pageSize}${continuationToken ? `&continuationToken=${encodeURIComponent(continuationToken)}` : ''}`,
  ).then((page) => ({
    deadLetters: Array.isArray(page?.deadLetters) ? page.deadLetters : [],
    ...(page?.continuationToken ? { continuationToken: page.continuationToken } : {}),
  }));

export const setFaults = (faults: Partial<Faults>): Promise<Faults> => postJson<Faults>('support/faults', faults);
