/**
 * Deployment parameters of the order saga stack: what differs between environments (names, region,
 * sizes, capacity modes). Read once from environment variables, validated, with documented defaults.
 */

export type PremiumPlanSku = 'EP1' | 'EP2' | 'EP3';
export type ServiceBusSku = 'Standard' | 'Premium';
export type CosmosCapacity = 'serverless' | 'provisioned';
export type NodeVersion = '20' | '22';

/** Entra ID app registration that App Service Authentication validates tokens for. */
export interface EntraAuth {
  clientId: string;
  tenantId: string;
}

export interface StackParameters {
  /** Short environment name (`dev`, `prod`): part of every resource name. */
  environment: string;
  location: string;
  /** Base of the globally unique names (storage, Service Bus, Cosmos, function app). */
  baseName: string;
  planSku: PremiumPlanSku;
  /** Instances kept running for the app at all times (no cold start). */
  alwaysReadyInstances: number;
  /** Instances warmed ahead of need while the app scales out. */
  preWarmedInstances: number;
  /** Upper bound of the plan's elastic scale-out (maximum burst). */
  maximumBurst: number;
  cosmosCapacity: CosmosCapacity;
  /** Autoscale ceiling in RU/s for the shared database throughput (provisioned only). */
  cosmosMaxThroughput: number;
  serviceBusSku: ServiceBusSku;
  /**
   * The Node.js major the app runs on: 22 by default. 20 reached its upstream end of life on
   * 2026-04-30 and stays selectable; the test suite passes on both.
   */
  nodeVersion: NodeVersion;
  /** App Service Authentication for the support routes; absent = off. */
  auth?: EntraAuth;
  /** Seed the demo catalog into the inventory container at start-up (existing SKUs are kept). */
  seedCatalog: boolean;
  /** Terraform state in an Azure blob container; absent = a local state file. */
  stateBackend?: StateBackend;
  /** Who the alerts email (an action group); empty = the alerts fire in Azure Monitor only. */
  alertEmails: string[];
}

/** An existing blob container for Terraform state, reached with the deployer's Entra login. */
export interface StateBackend {
  resourceGroupName: string;
  storageAccountName: string;
  containerName: string;
}

/** Every variable the stack reads, with its default: the README's parameter table mirrors this. */
export const PARAMETER_DEFAULTS = {
  ORDERS_ENV: 'dev',
  ORDERS_LOCATION: 'westeurope',
  ORDERS_NAME: 'ordersaga',
  ORDERS_PLAN_SKU: 'EP1',
  ORDERS_ALWAYS_READY: '1',
  ORDERS_PREWARMED: '1',
  ORDERS_MAX_BURST: '20',
  ORDERS_COSMOS_CAPACITY: 'serverless',
  ORDERS_COSMOS_MAX_THROUGHPUT: '1000',
  ORDERS_SERVICEBUS_SKU: 'Standard',
  ORDERS_NODE_VERSION: '22',
  ORDERS_AUTH_CLIENT_ID: '',
  ORDERS_AUTH_TENANT_ID: '',
  ORDERS_SEED_CATALOG: 'false',
  ORDERS_STATE_STORAGE_ACCOUNT: '',
  ORDERS_STATE_RESOURCE_GROUP: '',
  ORDERS_STATE_CONTAINER: 'tfstate',
  ORDERS_ALERT_EMAILS: '',
} as const;

export class ParameterError extends Error {
  override name = 'ParameterError';
}

// Elastic Premium on Linux scales out to 20 instances in most regions and 100 in a few; always-ready
// instances are capped at 20 by the platform.
const MAX_ALWAYS_READY = 20;
const MAX_BURST = 100;

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ParameterError(`${name}=${value}: expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function integer(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new ParameterError(`${name}=${value}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

function matching(name: string, value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value)) throw new ParameterError(`${name}=${value}: expected ${what}`);
  return value;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$/;

/** A comma-separated list of email addresses (empty: none). */
function emails(name: string, value: string): string[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const address of list) matching(name, address, EMAIL, 'comma-separated email addresses');
  return list;
}

