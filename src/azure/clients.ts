/**
 * The process's Cosmos DB and Service Bus clients, built once from settings: keys or a connection
 * string when configured (local emulators), otherwise DefaultAzureCredential (managed identity).
 */
import { createDefaultHttpClient } from '@azure/core-rest-pipeline';
import { CosmosClient, type Container, type Database } from '@azure/cosmos';
import { RetryMode, ServiceBusClient, type ServiceBusSender } from '@azure/service-bus';
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
let serviceBus: ServiceBusClient | undefined;
let ordersSender: ServiceBusSender | undefined;

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

export function serviceBusClient(): ServiceBusClient {
  serviceBus ??= createServiceBusClient(appConfig().serviceBus);
  return serviceBus;
}

/** One long-lived sender for the `orders` topic: links are expensive to open per message. */
export function ordersTopicSender(): ServiceBusSender {
  ordersSender ??= serviceBusClient().createSender(ORDERS_TOPIC);
  return ordersSender;
}

/** Closes what was opened (tests, graceful shutdown). */
export async function closeClients(): Promise<void> {
  const sender = ordersSender;
  const sb = serviceBus;
  ordersSender = undefined;
  serviceBus = undefined;
  await sender?.close().catch(() => undefined);
  await sb?.close().catch(() => undefined);
  cosmos?.dispose();
  cosmos = undefined;
  cosmosAgent?.destroy();
  cosmosAgent = undefined;
}
