/**
 * The order document as stored in Cosmos DB (container `orders`, partition key `/id`) and as the
 * support view returns it. Field names and enum values are lower-case on purpose: conditional
 * patches compare them (see the Cosmos stand-in notes).
 */
import type { ServiceName } from '../topology';

export type OrderState = 'accepted' | 'processing' | 'completed' | 'compensating' | 'cancelled' | 'attention';
export const TERMINAL_STATES: readonly OrderState[] = ['completed', 'cancelled', 'attention'];

/** Progress of one consumer. `done` is success; `deadlettered` until requeued or compensated. */
export type ServiceStatus = 'pending' | 'processing' | 'done' | 'failed' | 'deadlettered' | 'compensated';

export type NotificationKind = 'confirmation' | 'cancellation';

export interface OrderItem {
  sku: string;
  quantity: number;
  /** Price of one unit in the order's currency, from the catalog at intake. */
  unitPrice: number;
}

export interface TimelineEntry {
  at: string;
  /** e.g. `delivery`, `done`, `failed`, `deadlettered`, `requeued`, `republished`, `compensation`, `support-action` */
  kind: string;
  service?: ServiceName;
  deliveryCount?: number;
  reason?: string;
  detail?: string;
  /** Who acted, for support actions (principal name) or `monitor`. */
  actor?: string;
  /**
   * The monitor's step that wrote it (a `compensation-started`): that step, run once more after a
   * host died before the engine heard it finish, finds its own entry instead of writing another.
   */
  step?: string;
  /**
   * On a `compensation-started`: the run's sub-orchestration writes `compensation-underway` when it
   * takes the run up, so a run without one was begun and never carried out. Runs begun before the
   * entry existed have neither, and count as carried out, as they did.
   */
  notesUnderway?: true;
  /**
   * On a `compensation-started`: the run number (attempt) of a run begun and never carried out that
   * this one carries out instead (its monitor died first). Not another run against the bound.
   */
  resumes?: number;
}

export interface OrderDocument {
  id: string;
  customerId: string;
  items: OrderItem[];
  currency: string;
  /** Sum of quantity x unitPrice, rounded to cents. */
  total: number;
  state: OrderState;
  status: Record<ServiceName, ServiceStatus>;
  /**
   * Why a service failed or was dead-lettered, when it did. Null once the service moved on to a
   * status no reason describes (see `statusReasonAfter`); read it through `currentReasons`.
   */
  statusReason: Partial<Record<ServiceName, string | null>>;
  payment: { charged: number; refunded: number };
  notifications: { kind: NotificationKind; at: string }[];
  timeline: TimelineEntry[];
  correlationId: string;
  /** CloudEvent id of the OrderCreated event; the Service Bus messageId of the first publish. */
  eventId: string;
  createdAt: string;
  updatedAt: string;
  simulate?: { billingFailures?: number };
  idempotencyKey?: string;
  /**
   * Outbox marker: true once a consumer has received OrderCreated (set by the first claim, in the
   * same patch). Until then a retried request (same Idempotency-Key) publishes again, with the same
   * messageId, so Service Bus duplicate detection drops a repeat of a send that did go through.
   */
  published: boolean;
  /** Billing attempts counted across deliveries and requeues (drives `simulate.billingFailures`). */
  billingAttempts: number;
  /** One flag per notice, flipped by the same conditional patch that appends to `notifications`. */
  notified: Record<NotificationKind, boolean>;
  /**
   * Per SKU, the inventory delivery whose hold the recorded inventory `done` relies on (set by that
   * patch). Any other hold of this order is one a delivery that lost a race took, and is given back.
   */
  stockHeldBy?: Record<string, string>;
}
