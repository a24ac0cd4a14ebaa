/**
 * Order intake: price from the catalog, honour the Idempotency-Key, write the order, publish
 * OrderCreated, start the order's monitor. Outbox rule: the order is written before publishing
 * and marked `published` only after; when publishing or starting the monitor fails (or overruns
 * `intakeWaitMs`) the caller gets an OrderRecordedError naming the order, and a retry with the
 * same key finds the order and completes both. The Cosmos DB steps before that have
 * `storeWaitMs` in all: past it the caller gets a TransientError (503) and no later step runs.
 */
import { randomUUID } from 'node:crypto';
import { monitorSnapshotOf, TIMELINE } from '../domain/monitorPolicy';
import type { OrderDocument } from '../domain/order';
import { orderRequestFingerprint, type OrderRequest } from '../domain/orderRequest';
import { newOrder } from '../domain/orderState';
import { mergeLines, priceLines } from '../domain/pricing';
import { DEFAULT_INTAKE_WAIT_MS } from '../config';
import { stillWaited, storeWaitFrom, withinDeadline, withinStoreWait, type StoreWait } from '../deadline';
import { BusinessRuleError, ConflictError, ensureError, type FieldProblem, OrderRecordedError, TransientError } from '../errors';
import type { Logger } from '../log';
import { ensureCatalogSeeded } from './catalogSeed';
import { storeWaitMs, type OrderSagaDependencies } from './dependencies';
import { writeOutcomeUnknown } from '../azure/cosmosErrors';
import type { CallOptions, MonitorClient } from './ports';
import { publishOrderCreated } from './publishing';

export interface AcceptOrderOptions {
  idempotencyKey?: string;
  /** A caller-supplied correlation id (e.g. `x-correlation-id`); a new one otherwise. */
  correlationId?: string;
  /** The request's wait for Cosmos DB, when steps before the intake's share it; `storeWaitMs` of the settings from now otherwise. */
  storeWait?: StoreWait;
}

export interface AcceptedOrder {
  orderId: string;
  correlationId: string;
  /** True when this request repeated an earlier one (same Idempotency-Key and body). */
  replayed: boolean;
}

const PRICE_TTL_MS = 30_000;
/** How long a 503 for a publish that failed waits for its `publish-failed` timeline note. */
const PUBLISH_FAILED_NOTE_WAIT_MS = 1_000;
const priceCache = new WeakMap<OrderSagaDependencies, Map<string, { price: number; until: number }>>();

/** Unit prices for the given SKUs; unknown SKUs are reported against every item that names them. */
export async function catalogPrices(request: OrderRequest, deps: OrderSagaDependencies, log?: Logger, options: CallOptions = {}): Promise<Map<string, number>> {
  const prices = await knownPrices(request.items.map((i) => i.sku), deps, log, options);
  const problems = unknownSkuProblems(request.items.map((item, index) => ({ sku: item.sku, index })), prices);
  if (problems.length > 0) throw new BusinessRuleError(`unknown sku: ${[...new Set(problems.map((p) => p.message.slice(12)))].join(', ')}`, problems);
  return prices;
}

/**
 * The items of a body refused for other reasons whose SKU, well formed, is not in the catalog: a
 * 400 names every bad field at once, not the SKUs only once the rest is put right.
 */
export async function unknownSkus(items: { sku: string; index: number }[], deps: OrderSagaDependencies, log?: Logger, options: CallOptions = {}): Promise<FieldProblem[]> {
  return unknownSkuProblems(items, await knownPrices(items.map((i) => i.sku), deps, log, options));
}

function unknownSkuProblems(items: { sku: string; index: number }[], prices: Map<string, number>): FieldProblem[] {
  return items.flatMap(({ sku, index }) => (prices.has(sku) ? [] : [{ path: `items/${index}/sku`, message: `unknown sku ${sku}` }]));
}

/** The catalog's price of each of these SKUs it has, kept for `PRICE_TTL_MS`. */
async function knownPrices(skuList: string[], deps: OrderSagaDependencies, log?: Logger, options: CallOptions = {}): Promise<Map<string, number>> {
  await ensureCatalogSeeded(deps, log);
  let cache = priceCache.get(deps);
  if (!cache) priceCache.set(deps, (cache = new Map()));
  const prices = new Map<string, number>();
  const skus = [...new Set(skuList)];
  const now = Date.now();
  await Promise.all(
    skus.map(async (sku) => {
      const cached = cache.get(sku);
      if (cached && cached.until > now) {
        prices.set(sku, cached.price);
        return;
      }
      const item = await deps.inventory.get(sku, options);
      if (item) {
        prices.set(sku, item.price);
        cache.set(sku, { price: item.price, until: now + PRICE_TTL_MS });
      }
    }),
  );
  return prices;
}

