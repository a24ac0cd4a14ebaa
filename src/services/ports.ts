/**
 * What the domain operations need from storage, messaging and the durable monitor, in domain
 * terms. Cosmos DB / Service Bus / durable-functions implement these in src/azure; unit tests use
 * in-memory ones. Every write here is idempotent or conditional: at-least-once delivery is the norm.
 */
import type { ServiceName } from '../topology';
import type { CatalogItem } from '../domain/catalog';
import type { MonitorSnapshot } from '../domain/monitorPolicy';
import type { NotificationKind, OrderDocument, OrderState, ServiceStatus, TimelineEntry } from '../domain/order';

export interface StatusTransition {
  service: ServiceName;
  /** The patch applies only while the service's status is one of these. */
  from: readonly ServiceStatus[];
  to: ServiceStatus;
  timeline?: TimelineEntry;
  /** Recorded in `statusReason[service]`. */
  reason?: string;
  /** Also count one billing attempt (the returned order carries the new count). */
  countBillingAttempt?: boolean;
  /** Additionally require the order to be in one of these states. */
  whenState?: readonly OrderState[];
  /** Additionally require the timeline to hold exactly this many entries: nothing written since the order was read. */
  whenTimelineLength?: number;
  /** Also set the order's state, in the same atomic patch (only meaningful with `whenState`). */
  setState?: OrderState;
  /** Also record that OrderCreated reached a consumer (the outbox marker `published`). */
  published?: true;
  /** Also mirror these ledger amounts in the order's `payment`, in the same patch. */
  payment?: { charged?: number; refunded?: number };
  /**
   * Also record this notice in the order's `notifications` (and its `notified` flag), in the same
   * patch. Only with a transition that can happen once per order, such as `processing -> done`.
   */
  notice?: { kind: NotificationKind; at: string };
  /**
   * Also complete the order in the same patch, with this timeline entry after `timeline`: the
   * patch then additionally requires the order to be active and every other service `done`, and
   * sets the state to `completed`. For the `done` that a consumer knows to be the last one.
   */
  completes?: TimelineEntry;
  /** Also record the deliveries whose holds this `done` relies on, per SKU (`stockHeldBy`). */
  stockHeldBy?: Record<string, string>;
}

export interface StateTransition {
  from: readonly OrderState[];
  to: OrderState;
  /** Additionally require these service statuses (all must match). */
  when?: Partial<Record<ServiceName, readonly ServiceStatus[]>>;
  /** Additionally require the timeline to hold exactly this many entries: nothing written since the order was read. */
  whenTimelineLength?: number;
  timeline?: TimelineEntry;
}

export interface OrderFilter {
  state?: OrderState;
  /** Exact match: the orders of one customer. */
  customerId?: string;
  status?: Partial<Record<ServiceName, ServiceStatus>>;
  /** Last written before this instant (UTC, as `toISOString()`): orders nothing has moved since. */
  updatedBefore?: string;
}

export interface OrderPage {
  orders: OrderDocument[];
  continuationToken?: string;
}

/**
 * For a call whose caller waits a bounded time (the intake): once `signal` fires the caller has
 * answered without it, and the call stops retrying (Cosmos DB's SDK waits out throttling, 429,
 * for up to 20 s per call) rather than land a write nobody waits for.
 */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface OrderStore {
  /** Create-if-absent: `created` is false when an order with this id already exists (it is returned). */
  create(order: OrderDocument, options?: CallOptions): Promise<{ created: boolean; order: OrderDocument }>;
  get(id: string, options?: CallOptions): Promise<OrderDocument | undefined>;
  /** Conditional patch of `/status/<service>`; undefined when the condition did not hold (no-op). */
  transitionStatus(id: string, change: StatusTransition): Promise<OrderDocument | undefined>;
  /** Conditional patch of `/state`; undefined when the condition did not hold (no-op). */
  transitionState(id: string, change: StateTransition): Promise<OrderDocument | undefined>;
  /**
   * Appends to the timeline; with `whenTimelineLength`, only while the timeline still has that many
   * entries (nothing was recorded since it was read): false when it had more, or no such order.
   */
  appendTimeline(id: string, entry: TimelineEntry, options?: { whenTimelineLength?: number }): Promise<boolean>;
  /** Sets `payment.charged` / `payment.refunded` (absolute amounts: repeating is harmless). */
  recordPayment(id: string, field: 'charged' | 'refunded', amount: number): Promise<void>;
  /** Appends to `notifications` once per kind; false when it was already recorded. */
  recordNotification(id: string, kind: NotificationKind, at: string): Promise<boolean>;
  /** Newest first. */
  list(filter: OrderFilter, page: { pageSize: number; continuationToken?: string }, options?: CallOptions): Promise<OrderPage>;
}

