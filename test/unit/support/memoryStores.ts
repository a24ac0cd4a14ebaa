/**
 * In-memory implementations of the service ports with the same semantics as the Cosmos ones
 * (create-if-absent, conditional transitions, per-order holds), for unit tests of the domain
 * operations and handlers. Documents are deep-copied in and out, as a database would.
 */
import type { CatalogItem } from '../../../src/domain/catalog';
import { readHold, SEED_CATALOG } from '../../../src/domain/catalog';
import type { NotificationKind, OrderDocument, TimelineEntry } from '../../../src/domain/order';
import type { OrderSagaDependencies, OrderSagaSettings } from '../../../src/services/dependencies';
import type {
  CallOptions,
  ControlStore,
  DeadLetterArchive,
  ParkedDeadLetter,
  EventPublisher,
  FaultSwitches,
  IdempotencyRecord,
  IdempotencyStore,
  InventoryStore,
  LedgerEntry,
  MonitorClient,
  MonitorStatus,
  NotificationRecord,
  NotificationStore,
  OrderChangeNotice,
  OrderFilter,
  OrderPage,
  OrderStore,
  OutgoingMessage,
  PaymentLedger,
  ReserveResult,
  StateTransition,
  StatusTransition,
} from '../../../src/services/ports';
import { othersDone, statusReasonAfter } from '../../../src/domain/orderState';
import { invalidContinuationToken } from '../../../src/domain/validation';
import { SERVICES } from '../../../src/topology';

const copy = <T>(value: T): T => structuredClone(value);

export class MemoryOrderStore implements OrderStore {
  readonly docs = new Map<string, OrderDocument>();
  /** Status and state transitions asked for, applied or not: each one is a round trip to Cosmos DB. */
  transitions = 0;
  /** Set to make every call fail like an outage. */
  failWith?: Error;

  private check(): void {
    if (this.failWith) throw this.failWith;
  }

  async create(order: OrderDocument, _options?: CallOptions) {
    this.check();
    const existing = this.docs.get(order.id);
    if (existing) return { created: false, order: copy(existing) };
    this.docs.set(order.id, copy(order));
    return { created: true, order: copy(order) };
  }

  async get(id: string, _options?: CallOptions) {
    this.check();
    const doc = this.docs.get(id);
    return doc ? copy(doc) : undefined;
  }

  async transitionStatus(id: string, change: StatusTransition) {
    this.check();
    this.transitions++;
    const doc = this.docs.get(id);
    if (!doc || !change.from.includes(doc.status[change.service])) return undefined;
    if (change.whenState && !change.whenState.includes(doc.state)) return undefined;
    if (change.whenTimelineLength !== undefined && doc.timeline.length !== change.whenTimelineLength) return undefined;
    if (change.completes && !othersDone(doc, change.service)) return undefined;
    doc.status[change.service] = change.to;
    const reason = statusReasonAfter(change);
    if (reason !== undefined) doc.statusReason[change.service] = reason;
    if (change.countBillingAttempt) doc.billingAttempts += 1;
    if (change.setState !== undefined) doc.state = change.setState;
    if (change.published) doc.published = true;
    if (change.payment?.charged !== undefined) doc.payment.charged = change.payment.charged;
    if (change.payment?.refunded !== undefined) doc.payment.refunded = change.payment.refunded;
    if (change.notice && !doc.notified[change.notice.kind]) {
      doc.notified[change.notice.kind] = true;
      doc.notifications.push({ ...change.notice });
    }
    if (change.timeline) doc.timeline.push(copy(change.timeline));
    if (change.completes) {
      doc.state = 'completed';
      doc.timeline.push(copy(change.completes));
    }
    if (change.stockHeldBy) doc.stockHeldBy = copy(change.stockHeldBy);
    doc.updatedAt = new Date().toISOString();
    return copy(doc);
  }

  async transitionState(id: string, change: StateTransition) {
    this.check();
    this.transitions++;
    const doc = this.docs.get(id);
    if (!doc || !change.from.includes(doc.state)) return undefined;
    if (change.whenTimelineLength !== undefined && doc.timeline.length !== change.whenTimelineLength) return undefined;
    for (const service of SERVICES) {
      const allowed = change.when?.[service];
      if (allowed && !allowed.includes(doc.status[service])) return undefined;
    }
    doc.state = change.to;
    if (change.timeline) doc.timeline.push(copy(change.timeline));
    return copy(doc);
  }