export async function acceptOrder(
  request: OrderRequest,
  options: AcceptOrderOptions,
  monitor: MonitorClient,
  deps: OrderSagaDependencies,
  log: Logger,
): Promise<AcceptedOrder> {
  // Past the wait nothing more is written. Before the order's write was sent, the client is told
  // it was not placed. Once sent, it may land, as a timed-out write may: the answer names the
  // order, as after the write, so a client without an Idempotency-Key follows it rather than
  // placing a second one.
  const wait = options.storeWait ?? storeWaitFrom(storeWaitMs(deps.settings));
  const waitMs = wait.totalMs;
  const writing: { order?: { id: string; correlationId: string } } = {};
  const { order, created, replayed } = await withinStoreWait(wait, (signal) => recordOrder(request, options, deps, log, signal, writing), {
    late: (outcome) =>
      outcome.ok ? log.warn('intake-store-finished-late', { afterMs: waitMs }) : log.info('intake-store-stopped', { afterMs: waitMs, error: outcome.error.message }),
    timedOut: () => {
      const sent = writing.order;
      return sent ? mayHaveBeenRecorded(sent, `Cosmos DB did not confirm its write within ${waitMs} ms`, options) : undefined;
    },
  });
  const orderLog = log.with({ orderId: order.id, correlationId: order.correlationId });
  if (created) orderLog.info('order-accepted', { total: order.total, items: order.items.length });

  await completeIntake(order, !created, monitor, deps, orderLog);
  return { orderId: order.id, correlationId: order.correlationId, replayed: replayed || !created };
}

/** The 503 for an order whose write was sent and not confirmed: it names the order, which may exist. */
function mayHaveBeenRecorded(sent: { id: string; correlationId: string }, why: string, options: AcceptOrderOptions, cause?: unknown): OrderRecordedError {
  const then =
    options.idempotencyKey !== undefined
      ? 'retry with the same Idempotency-Key'
      : 'follow it at its statusUrl rather than placing it again (a write under way may land after this answer: only a 404 there that lasts means it was not placed)';
  return new OrderRecordedError(`order ${sent.id} may have been recorded: ${why}; ${then}`, sent.id, sent.correlationId, cause === undefined ? undefined : { cause });
}

/** Prices the order, claims its Idempotency-Key and writes it (or finds the order the key names). */
async function recordOrder(
  request: OrderRequest,
  options: AcceptOrderOptions,
  deps: OrderSagaDependencies,
  log: Logger,
  signal: AbortSignal,
  writing: { order?: { id: string; correlationId: string } },
): Promise<{ order: OrderDocument; created: boolean; replayed: boolean }> {
  const prices = await catalogPrices(request, deps, log, { signal });
  stillWaited(signal);
  const { items, total } = priceLines(mergeLines(request.items), prices);

  let ids: { orderId: string; eventId: string; correlationId: string } = {
    orderId: randomUUID(),
    eventId: randomUUID(),
    correlationId: options.correlationId ?? randomUUID(),
  };
  let replayed = false;
  if (options.idempotencyKey !== undefined) {
    const fingerprint = orderRequestFingerprint(request);
    const { created, record } = await deps.idempotency.claim(
      {
        key: options.idempotencyKey,
        ...ids,
        fingerprint,
        strictBody: true,
        createdAt: deps.now(),
      },
      { signal },
    );
    stillWaited(signal);
    if (!created) {
      if (record.fingerprint !== fingerprint) {
        throw new ConflictError('this Idempotency-Key was already used with a different request body');
      }
      ids = { orderId: record.orderId, eventId: record.eventId, correlationId: record.correlationId };
      replayed = true;
    }
  }
  const placed = newOrder({
    id: ids.orderId,
    eventId: ids.eventId,
    correlationId: ids.correlationId,
    customerId: request.customerId,
    items,
    total,
    now: deps.now(),
    ...(request.simulate ? { simulate: request.simulate } : {}),
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
  });
  const sent = (writing.order = { id: ids.orderId, correlationId: ids.correlationId });
  const { created, order } = await deps.orders.create(placed, { signal }).catch((err: unknown) => {
    // Sent, with no answer saying it was not applied (a reset connection, a gateway's 504): it may
    // have landed, so the answer names it, as when the wait cut the write short.
    if (!writeOutcomeUnknown(err)) throw err;
    throw mayHaveBeenRecorded(sent, 'Cosmos DB did not confirm its write', options, err);
  });
  // Written, even if just past the wait: its monitor (started by the sweeper, if not here) sees it through.
  return { order, created, replayed };
}