/** A dead-lettered message that could not be tied to an order, kept as it arrived. */
export interface ParkedDeadLetter {
  /** The dead-letter queue it came from, e.g. `orders/Subscriptions/billing-sub/$DeadLetterQueue`. */
  source: string;
  messageId?: string;
  deadLetterReason?: string;
  deadLetterDescription?: string;
  correlationId?: string;
  orderId?: string;
  /** Why the app could not put it on an order: what its body lacks, or that its order does not exist. */
  problem?: string;
  /** Which of the two `problem` is: the body could not be read, or it was read and names no order that exists. */
  kind?: 'unreadable' | 'no-such-order';
  /** The order it names (`orderId`) does not exist: nothing to open. */
  orderMissing?: true;
  body: unknown;
  parkedAt: string;
}

/** A kept message as support reads it back; a body that arrived as bytes reads `{base64}`. */
export interface StoredDeadLetter extends ParkedDeadLetter {
  id: string;
}

export interface DeadLetterArchive {
  /** Keeps the message (once per source and message id); true when this call stored it. */
  park(message: ParkedDeadLetter): Promise<boolean>;
  /** The kept messages, the most recently kept first, a page at a time. */
  list(page: { pageSize: number; continuationToken?: string }): Promise<{ deadLetters: StoredDeadLetter[]; continuationToken?: string }>;
}

export type ReserveResult = 'reserved' | 'alreadyReserved' | 'insufficient' | 'unknownSku';

export interface InventoryStore {
  get(sku: string, options?: CallOptions): Promise<CatalogItem | undefined>;
  list(): Promise<CatalogItem[]>;
  /**
   * Moves `quantity` from available to reserved for this order, at most once per (sku, order); the
   * hold records `delivery`, the delivery that took it.
   */
  reserve(sku: string, orderId: string, quantity: number, delivery: string): Promise<ReserveResult>;
  /** This order's hold on the SKU, if it has one (`delivery` is absent on a hold written without it). */
  hold(sku: string, orderId: string): Promise<{ quantity: number; delivery?: string } | undefined>;
  /**
   * Returns this order's hold to available; false when there was none. With `delivery`, only a hold
   * that delivery took.
   */
  release(sku: string, orderId: string, quantity: number, delivery?: string): Promise<boolean>;
  /**
   * The order completed: its stock stays reserved for good, so the hold that made reservation and
   * release idempotent is dropped (a SKU's document would otherwise grow with every order it ever
   * sold). False when there was no hold. With `delivery`, only a hold that delivery took.
   */
  settle(sku: string, orderId: string, delivery?: string): Promise<boolean>;
  /** Create-if-absent (seeding); false when the SKU already existed. */
  ensure(item: CatalogItem, options?: CallOptions): Promise<boolean>;
}

export interface LedgerEntry {
  /** `<orderId>:charge` or `<orderId>:refund`. */
  id: string;
  orderId: string;
  kind: 'charge' | 'refund';
  amount: number;
  currency: string;
  /** A charge slot taken by compensation before any charge happened: amount 0, blocks a late charge. */
  voided?: boolean;
  at: string;
}