  async appendTimeline(id: string, entry: TimelineEntry, options: { whenTimelineLength?: number } = {}) {
    this.check();
    const doc = this.mustGet(id);
    if (options.whenTimelineLength !== undefined && doc.timeline.length !== options.whenTimelineLength) return false;
    doc.timeline.push(copy(entry));
    doc.updatedAt = new Date().toISOString();
    return true;
  }

  async recordPayment(id: string, field: 'charged' | 'refunded', amount: number) {
    this.check();
    this.mustGet(id).payment[field] = amount;
  }

  async recordNotification(id: string, kind: NotificationKind, at: string) {
    this.check();
    const doc = this.mustGet(id);
    if (doc.notified[kind]) return false;
    doc.notified[kind] = true;
    doc.notifications.push({ kind, at });
    return true;
  }

  async list(filter: OrderFilter, page: { pageSize: number; continuationToken?: string }, _options?: CallOptions): Promise<OrderPage> {
    this.check();
    // As Cosmos DB answers `ORDER BY c.createdAt DESC`: ties by creation, the last created first
    // (the _rid, in the order's direction). A token holds the position after the page's last
    // order, not a count of orders: orders placed or changed since do not shift the next page.
    const created = [...this.docs.keys()];
    const rank = (o: OrderDocument) => created.indexOf(o.id);
    const after = page.continuationToken ? listPosition(page.continuationToken) : undefined;
    const all = [...this.docs.values()]
      .filter((o) => !filter.state || o.state === filter.state)
      .filter((o) => !filter.customerId || o.customerId === filter.customerId)
      .filter((o) => SERVICES.every((s) => !filter.status?.[s] || o.status[s] === filter.status[s]))
      .filter((o) => !filter.updatedBefore || o.updatedAt < filter.updatedBefore)
      .filter((o) => !after || o.createdAt < after.createdAt || (o.createdAt === after.createdAt && rank(o) < after.rank))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || rank(b) - rank(a));
    const items = all.slice(0, page.pageSize);
    const last = items.at(-1);
    const continuationToken = all.length > page.pageSize && last ? JSON.stringify({ createdAt: last.createdAt, rank: rank(last) }) : undefined;
    return { orders: copy(items), ...(continuationToken ? { continuationToken } : {}) };
  }

  private mustGet(id: string): OrderDocument {
    const doc = this.docs.get(id);
    if (!doc) throw Object.assign(new Error('not found'), { code: 404 });
    return doc;
  }
}

export class MemoryInventoryStore implements InventoryStore {
  readonly items = new Map<string, CatalogItem>();

  constructor(seed: readonly Omit<CatalogItem, 'reserved' | 'holds'>[] = SEED_CATALOG) {
    for (const item of seed) this.items.set(item.id, { ...item, reserved: 0, holds: {} });
  }

  async get(sku: string, _options?: CallOptions) {
    const item = this.items.get(sku);
    return item ? copy(item) : undefined;
  }

  async list() {
    return copy([...this.items.values()]);
  }

  async reserve(sku: string, orderId: string, quantity: number, delivery: string): Promise<ReserveResult> {
    const item = this.items.get(sku);
    if (!item) return 'unknownSku';
    if (item.holds[orderId] !== undefined) return 'alreadyReserved';
    if (item.available < quantity) return 'insufficient';
    item.available -= quantity;
    item.reserved += quantity;
    item.holds[orderId] = { quantity, delivery };
    return 'reserved';
  }

  async hold(sku: string, orderId: string) {
    return readHold(this.items.get(sku)?.holds[orderId]);
  }

