/**
 * Everything the domain operations touch, in one object. `appDependencies()` wires the Cosmos DB
 * and Service Bus implementations from the app settings once per process; tests pass in-memory
 * implementations of the same ports.
 */
import { CosmosControlRepository, CosmosIdempotencyRepository } from '../azure/controlRepositories';
import { CosmosDeadLetterArchive } from '../azure/deadLetterArchive';
import { CosmosInventoryRepository } from '../azure/inventoryRepository';
import { CosmosNotificationStore, CosmosPaymentLedger } from '../azure/ledgerRepositories';
import { ServiceBusEventPublisher } from '../azure/orderEventPublisher';
import { CosmosOrderRepository } from '../azure/orderRepository';
import { doubledWaitMs } from '../domain/monitorPolicy';
import { MAX_DELIVERY_COUNT } from '../topology';
import { appConfig, DEFAULT_CONSUMER_OUTAGE_WAIT_MS, DEFAULT_STORE_WAIT_MS, type LatencySettings } from '../config';
import type {
  ControlStore,
  DeadLetterArchive,
  EventPublisher,
  IdempotencyStore,
  InventoryStore,
  NotificationStore,
  OrderStore,
  PaymentLedger,
} from './ports';

export interface OrderSagaSettings {
  faultInjectionEnabled: boolean;
  seedCatalog: boolean;
  latencyMs: LatencySettings;
  /** See AppConfig.intakeWaitMs; DEFAULT_INTAKE_WAIT_MS when absent. */
  intakeWaitMs?: number;
  /** How long an API request waits for Cosmos DB in all before answering 503; DEFAULT_STORE_WAIT_MS when absent. */
  storeWaitMs?: number;
  /** See AppConfig.consumerOutageWaitMs; DEFAULT_CONSUMER_OUTAGE_WAIT_MS when absent. */
  consumerOutageWaitMs?: number;
}

/** How long an API request waits for Cosmos DB in all (`withinStoreWait`). */
export function storeWaitMs(settings: OrderSagaSettings): number {
  return settings.storeWaitMs ?? DEFAULT_STORE_WAIT_MS;
}

/**
 * How long delivery number `deliveryCount` of a consumer, failed because Cosmos DB did not serve
 * it, waits before it fails: the first wait, doubled per delivery; none for the last delivery
 * Service Bus allows, which is dead-lettered whenever it fails.
 */
export function consumerOutageWaitMs(settings: OrderSagaSettings, deliveryCount: number): number {
  if (deliveryCount >= MAX_DELIVERY_COUNT) return 0;
  const first = settings.consumerOutageWaitMs ?? DEFAULT_CONSUMER_OUTAGE_WAIT_MS;
  // Only deliveries before the last wait, so the doubling is bounded by MAX_DELIVERY_COUNT itself.
  return doubledWaitMs(first, Number.POSITIVE_INFINITY, Math.max(0, deliveryCount - 1));
}

export interface OrderSagaDependencies {
  orders: OrderStore;
  inventory: InventoryStore;
  payments: PaymentLedger;
  notifications: NotificationStore;
  idempotency: IdempotencyStore;
  control: ControlStore;
  deadLetters: DeadLetterArchive;
  publisher: EventPublisher;
  settings: OrderSagaSettings;
  /** Simulated work time; injectable so unit tests do not wait. */
  sleep(ms: number): Promise<void>;
  /** ISO 8601 timestamp. */
  now(): string;
}

export const realSleep = (ms: number): Promise<void> =>
  ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();

let wired: OrderSagaDependencies | undefined;

export function appDependencies(): OrderSagaDependencies {
  if (!wired) {
    const config = appConfig();
    wired = {
      orders: new CosmosOrderRepository(),
      inventory: new CosmosInventoryRepository(),
      payments: new CosmosPaymentLedger(),
      notifications: new CosmosNotificationStore(),
      idempotency: new CosmosIdempotencyRepository(),
      control: new CosmosControlRepository(),
      deadLetters: new CosmosDeadLetterArchive(),
      publisher: new ServiceBusEventPublisher(),
      settings: {
        faultInjectionEnabled: config.faultInjectionEnabled,
        seedCatalog: config.seedCatalog,
        latencyMs: config.latencyMs,
        intakeWaitMs: config.intakeWaitMs,
        consumerOutageWaitMs: config.consumerOutageWaitMs,
      },
      sleep: realSleep,
      now: () => new Date().toISOString(),
    };
  }
  return wired;
}
