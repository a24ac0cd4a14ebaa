/**
 * The process's Cosmos DB and Service Bus clients, built once from settings: keys or a connection
 * string when configured (local emulators), otherwise DefaultAzureCredential (managed identity).
 */
import { createDefaultHttpClient } from '@azure/core-rest-pipeline';
import { CosmosClient, type Container, type Database } from '@azure/cosmos';
import { RetryMode, ServiceBusClient, type ServiceBusReceiver, type ServiceBusReceiverOptions, type ServiceBusSender } from '@azure/service-bus';
import type { TokenCredential } from '@azure/core-auth';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { resolve } from 'node:path';
import { appConfig, type AppConfig } from '../config';
import { ConfigurationError } from '../errors';
import { withJsonErrorBodies } from './cosmosErrors';
import { cosmosTopology, ORDERS_TOPIC, type CONTAINERS } from '../topology';

export type ContainerName = (typeof CONTAINERS)[keyof typeof CONTAINERS];

let credential: TokenCredential | undefined;
let cosmos: CosmosClient | undefined;
let cosmosAgent: Agent | undefined;

function azureCredential(): TokenCredential {
  // Loaded only where identity is used: it is heavy, and local runs never need it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const identity = require('@azure/identity') as typeof import('@azure/identity');
  credential ??= new identity.DefaultAzureCredential();
  return credential;
}

export function createCosmosClient(config: AppConfig['cosmos']): { client: CosmosClient; agent?: Agent } {
  let agent: Agent | undefined;
  if (config.caCertificateFile) {
    let ca: Buffer;
    try {
      ca = readFileSync(resolve(config.caCertificateFile));
    } catch {
      throw new ConfigurationError(`CosmosDbConnection__caCertificateFile cannot be read: ${config.caCertificateFile}`);
    }
    // Trust exactly this CA in addition to nothing else: TLS checking stays on.
    agent = new Agent({ ca, keepAlive: true, maxSockets: 64 });
  }
  const client = new CosmosClient({
    endpoint: config.endpoint,
    httpClient: withJsonErrorBodies(createDefaultHttpClient()),
    ...(config.key ? { key: config.key } : { aadCredentials: azureCredential() }),
    ...(agent ? { agent } : {}),
    connectionPolicy: {
      requestTimeout: 10_000,
      // The account has one region (infra/stack.ts): there is nothing to discover or fail over to.
      // With discovery on, the SDK (4.9) retries a read that timed out up to 120 times against that
      // same region, so while Cosmos DB does not answer (a network black hole, SNAT exhaustion) a
      // request would hang for up to 20 minutes instead of failing after its 10 s timeout and
      // being retried by its caller (the client with its Idempotency-Key, Service Bus, the monitor).
      enableEndpointDiscovery: false,
      // Throttling (429) is retried by the SDK; bounded so a request never outlives its caller.
      retryOptions: { maxRetryAttemptCount: 9, fixedRetryIntervalInMilliseconds: 0, maxWaitTimeInSeconds: 20 },
    },
  });
  return { client, agent };
}

export function cosmosClient(): CosmosClient {
  if (!cosmos) {
    const built = createCosmosClient(appConfig().cosmos);
    cosmos = built.client;
    cosmosAgent = built.agent;
  }
  return cosmos;
}

export function ordersDatabase(client: CosmosClient = cosmosClient()): Database {
  return client.database(cosmosTopology.databaseName);
}

export function container(name: ContainerName, client: CosmosClient = cosmosClient()): Container {
  return ordersDatabase(client).container(name);
}

export function createServiceBusClient(config: AppConfig['serviceBus']): ServiceBusClient {
  const options = {
    retryOptions: { mode: RetryMode.Exponential, maxRetries: 3, retryDelayInMs: 200, maxRetryDelayInMs: 5_000, timeoutInMs: 10_000 },
  };
  return config.kind === 'connectionString'
    ? new ServiceBusClient(config.connectionString, options)
    : new ServiceBusClient(config.fullyQualifiedNamespace, azureCredential(), options);
}

/** How long a replaced client gets to close; one whose connection is stuck would never finish. */
const REPLACED_CLOSE_MS = 5_000;

/**
 * The process's Service Bus client and its `orders` sender, replaced when calls through them keep
 * failing. The SDK (7.9, over rhea) can leave its connection unusable for minutes after the broker
 * took connections and did not answer within an operation's timeout: it opens the same connection
 * again on a new socket, and once the broker answers, the answers of its sockets run into one frame
 * parser, which then waits for a frame of about 1 GB (the protocol header "AMQP" read as a length).
 * With the local broker stalled for 300 s, the app's sends went through again only about 5 minutes
 * after it answered, while a client built afresh went through at once.
 */
export class RenewingServiceBus {
  #client: ServiceBusClient | undefined;
  #sender: ServiceBusSender | undefined;
  #workedAt = 0;