  /** The order's hold, when there is one and (with `delivery`) that delivery took it. */
  #heldBy(sku: string, orderId: string, delivery: string | undefined) {
    const item = this.items.get(sku);
    const hold = readHold(item?.holds[orderId]);
    return item && hold && (delivery === undefined || hold.delivery === delivery) ? item : undefined;
  }

  async release(sku: string, orderId: string, quantity: number, delivery?: string) {
    const item = this.#heldBy(sku, orderId, delivery);
    if (!item) return false;
    item.available += quantity;
    item.reserved -= quantity;
    delete item.holds[orderId];
    return true;
  }

  async settle(sku: string, orderId: string, delivery?: string) {
    const item = this.#heldBy(sku, orderId, delivery);
    if (!item) return false;
    delete item.holds[orderId];
    return true;
  }

  async ensure(item: CatalogItem) {
    if (this.items.has(item.id)) return false;
    this.items.set(item.id, copy(item));
    return true;
  }
}

export class MemoryPaymentLedger implements PaymentLedger {
  readonly entriesById = new Map<string, LedgerEntry>();

  private async createIfAbsent(entry: LedgerEntry) {
    const existing = this.entriesById.get(entry.id);
    if (existing) return { created: false, entry: copy(existing) };
    this.entriesById.set(entry.id, copy(entry));
    return { created: true, entry: copy(entry) };
  }

  charge(entry: LedgerEntry) {
    return this.createIfAbsent(entry);
  }

  refund(entry: LedgerEntry) {
    return this.createIfAbsent(entry);
  }

  async entries(orderId: string) {
    return copy([...this.entriesById.values()].filter((e) => e.orderId === orderId));
  }
}

export class MemoryNotificationStore implements NotificationStore {
  readonly records = new Map<string, NotificationRecord>();

  async send(record: NotificationRecord) {
    const existing = this.records.get(record.id);
    if (existing) return { created: false, record: copy(existing) };
    this.records.set(record.id, copy(record));
    return { created: true, record: copy(record) };
  }

  async list(orderId: string) {
    return copy([...this.records.values()].filter((r) => r.orderId === orderId));
  }
}

export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly records = new Map<string, IdempotencyRecord>();

  claim(record: IdempotencyRecord, options?: CallOptions) {
    return claimKey(this, record, options);
  }

  /** The record written if none is stored under its key: false when one is (Cosmos DB's 409 to a create). */
  async insert(record: IdempotencyRecord, _options?: CallOptions) {
    if (this.records.has(record.key)) return false;
    this.records.set(record.key, copy(record));
    return true;
  }

  async find(key: string, _options?: CallOptions) {
    const existing = this.records.get(key);
    return existing ? copy(existing) : undefined;
  }
}

/**
 * A claim as the Cosmos DB repository makes it (src/azure/controlRepositories.ts), in two calls to
 * `keys`: the create, then, when a record was already there, its read. Given a view of the store whose
 * calls can fail or wait, something may befall the claim between the two.
 */
export async function claimKey(
  keys: Pick<MemoryIdempotencyStore, 'insert' | 'find'>,
  record: IdempotencyRecord,
  options?: CallOptions,
): Promise<{ created: boolean; record: IdempotencyRecord }> {
  if (await keys.insert(record, options)) return { created: true, record: copy(record) };
  const stored = await keys.find(record.key, options);
  if (!stored) throw Object.assign(new Error('Entity with the specified id already exists in the system.'), { code: 409 });
  return { created: false, record: stored };
}

export class MemoryControlStore implements ControlStore {
  switches: FaultSwitches = { billingFails: false };

  async faults() {
    return { ...this.switches };
  }

  async setFaults(faults: FaultSwitches) {
    this.switches = { ...faults };
  }
}

/** One page of a listing; the token is the index of the next page's first item. */
/** The position an orders list token holds; a token it did not issue is refused, as the Cosmos DB repository refuses one. */
function listPosition(token: string): { createdAt: string; rank: number } {
  try {
    const position = JSON.parse(token) as { createdAt?: unknown; rank?: unknown };
    if (typeof position.createdAt === 'string' && typeof position.rank === 'number') return { createdAt: position.createdAt, rank: position.rank };
  } catch {
    // refused below
  }
  throw invalidContinuationToken();
}

