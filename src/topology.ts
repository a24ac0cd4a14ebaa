/**
 * The one source of truth for messaging and storage names. Read by the triggers, by infra/ (which
 * deploys exactly this), and by both local emulators (which serve exactly this).
 *
 * Durations are ISO 8601 (what Service Bus and azurerm take); `durationMs` converts them.
 */

export type ServiceName = 'inventory' | 'billing' | 'notification';
export const SERVICES: readonly ServiceName[] = ['inventory', 'billing', 'notification'] as const;

export interface SubscriptionRule {
  name: string;
  /** Service Bus SQL filter over application (`target`) and system (`sys.Label`) properties. */
  sqlFilter?: string;
  /** Correlation filter: every listed property must equal the message's. */
  correlationFilter?: {
    correlationId?: string;
    messageId?: string;
    label?: string;
    contentType?: string;
    properties?: Record<string, string | number | boolean>;
  };
}

export interface SubscriptionTopology {
  name: string;
  /** The consumer this subscription feeds, when it feeds one. */
  service?: ServiceName;
  maxDeliveryCount: number;
  lockDuration: string;
  defaultMessageTimeToLive: string;
  deadLetteringOnMessageExpiration: boolean;
  /** No rules means the default rule (`1=1`): every message. */
  rules: SubscriptionRule[];
}

export interface TopicTopology {
  name: string;
  requiresDuplicateDetection: boolean;
  duplicateDetectionHistoryTimeWindow: string;
  defaultMessageTimeToLive: string;
  subscriptions: SubscriptionTopology[];
}

export interface QueueTopology {
  name: string;
  maxDeliveryCount: number;
  lockDuration: string;
  defaultMessageTimeToLive: string;
  deadLetteringOnMessageExpiration: boolean;
  requiresDuplicateDetection: boolean;
  duplicateDetectionHistoryTimeWindow: string;
}

export interface ServiceBusTopology {
  topics: TopicTopology[];
  queues: QueueTopology[];
}

export interface CosmosContainerTopology {
  name: string;
  partitionKeyPath: string;
}

export interface CosmosTopology {
  databaseName: string;
  containers: CosmosContainerTopology[];
}

export const ORDERS_TOPIC = 'orders';
/** Application property a targeted republish carries; subscription rules route on it. */
export const TARGET_PROPERTY = 'target';
export const MAX_DELIVERY_COUNT = 3;
/** The reason Service Bus gives a message it dead-lettered after `MAX_DELIVERY_COUNT` deliveries. */
export const MAX_DELIVERY_COUNT_EXCEEDED = 'MaxDeliveryCountExceeded';

export const SUBSCRIPTIONS: Record<ServiceName, string> = {
  inventory: 'inventory-sub',
  billing: 'billing-sub',
  notification: 'notification-sub',
};

/** A subscription for one service takes untargeted events and events targeted at it only. */
function serviceSubscription(service: ServiceName): SubscriptionTopology {
  return {
    name: SUBSCRIPTIONS[service],
    service,
    maxDeliveryCount: MAX_DELIVERY_COUNT,
    lockDuration: 'PT1M',
    defaultMessageTimeToLive: 'P14D',
    deadLetteringOnMessageExpiration: true,
    rules: [
      {
        name: `to-${service}`,
        sqlFilter: `${TARGET_PROPERTY} IS NULL OR ${TARGET_PROPERTY} = '${service}'`,
      },
    ],
  };
}

export const serviceBusTopology: ServiceBusTopology = {
  topics: [
    {
      name: ORDERS_TOPIC,
      requiresDuplicateDetection: true,
      duplicateDetectionHistoryTimeWindow: 'PT10M',
      defaultMessageTimeToLive: 'P14D',
      subscriptions: SERVICES.map(serviceSubscription),
    },
  ],
  queues: [],
};

export const DEAD_LETTER_SUFFIX = '$DeadLetterQueue';

/** `orders/Subscriptions/billing-sub/$DeadLetterQueue` and friends. */
export function deadLetterPath(topic: string, subscription: string): string {
  return `${topic}/Subscriptions/${subscription}/${DEAD_LETTER_SUFFIX}`;
}

export const CONTAINERS = {
  orders: 'orders',
  inventory: 'inventory',
  payments: 'payments',
  notifications: 'notifications',
  idempotency: 'idempotency',
  control: 'control',
  deadLetters: 'deadletters',
} as const;

export const cosmosTopology: CosmosTopology = {
  databaseName: 'orders-db',
  containers: [
    // Lower-case field names and enum values throughout: conditional patches compare them.
    { name: CONTAINERS.orders, partitionKeyPath: '/id' },
    { name: CONTAINERS.inventory, partitionKeyPath: '/id' },
    { name: CONTAINERS.payments, partitionKeyPath: '/orderId' },
    { name: CONTAINERS.notifications, partitionKeyPath: '/orderId' },
    { name: CONTAINERS.idempotency, partitionKeyPath: '/id' },
    { name: CONTAINERS.control, partitionKeyPath: '/id' },
    // Dead-lettered messages that name no order: kept for support rather than dropped.
    { name: CONTAINERS.deadLetters, partitionKeyPath: '/id' },
  ],
};

const ISO_DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** Milliseconds in an ISO 8601 day-time duration such as `PT1M`, `P14D`, `PT0.5S`. */
export function durationMs(iso: string): number {
  const m = ISO_DURATION.exec(iso);
  if (!m || iso === 'P' || iso.endsWith('T')) throw new Error(`not an ISO 8601 day-time duration: ${iso}`);
  const [, d, h, min, s] = m;
  return (
    (Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(min ?? 0) * 60 + Number(s ?? 0)) * 1000
  );
}