export interface PaymentLedger {
  /** Create-if-absent; returns whatever entry holds the slot (possibly a void or an earlier charge). */
  charge(entry: LedgerEntry): Promise<{ created: boolean; entry: LedgerEntry }>;
  refund(entry: LedgerEntry): Promise<{ created: boolean; entry: LedgerEntry }>;
  entries(orderId: string): Promise<LedgerEntry[]>;
}

export interface NotificationRecord {
  /** `<orderId>:confirmation` or `<orderId>:cancellation`. */
  id: string;
  orderId: string;
  kind: NotificationKind;
  customerId: string;
  message: string;
  at: string;
  /**
   * A confirmation slot taken by compensation before any confirmation went out: the order is being
   * cancelled, and a notification delivery still at work must never confirm it. Nothing was sent.
   */
  voided?: true;
}

export interface NotificationStore {
  /** Create-if-absent: the simulated sender "sends" by storing the notice once. */
  send(record: NotificationRecord): Promise<{ created: boolean; record: NotificationRecord }>;
  list(orderId: string): Promise<NotificationRecord[]>;
}

export interface IdempotencyRecord {
  /** The client's Idempotency-Key. */
  key: string;
  orderId: string;
  eventId: string;
  correlationId: string;
  /** Fingerprint of the validated body. */
  fingerprint: string;
  /**
   * Set on records of bodies checked by the strict rules (UTF-8 only, one SKU within the line
   * limit across lines). A record without it was written before them: only its retry may be read
   * by the looser rules it was accepted under.
   */
  strictBody?: true;
  createdAt: string;
}

export interface IdempotencyStore {
  /** Create-if-absent; returns the first record stored under this key. */
  claim(record: IdempotencyRecord, options?: CallOptions): Promise<{ created: boolean; record: IdempotencyRecord }>;
  /** The record stored under this key, if any; claims nothing. */
  find(key: string, options?: CallOptions): Promise<IdempotencyRecord | undefined>;
}

export interface FaultSwitches {
  /** Global billing-fault switch: while on, every billing attempt fails. */
  billingFails: boolean;
}

export interface ControlStore {
  /** May answer from a read up to a second old (`FAULTS_CACHE_MS`); a switch set through the same store applies at once. */
  faults(): Promise<FaultSwitches>;
  setFaults(faults: FaultSwitches): Promise<void>;
}

export interface OutgoingMessage {
  messageId: string;
  body: unknown;
  contentType: string;
  correlationId: string;
  subject?: string;
  applicationProperties: Record<string, string | number | boolean>;
}

export interface EventPublisher {
  publish(message: OutgoingMessage): Promise<void>;
}

export interface MonitorStatus {
  runtimeStatus: string;
  customStatus: unknown;
}

/** Payload of the `OrderChanged` event: a hint for the monitor's log; the monitor re-reads the order. */
export interface OrderChangeNotice {
  source?: 'consumer' | 'deadletter' | 'support' | 'sweeper';
  service?: ServiceName;
  status?: string;
  /** The order's state after the change, when the sender changed it (a consumer that completed it). */
  state?: OrderState;
  reason?: string;
  action?: string;
  by?: string;
}

/** The order monitor orchestration, as the intake, the consumers and the support view see it. */
export interface MonitorClient {
  /**
   * Starts the order's monitor (instance id = order id); 'exists' when it was already started.
   * `snapshot`: the order as the caller has just written it, so the monitor's first turn need not read it.
   */
  start(orderId: string, input: { orderId: string; correlationId: string; snapshot?: MonitorSnapshot }): Promise<'started' | 'exists'>;
  /**
   * The status of the order's monitor, or with `run`, of its compensation run number `run` (the
   * sub-orchestration `compensationRunInstanceId` names); null when there is no such instance.
   */
  status(orderId: string, run?: number): Promise<MonitorStatus | null>;
  /** Best effort: raises `OrderChanged` on the monitor; never throws. */
  notifyOrderChanged(orderId: string, change: OrderChangeNotice): Promise<void>;
}