/** Parameters from `env` (normally `process.env`); unset or empty variables take their default. */
export function readParameters(env: Record<string, string | undefined>): StackParameters {
  const get = (name: keyof typeof PARAMETER_DEFAULTS): string => {
    const v = env[name]?.trim();
    return v ? v : PARAMETER_DEFAULTS[name];
  };

  const alwaysReadyInstances = integer('ORDERS_ALWAYS_READY', get('ORDERS_ALWAYS_READY'), 1, MAX_ALWAYS_READY);
  const maximumBurst = integer('ORDERS_MAX_BURST', get('ORDERS_MAX_BURST'), 1, MAX_BURST);
  if (maximumBurst < alwaysReadyInstances) {
    throw new ParameterError(
      `ORDERS_MAX_BURST=${maximumBurst} is below ORDERS_ALWAYS_READY=${alwaysReadyInstances}: the plan could not hold its always-ready instances`,
    );
  }
  const preWarmedInstances = integer('ORDERS_PREWARMED', get('ORDERS_PREWARMED'), 0, MAX_ALWAYS_READY);

  const cosmosMaxThroughput = integer('ORDERS_COSMOS_MAX_THROUGHPUT', get('ORDERS_COSMOS_MAX_THROUGHPUT'), 1000, 1_000_000);
  if (cosmosMaxThroughput % 1000 !== 0) {
    throw new ParameterError(`ORDERS_COSMOS_MAX_THROUGHPUT=${cosmosMaxThroughput}: autoscale maximum must be a multiple of 1000 RU/s`);
  }

  const clientId = get('ORDERS_AUTH_CLIENT_ID');
  const tenantId = get('ORDERS_AUTH_TENANT_ID');
  if (Boolean(clientId) !== Boolean(tenantId)) {
    throw new ParameterError('ORDERS_AUTH_CLIENT_ID and ORDERS_AUTH_TENANT_ID go together: set both or neither');
  }

  const stateAccount = get('ORDERS_STATE_STORAGE_ACCOUNT');
  const stateGroup = get('ORDERS_STATE_RESOURCE_GROUP');
  if (Boolean(stateAccount) !== Boolean(stateGroup)) {
    throw new ParameterError('ORDERS_STATE_STORAGE_ACCOUNT and ORDERS_STATE_RESOURCE_GROUP go together: set both or neither');
  }

  return {
    // Short and plain: the environment ends up inside 24-character storage account names.
    environment: matching('ORDERS_ENV', get('ORDERS_ENV'), /^[a-z][a-z0-9]{0,7}$/, '1-8 lower-case letters or digits, starting with a letter'),
    location: matching('ORDERS_LOCATION', get('ORDERS_LOCATION'), /^[a-z][a-z0-9]+$/, 'an Azure region name such as westeurope'),
    baseName: matching('ORDERS_NAME', get('ORDERS_NAME'), /^[a-z][a-z0-9]{2,13}$/, '3-14 lower-case letters or digits, starting with a letter'),
    planSku: oneOf('ORDERS_PLAN_SKU', get('ORDERS_PLAN_SKU'), ['EP1', 'EP2', 'EP3'] as const),
    alwaysReadyInstances,
    preWarmedInstances,
    maximumBurst,
    cosmosCapacity: oneOf('ORDERS_COSMOS_CAPACITY', get('ORDERS_COSMOS_CAPACITY'), ['serverless', 'provisioned'] as const),
    cosmosMaxThroughput,
    serviceBusSku: oneOf('ORDERS_SERVICEBUS_SKU', get('ORDERS_SERVICEBUS_SKU'), ['Standard', 'Premium'] as const),
    nodeVersion: oneOf('ORDERS_NODE_VERSION', get('ORDERS_NODE_VERSION'), ['20', '22'] as const),
    auth: clientId
      ? {
          clientId: matching('ORDERS_AUTH_CLIENT_ID', clientId, GUID, 'an application (client) id GUID'),
          tenantId: matching('ORDERS_AUTH_TENANT_ID', tenantId, GUID, 'a directory (tenant) id GUID'),
        }
      : undefined,
    seedCatalog: oneOf('ORDERS_SEED_CATALOG', get('ORDERS_SEED_CATALOG'), ['true', 'false'] as const) === 'true',
    stateBackend: stateAccount
      ? { resourceGroupName: stateGroup, storageAccountName: stateAccount, containerName: get('ORDERS_STATE_CONTAINER') }
      : undefined,
    alertEmails: emails('ORDERS_ALERT_EMAILS', get('ORDERS_ALERT_EMAILS')),
  };
}