  constructor(
    private readonly create: () => ServiceBusClient,
    /** How long calls may keep failing, with none going through, before the client is built afresh. */
    private readonly renewAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  client(): ServiceBusClient {
    if (!this.#client) {
      this.#client = this.create();
      this.#workedAt = this.now();
    }
    return this.#client;
  }

  /** One long-lived sender for the `orders` topic: links are expensive to open per message. */
  ordersSender(): ServiceBusSender {
    this.#sender ??= this.client().createSender(ORDERS_TOPIC);
    return this.#sender;
  }

  /** A call went through. */
  worked(): void {
    this.#workedAt = this.now();
  }

  /**
   * A call failed for want of Service Bus. Once nothing has gone through for `renewAfterMs`, the
   * client and its sender are dropped (the next call builds new ones, the old ones are closed in
   * the background) and true is returned.
   */
  failed(): boolean {
    if (!this.#client || this.now() - this.#workedAt < this.renewAfterMs) return false;
    void closeWithin(closeBoth(this.#sender, this.#client), REPLACED_CLOSE_MS);
    this.#client = undefined;
    this.#sender = undefined;
    return true;
  }

  async close(): Promise<void> {
    const sender = this.#sender;
    const client = this.#client;
    this.#sender = undefined;
    this.#client = undefined;
    await closeBoth(sender, client);
  }
}

/** The sender first, then its client; a failure to close leaves nothing to do. */
async function closeBoth(sender: ServiceBusSender | undefined, client: ServiceBusClient | undefined): Promise<void> {
  await sender?.close().catch(() => undefined);
  await client?.close().catch(() => undefined);
}

async function closeWithin(closing: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closing, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms).unref()))]);
  clearTimeout(timer);
}

/**
 * How long calls through the Service Bus client may keep failing, with none going through, before
 * it is built afresh: longer than one call's own retries (four tries of 10 s with backoff, about
 * 42 s), so that one slow call does not renew it.
 */
export const SERVICE_BUS_RENEW_AFTER_MS = 60_000;

const serviceBus = new RenewingServiceBus(() => createServiceBusClient(appConfig().serviceBus), SERVICE_BUS_RENEW_AFTER_MS);

export function ordersTopicSender(): ServiceBusSender {
  return serviceBus.ordersSender();
}

/**
 * Whether a call (a send, a peek, a receive) failed for want of Service Bus rather than for its
 * messages: the SDK marks those errors retryable, and once its retries are used up it throws them
 * together in an AggregateError. A batch too big to send is the messages' doing, although the SDK's
 * error for it (thrown before anything is sent) says retryable too: its messages are sent one by one.
 */
export function isServiceUnavailable(err: unknown): boolean {
  const errors: unknown[] = err instanceof AggregateError ? err.errors : [err];
  return (
    errors.length > 0 &&
    errors.every((e) => {
      const error = e as { retryable?: unknown; code?: unknown } | null;
      return error?.retryable === true && error.code !== 'MessageSizeExceeded';
    })
  );
}

/**
 * Runs one call through the process's Service Bus client and tells the client's keeper how it
 * went: through, or failed for want of Service Bus (see RenewingServiceBus).
 */
export const serviceBusCall: ServiceBusCall = async (use) => {
  try {
    const result = await use(serviceBus.client());
    serviceBus.worked();
    return result;
  } catch (err) {
    if (isServiceUnavailable(err)) serviceBus.failed();
    throw err;
  }
};

/** A way to make calls through a Service Bus client (tests pass their own client). */
export type ServiceBusCall = <T>(use: (client: ServiceBusClient) => Promise<T>) => Promise<T>;

/**
 * A receiver on one of the `orders` topic's subscriptions (or its dead-letter queue) for one call
 * through `call`, closed after it.
 */
export function withSubscriptionReceiver<T>(
  call: ServiceBusCall,
  subscription: string,
  options: ServiceBusReceiverOptions,
  use: (receiver: ServiceBusReceiver) => Promise<T>,
): Promise<T> {
  return call(async (client) => {
    const receiver = client.createReceiver(ORDERS_TOPIC, subscription, options);
    try {
      return await use(receiver);
    } finally {
      await receiver.close().catch(() => undefined);
    }
  });
}

/** A call through the Service Bus client went through. */
export function serviceBusWorked(): void {
  serviceBus.worked();
}

/** A call through the Service Bus client failed for want of Service Bus (see RenewingServiceBus). */
export function serviceBusFailed(): boolean {
  return serviceBus.failed();
}

/** Closes what was opened (tests, graceful shutdown). */
export async function closeClients(): Promise<void> {
  await serviceBus.close();
  cosmos?.dispose();
  cosmos = undefined;
  cosmosAgent?.destroy();
  cosmosAgent = undefined;
}