function pageOf<T>(all: T[], page: { pageSize: number; continuationToken?: string }): { items: T[]; continuationToken?: string } {
  const start = page.continuationToken ? Number(page.continuationToken) : 0;
  const next = start + page.pageSize;
  return { items: all.slice(start, next), ...(next < all.length ? { continuationToken: String(next) } : {}) };
}

export class MemoryDeadLetterArchive implements DeadLetterArchive {
  readonly parked = new Map<string, ParkedDeadLetter>();

  async park(message: ParkedDeadLetter) {
    const key = `${message.source}|${message.messageId ?? JSON.stringify(message.body)}`;
    if (this.parked.has(key)) return false;
    this.parked.set(key, copy(message));
    return true;
  }

  async list(page: { pageSize: number; continuationToken?: string }) {
    const all = [...this.parked.entries()]
      .map(([id, message]) => ({ id, ...copy(message) }))
      .sort((a, b) => b.parkedAt.localeCompare(a.parkedAt));
    const { items, continuationToken } = pageOf(all, page);
    return { deadLetters: items, ...(continuationToken ? { continuationToken } : {}) };
  }
}

/** The `orders` topic as publishers see it, with its duplicate detection (by messageId). */
export class RecordingPublisher implements EventPublisher {
  /** What the topic accepted. */
  readonly sent: OutgoingMessage[] = [];
  /** Sends the topic dropped as duplicates (a messageId it had already accepted). */
  readonly duplicates: OutgoingMessage[] = [];
  /** Set to make the next publishes fail like a Service Bus outage. */
  failWith?: Error;
  /** Set to make publishes wait for it before the topic answers, like a broker that stopped answering. */
  holdUntil?: Promise<void>;

  async publish(message: OutgoingMessage) {
    if (this.holdUntil) await this.holdUntil;
    if (this.failWith) throw this.failWith;
    const seen = this.sent.some((m) => m.messageId === message.messageId);
    (seen ? this.duplicates : this.sent).push(copy(message));
  }
}

export class RecordingMonitor implements MonitorClient {
  readonly instances = new Map<string, { orderId: string; correlationId: string }>();
  readonly changes: { orderId: string; change: OrderChangeNotice }[] = [];
  failWith?: Error;

  async start(orderId: string, input: { orderId: string; correlationId: string }) {
    if (this.failWith) throw this.failWith;
    if (this.instances.has(orderId)) return 'exists' as const;
    this.instances.set(orderId, input);
    return 'started' as const;
  }

  /** Set to make status reads fail like a durable backend that does not answer. */
  statusFailWith?: Error;

  async status(orderId: string): Promise<MonitorStatus | null> {
    if (this.statusFailWith) throw this.statusFailWith;
    return this.instances.has(orderId) ? { runtimeStatus: 'Running', customStatus: { phase: 'watching' } } : null;
  }

  async notifyOrderChanged(orderId: string, change: OrderChangeNotice) {
    this.changes.push({ orderId, change });
  }
}

export interface MemoryDependencies extends OrderSagaDependencies {
  orders: MemoryOrderStore;
  inventory: MemoryInventoryStore;
  payments: MemoryPaymentLedger;
  notifications: MemoryNotificationStore;
  idempotency: MemoryIdempotencyStore;
  control: MemoryControlStore;
  deadLetters: MemoryDeadLetterArchive;
  publisher: RecordingPublisher;
}

export function memoryDependencies(settings: Partial<OrderSagaSettings> = {}): MemoryDependencies {
  let tick = 0;
  return {
    orders: new MemoryOrderStore(),
    inventory: new MemoryInventoryStore(),
    payments: new MemoryPaymentLedger(),
    notifications: new MemoryNotificationStore(),
    idempotency: new MemoryIdempotencyStore(),
    control: new MemoryControlStore(),
    deadLetters: new MemoryDeadLetterArchive(),
    publisher: new RecordingPublisher(),
    settings: {
      faultInjectionEnabled: true,
      seedCatalog: false,
      latencyMs: { inventory: 0, billing: 0, notification: 0 },
      ...settings,
    },
    sleep: async () => undefined,
    // Strictly increasing timestamps keep "newest first" deterministic.
    now: () => new Date(Date.UTC(2026, 0, 1) + tick++ * 1000).toISOString(),
  };
}