/**
 * Publishes (if not yet published) and starts the monitor, side by side: neither needs the
 * other, and the client waits for the slower only, and for at most `intakeWaitMs` (Service Bus
 * retries a send for up to 42 s, longer than many clients wait): a step still running then goes
 * on, and only its outcome is logged. `resumed` means the order existed before this request, so
 * its monitor may already run. A started monitor also republishes to consumers that stay pending,
 * so an order whose client never retries is still not stuck.
 */
export async function completeIntake(
  order: OrderDocument,
  resumed: boolean,
  monitor: MonitorClient,
  deps: OrderSagaDependencies,
  log: Logger,
): Promise<void> {
  const started = performance.now();
  const waitMs = deps.settings.intakeWaitMs ?? DEFAULT_INTAKE_WAIT_MS;
  const timed = async (step: IntakeStep, work: () => Promise<unknown>): Promise<number> => {
    await stepWithinDeadline(work(), waitMs, step, log);
    return Math.round(performance.now() - started);
  };
  const [published, monitored] = await Promise.allSettled([
    timed('publish', async () => {
      if (!order.published) await publishOrderCreated(order, deps);
    }),
    timed('monitor-start', async () => {
      if (!resumed) {
        // The order was written just now: the monitor's first turn decides from it without reading it again.
        await monitor.start(order.id, { orderId: order.id, correlationId: order.correlationId, snapshot: monitorSnapshotOf(order) });
      } else if (!(await monitor.status(order.id))) {
        await monitor.start(order.id, { orderId: order.id, correlationId: order.correlationId });
      }
    }),
  ]);
  // Either way the order is kept, and its monitor (or, failing that, the sweeper) sees it through.
  const then = order.idempotencyKey !== undefined ? 'retry with the same Idempotency-Key' : 'follow it at its statusUrl rather than placing it again';
  if (published.status === 'rejected') {
    log.error('order-publish-failed', published.reason);
    // For support: why nothing moves yet, on the order itself. A note, not a step: the answer waits
    // for it a second at most (Cosmos DB that throttles would hold it for up to 20 s), and it goes on.
    const noted = deps.orders.appendTimeline(order.id, {
      at: deps.now(),
      kind: TIMELINE.publishFailed,
      reason: ensureError(published.reason).message,
      detail: 'its monitor sends the event again to services that stay pending',
    });
    await withinDeadline(noted, PUBLISH_FAILED_NOTE_WAIT_MS, () => new TransientError(`not noted within ${PUBLISH_FAILED_NOTE_WAIT_MS} ms`), (late) => {
      if (!late.ok) log.warn('timeline-append-failed', { error: late.error.message });
    }).catch((err) => log.warn('timeline-append-failed', { error: ensureError(err).message }));
    throw new OrderRecordedError(`order ${order.id} was recorded but its event could not be published yet; ${then}`, order.id, order.correlationId, {
      cause: ensureError(published.reason),
    });
  }
  if (monitored.status === 'rejected') {
    log.error('monitor-start-failed', monitored.reason);
    throw new OrderRecordedError(`order ${order.id} was recorded but its monitor could not be started yet; ${then}`, order.id, order.correlationId, {
      cause: ensureError(monitored.reason),
    });
  }
  // Where intake time goes after the write, per order.
  log.info('intake-completed', { publishMs: published.value, monitorStartMs: monitored.value });
}

type IntakeStep = 'publish' | 'monitor-start';

/** `work`'s outcome, or a TransientError once `ms` have passed; what `work` does after that is logged. */
function stepWithinDeadline<T>(work: Promise<T>, ms: number, step: IntakeStep, log: Logger): Promise<T> {
  const what = step === 'publish' ? 'Service Bus did not take the event' : 'the monitor did not start';
  return withinDeadline(
    work,
    ms,
    () => new TransientError(`${what} within ${ms} ms`),
    (outcome) =>
      outcome.ok
        ? log.warn('intake-step-finished-late', { step, afterMs: ms })
        : log.warn('intake-step-failed-late', { step, error: outcome.error.message }),
  );
}
