/**
 * The app's settings, read once from the environment (Functions app settings; locally the host
 * loads local.settings.json `Values`). Validation fails fast with the setting's name, never its value.
 */
import { z } from 'zod';
import { ConfigurationError } from './errors';

const flag = z
  .string()
  .trim()
  .toLowerCase()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '') return undefined;
    if (['true', '1', 'yes'].includes(v)) return true;
    if (['false', '0', 'no'].includes(v)) return false;
    ctx.addIssue({ code: 'custom', message: 'expected true or false' });
    return z.NEVER;
  });

const millis = z.coerce.number().int().min(0).max(600_000).optional();
const optionalText = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

const settingsSchema = z
  .object({
    ServiceBusConnection: optionalText,
    ServiceBusConnection__fullyQualifiedNamespace: optionalText,
    CosmosDbConnection__accountEndpoint: z.url(),
    CosmosDbConnection__accountKey: optionalText,
    CosmosDbConnection__caCertificateFile: optionalText,
    FAULT_INJECTION_ENABLED: flag,
    SEED_CATALOG: flag,
    SIMULATED_LATENCY_PROFILE: z.enum(['default', 'reference']).optional(),
    INVENTORY_LATENCY_MS: millis,
    BILLING_LATENCY_MS: millis,
    NOTIFICATION_LATENCY_MS: millis,
    INTAKE_WAIT_MS: z.coerce.number().int().min(100).max(600_000).optional(),
    CONSUMER_OUTAGE_WAIT_MS: z.coerce.number().int().min(0).max(120_000).optional(),
  })
  .refine((s) => s.ServiceBusConnection || s.ServiceBusConnection__fullyQualifiedNamespace, {
    message: 'set ServiceBusConnection (connection string) or ServiceBusConnection__fullyQualifiedNamespace',
    path: ['ServiceBusConnection'],
  });

export type ServiceBusSettings =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; fullyQualifiedNamespace: string };

export interface CosmosSettings {
  endpoint: string;
  /** Absent on Azure: DefaultAzureCredential (managed identity) is used instead. */
  key?: string;
  /** A CA certificate file to trust (the local stand-in's generated certificate). */
  caCertificateFile?: string;
}

export interface LatencySettings {
  inventory: number;
  billing: number;
  notification: number;
}

export interface AppConfig {
  serviceBus: ServiceBusSettings;
  cosmos: CosmosSettings;
  faultInjectionEnabled: boolean;
  seedCatalog: boolean;
  /** Simulated work time of each downstream service, per message. */
  latencyMs: LatencySettings;
  /**
   * How long `POST /api/orders`, once the order is written, waits for Service Bus to take its event
   * and for its monitor to start before answering 503 (both go on after the answer).
   */
  intakeWaitMs: number;
  /**
   * How long a consumer's delivery that Cosmos DB did not serve waits before it fails, doubled on
   * the next delivery (none after the last: that one is dead-lettered).
   */
  consumerOutageWaitMs: number;
}

/**
 * Service Bus gives up on a send after its retries (10 s a try, 3 retries: 42 s), longer than many
 * clients wait for an answer; a healthy publish takes milliseconds.
 */
export const DEFAULT_INTAKE_WAIT_MS = 5_000;
/**
 * How long one API request waits for Cosmos DB in all (the intake's catalog prices, Idempotency-Key
 * and order; an order's read; a page of the list) before answering 503: the client's request
 * timeout (10 s) bounds one call that gets no answer, but a throttled call (429) is retried by the
 * SDK for up to 20 s, and the intake makes several one after another.
 */
export const DEFAULT_STORE_WAIT_MS = 10_000;

/**
 * Service Bus redelivers a failed message at once and dead-letters it after 3 deliveries, so a
 * consumer that failed because Cosmos DB throttled it or did not answer would use up its
 * deliveries within seconds, and add its retries to the load of a throttled account. Waiting 10 s,
 * then 20 s, before failing spreads the three deliveries over half a minute and more.
 */
export const DEFAULT_CONSUMER_OUTAGE_WAIT_MS = 10_000;

/** Small by default so tests and benchmarks measure the system, not the sleep. */
const DEFAULT_LATENCY: LatencySettings = { inventory: 5, billing: 10, notification: 5 };
/** The reference demo's numbers: billing 5 s, notification 2 s. */
const REFERENCE_LATENCY: LatencySettings = { inventory: 200, billing: 5000, notification: 2000 };

export function parseConfig(env: NodeJS.ProcessEnv): AppConfig {
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(settings)'}: ${i.message}`);
    throw new ConfigurationError(`invalid app settings: ${problems.join('; ')}`);
  }
  const s = parsed.data;
  const base = s.SIMULATED_LATENCY_PROFILE === 'reference' ? REFERENCE_LATENCY : DEFAULT_LATENCY;
  return {
    serviceBus: s.ServiceBusConnection
      ? { kind: 'connectionString', connectionString: s.ServiceBusConnection }
      : { kind: 'identity', fullyQualifiedNamespace: s.ServiceBusConnection__fullyQualifiedNamespace! },
    cosmos: {
      endpoint: s.CosmosDbConnection__accountEndpoint,
      key: s.CosmosDbConnection__accountKey,
      caCertificateFile: s.CosmosDbConnection__caCertificateFile,
    },
    faultInjectionEnabled: s.FAULT_INJECTION_ENABLED ?? false,
    seedCatalog: s.SEED_CATALOG ?? false,
    latencyMs: {
      inventory: s.INVENTORY_LATENCY_MS ?? base.inventory,
      billing: s.BILLING_LATENCY_MS ?? base.billing,
      notification: s.NOTIFICATION_LATENCY_MS ?? base.notification,
    },
    intakeWaitMs: s.INTAKE_WAIT_MS ?? DEFAULT_INTAKE_WAIT_MS,
    consumerOutageWaitMs: s.CONSUMER_OUTAGE_WAIT_MS ?? DEFAULT_CONSUMER_OUTAGE_WAIT_MS,
  };
}

let current: AppConfig | undefined;

/** The process's settings, parsed on first use. */
export function appConfig(): AppConfig {
  current ??= parseConfig(process.env);
  return current;
}
