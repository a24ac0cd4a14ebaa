/**
 * The order saga on Azure: Functions Elastic Premium, Service Bus, Cosmos DB, storage for the host and
 * the durable task hub, and monitoring, wired with the app's managed identity and no secrets.
 *
 * Service Bus entities and Cosmos containers are generated from src/topology.ts, the same module the
 * triggers and the local emulators read, so a change there changes the deployment.
 */
import { Construct } from 'constructs';
import { AzurermBackend, LocalBackend, TerraformOutput, TerraformStack } from 'cdktf';
// Deep imports: the provider's index pulls in ~1,500 modules, these few load in a fraction of that.
import { AzurermProvider } from '@cdktf/provider-azurerm/lib/provider';
import { ResourceGroup } from '@cdktf/provider-azurerm/lib/resource-group';
import { LogAnalyticsWorkspace } from '@cdktf/provider-azurerm/lib/log-analytics-workspace';
import { ApplicationInsights } from '@cdktf/provider-azurerm/lib/application-insights';
import { StorageAccount } from '@cdktf/provider-azurerm/lib/storage-account';
import { StorageContainer } from '@cdktf/provider-azurerm/lib/storage-container';
import { ServicebusNamespace } from '@cdktf/provider-azurerm/lib/servicebus-namespace';
import { ServicebusTopic } from '@cdktf/provider-azurerm/lib/servicebus-topic';
import { ServicebusSubscription } from '@cdktf/provider-azurerm/lib/servicebus-subscription';
import { ServicebusSubscriptionRule } from '@cdktf/provider-azurerm/lib/servicebus-subscription-rule';
import { ServicebusQueue } from '@cdktf/provider-azurerm/lib/servicebus-queue';
import { CosmosdbAccount } from '@cdktf/provider-azurerm/lib/cosmosdb-account';
import { CosmosdbSqlDatabase } from '@cdktf/provider-azurerm/lib/cosmosdb-sql-database';
import { CosmosdbSqlContainer } from '@cdktf/provider-azurerm/lib/cosmosdb-sql-container';
import { CosmosdbSqlRoleAssignment } from '@cdktf/provider-azurerm/lib/cosmosdb-sql-role-assignment';
import { ServicePlan } from '@cdktf/provider-azurerm/lib/service-plan';
import { LinuxFunctionApp, LinuxFunctionAppAuthSettingsV2 } from '@cdktf/provider-azurerm/lib/linux-function-app';
import { RoleAssignment } from '@cdktf/provider-azurerm/lib/role-assignment';
import { MonitorActionGroup } from '@cdktf/provider-azurerm/lib/monitor-action-group';
import { MonitorMetricAlert } from '@cdktf/provider-azurerm/lib/monitor-metric-alert';
import { MonitorScheduledQueryRulesAlertV2 } from '@cdktf/provider-azurerm/lib/monitor-scheduled-query-rules-alert-v2';
import { DEAD_LETTER_SWEEP_FAILED_EVENT, DEAD_LETTER_WITHOUT_ORDER_EVENT, ORDER_NEEDS_ATTENTION_EVENT } from '../src/log';
import {
  cosmosTopology as defaultCosmosTopology,
  serviceBusTopology as defaultServiceBusTopology,
  type CosmosTopology,
  type ServiceBusTopology,
  type SubscriptionRule,
} from '../src/topology';
import type { StackParameters } from './parameters';
import { httpRoutePrefix } from './repository';

/** Built-in Cosmos DB data-plane role "Cosmos DB Built-in Data Contributor". */
export const COSMOS_DATA_CONTRIBUTOR_ROLE_ID = '00000000-0000-0000-0000-000000000002';

/** Azure RBAC roles the function app's identity needs, per resource it talks to. */
// Data Owner rather than Data Receiver: the Service Bus extension reads each subscription's message
// count (a management read) to scale the app on its backlog; receiving alone cannot.
export const SERVICE_BUS_ROLES = ['Azure Service Bus Data Sender', 'Azure Service Bus Data Owner'] as const;
/**
 * Where the app's package lives: a private blob the app reads with its identity. Without an Azure
 * Files content share (it takes only an account key), Functions runs an app from an external
 * package URL. It has a storage account of its own, which the app may only read: the host's account
 * needs Storage Blob Data Owner, and in it the app's own code could replace its package.
 */
export const DEPLOYMENT_CONTAINER = 'deployments';
export const PACKAGE_BLOB = 'order-saga.zip';
// Blob: host leases and the durable task hub's large messages; Queue: durable work items;
// Table: durable history and instances. On the host's account only.
export const STORAGE_ROLES = [
  'Storage Blob Data Owner',
  'Storage Queue Data Contributor',
  'Storage Table Data Contributor',
] as const;
/** Lets the identity send telemetry to an Application Insights resource that refuses keys. */
export const MONITORING_ROLE = 'Monitoring Metrics Publisher';
/** What the app may do with its package's account: read the package, nothing more. */
export const PACKAGE_ROLE = 'Storage Blob Data Reader';
/**
 * The Node worker's flags, the same as local.settings.json's. By default V8 lets the old generation
 * grow to up to 4x what survived the last full collection, so after a burst the host held ~190 MB
 * of heap for ~50 MB live; at 2.5x it held ~140 MB, for a full collection every ~4 s at 100
 * orders/s instead of every ~6 s. (A heap limit of 1,536 MB gave ~2x but a full collection every
 * 1.3 s, each pausing 6-18 ms.)
 */
export const NODE_WORKER_ARGUMENTS = '--heap-growing-percent=150';

/**
 * The orders that ended in `attention`, one row per log line: the app logs the event with the
 * order's id (`src/services/compensationOutcome.ts`), and its log lines reach Application Insights as `traces` messages.
 */
export const ATTENTION_ALERT_QUERY = [
  'traces',
  `| where message has "${ORDER_NEEDS_ATTENTION_EVENT}"`,
  '| extend line = parse_json(message)',
  `| where tostring(line.event) == "${ORDER_NEEDS_ATTENTION_EVENT}"`,
  '| project timestamp, orderId = tostring(line.orderId), correlationId = tostring(line.correlationId)',
].join('\n');

/**
 * The app's log lines whose event is `<service>-<suffix>` (one per consumer's queue), with the
 * event and one more field to show; the alert counts them per event, so per queue.
 */
function perQueueEventQuery(suffix: string, field: string): string {
  return [
    'traces',
    `| where message has "${suffix}"`,
    '| extend line = parse_json(message)',
    `| where tostring(line.event) endswith "-${suffix}"`,
    `| project timestamp, event = tostring(line.event), ${field} = tostring(line.${field})`,
  ].join('\n');
}

/** Dead-lettered messages that named no order, kept in the dead-letter archive: one alert per queue. */
export const PARKED_DEAD_LETTER_ALERT_QUERY = perQueueEventQuery(DEAD_LETTER_WITHOUT_ORDER_EVENT, 'messageId');

/** The dead-letter sweep could not read a queue or record a message in it: one alert per queue. */
export const DEAD_LETTER_SWEEP_ALERT_QUERY = perQueueEventQuery(DEAD_LETTER_SWEEP_FAILED_EVENT, 'error');

/** More answers of 500-599 than this in five minutes means the order API is failing its callers. */
export const API_5XX_ALERT_THRESHOLD = 5;

export interface OrderSagaStackProps {
  parameters: StackParameters;
  /** Defaults to src/topology.ts; tests pass variants to show the stack follows the topology. */
  serviceBusTopology?: ServiceBusTopology;
  cosmosTopology?: CosmosTopology;
}

export interface ResourceNames {
  resourceGroup: string;
  logAnalytics: string;
  applicationInsights: string;
  storageAccount: string;
  /** The package's account; `sp` (storage, package) keeps it within storage's 24 characters as `st` does. */
  packageStorageAccount: string;
  serviceBusNamespace: string;
  cosmosAccount: string;
  plan: string;
  functionApp: string;
  actionGroup: string;
}

/** Names follow the Azure abbreviations (rg-, sb-, func-...); storage allows only 3-24 [a-z0-9]. */
export function resourceNames(p: Pick<StackParameters, 'baseName' | 'environment'>): ResourceNames {
  const suffix = `${p.baseName}-${p.environment}`;
  return {
    resourceGroup: `rg-${suffix}`,
    logAnalytics: `log-${suffix}`,
    applicationInsights: `appi-${suffix}`,
    storageAccount: `st${p.baseName}${p.environment}`,
    packageStorageAccount: `sp${p.baseName}${p.environment}`,
    serviceBusNamespace: `sb-${suffix}`,
    cosmosAccount: `cosmos-${suffix}`,
    plan: `plan-${suffix}`,
    functionApp: `func-${suffix}`,
    actionGroup: `ag-${suffix}`,
  };
}

export function stackName(p: Pick<StackParameters, 'environment'>): string {
  return `order-saga-${p.environment}`;
}

/** A construct id that stays valid and unique for any entity name (`$`, `/` and friends). */
function constructId(...parts: string[]): string {
  return parts.map((s) => s.replace(/[^A-Za-z0-9-]/g, '_')).join('-');
}

function ruleFilter(rule: SubscriptionRule) {
  if (rule.sqlFilter !== undefined && rule.correlationFilter !== undefined) {
    throw new Error(`subscription rule ${rule.name}: a rule has one filter, SQL or correlation, not both`);
  }
  if (rule.correlationFilter) {
    const { correlationId, messageId, label, contentType, properties = {} } = rule.correlationFilter;
    for (const [key, value] of Object.entries(properties)) {
      // azurerm models correlation properties as strings; a number or boolean would be deployed as a
      // string and silently stop matching messages that carry the typed value.
      if (typeof value !== 'string') {
        throw new Error(`subscription rule ${rule.name}: correlation property ${key} must be a string to deploy with azurerm`);
      }
    }
    return {
      filterType: 'CorrelationFilter',
      correlationFilter: {
        correlationId,
        messageId,
        label,
        contentType,
        properties: Object.keys(properties).length ? (properties as Record<string, string>) : undefined,
      },
    };
  }
  return { filterType: 'SqlFilter', sqlFilter: rule.sqlFilter ?? '1=1' };
}

export class OrderSagaStack extends TerraformStack {
  readonly names: ResourceNames;
  readonly functionApp: LinuxFunctionApp;

  constructor(scope: Construct, id: string, props: OrderSagaStackProps) {
    super(scope, id);
    const p = props.parameters;
    const busTopology = props.serviceBusTopology ?? defaultServiceBusTopology;
    const cosmosTopology = props.cosmosTopology ?? defaultCosmosTopology;
    const names = (this.names = resourceNames(p));
    const tags = { application: 'order-saga', environment: p.environment };

    if (p.stateBackend) {
      new AzurermBackend(this, { ...p.stateBackend, key: `${id}.tfstate`, useAzureadAuth: true });
    } else {
      // Relative to the directory terraform runs in (cdktf.out/stacks/<stack>): the repository root,
      // outside cdktf.out so a fresh synth never touches it. State holds secrets: never commit it.
      new LocalBackend(this, { path: `../../../terraform.${id}.tfstate` });
    }

    new AzurermProvider(this, 'azurerm', {
      features: [{}],
      // Shared keys are off on the storage account, so the provider itself must use Entra ID to
      // read the account's blob and queue properties.
      storageUseAzuread: true,
    });

    const group = new ResourceGroup(this, 'resource-group', { name: names.resourceGroup, location: p.location, tags });
    const placed = { resourceGroupName: group.name, location: group.location, tags };

    // --- Monitoring -----------------------------------------------------------------------------
    const workspace = new LogAnalyticsWorkspace(this, 'log-analytics', {
      ...placed,
      name: names.logAnalytics,
      sku: 'PerGB2018',
      retentionInDays: 30,
    });
    const insights = new ApplicationInsights(this, 'application-insights', {
      ...placed,
      name: names.applicationInsights,
      applicationType: 'Node.JS',
      workspaceId: workspace.id,
      // Ingestion only with an Entra token: the instrumentation key in the connection string then
      // identifies the resource but cannot be used to write to it.
      localAuthenticationDisabled: true,
    });

    // --- Storage for the Functions host and the durable task hub ---------------------------------
    const keylessStorage = {
      ...placed,
      accountKind: 'StorageV2',
      accountTier: 'Standard',
      accountReplicationType: 'LRS',
      minTlsVersion: 'TLS1_2',
      httpsTrafficOnlyEnabled: true,
      allowNestedItemsToBePublic: false,
      sharedAccessKeyEnabled: false,
      defaultToOauthAuthentication: true,
    };
    const storage = new StorageAccount(this, 'storage', { ...keylessStorage, name: names.storageAccount });

    // --- The app's package: an account of its own that the app can read and not write ---------
    const packageStorage = new StorageAccount(this, 'package-storage', { ...keylessStorage, name: names.packageStorageAccount });
    // Created through the management plane (the account takes no keys); read by the app's identity
    // through Storage Blob Data Reader below.
    const deployments = new StorageContainer(this, 'deployments', {
      name: DEPLOYMENT_CONTAINER,
      storageAccountId: packageStorage.id,
      containerAccessType: 'private',
    });

    // --- Service Bus ----------------------------------------------------------------------------
    const namespace = new ServicebusNamespace(this, 'servicebus', {
      ...placed,
      name: names.serviceBusNamespace,
      // Standard is the smallest tier with topics and duplicate detection.
      sku: p.serviceBusSku,
      capacity: p.serviceBusSku === 'Premium' ? 1 : 0,
      premiumMessagingPartitions: p.serviceBusSku === 'Premium' ? 1 : undefined,
      localAuthEnabled: false,
      minimumTlsVersion: '1.2',
    });

    for (const topic of busTopology.topics) {
      const topicResource = new ServicebusTopic(this, constructId('topic', topic.name), {
        name: topic.name,
        namespaceId: namespace.id,
        requiresDuplicateDetection: topic.requiresDuplicateDetection,
        duplicateDetectionHistoryTimeWindow: topic.duplicateDetectionHistoryTimeWindow,
        defaultMessageTtl: topic.defaultMessageTimeToLive,
      });
      for (const sub of topic.subscriptions) {
        const subscription = new ServicebusSubscription(this, constructId('subscription', topic.name, sub.name), {
          name: sub.name,
          topicId: topicResource.id,
          maxDeliveryCount: sub.maxDeliveryCount,
          lockDuration: sub.lockDuration,
          defaultMessageTtl: sub.defaultMessageTimeToLive,
          deadLetteringOnMessageExpiration: sub.deadLetteringOnMessageExpiration,
        });
        // Service Bus gives a new subscription a catch-all `$Default` rule and drops it when the
        // first explicit rule is written; until these rules exist nothing publishes (the app is
        // deployed after the infrastructure), so the catch-all never delivers a stray event.
        for (const rule of sub.rules) {
          new ServicebusSubscriptionRule(this, constructId('rule', topic.name, sub.name, rule.name), {
            name: rule.name,
            subscriptionId: subscription.id,
            ...ruleFilter(rule),
          });
        }
      }
    }
    for (const queue of busTopology.queues) {
      new ServicebusQueue(this, constructId('queue', queue.name), {
        name: queue.name,
        namespaceId: namespace.id,
        maxDeliveryCount: queue.maxDeliveryCount,
        lockDuration: queue.lockDuration,
        defaultMessageTtl: queue.defaultMessageTimeToLive,
        deadLetteringOnMessageExpiration: queue.deadLetteringOnMessageExpiration,
        requiresDuplicateDetection: queue.requiresDuplicateDetection,
        duplicateDetectionHistoryTimeWindow: queue.duplicateDetectionHistoryTimeWindow,
      });
    }

    // --- Cosmos DB ------------------------------------------------------------------------------
    const serverless = p.cosmosCapacity === 'serverless';
    const cosmos = new CosmosdbAccount(this, 'cosmos', {
      ...placed,
      name: names.cosmosAccount,
      offerType: 'Standard',
      kind: 'GlobalDocumentDB',
      // Session: each instance's client reads its own writes. Another instance (a GET of the
      // statusUrl that lands elsewhere, a monitor activity) may for a moment read a replica
      // behind the write; every write the app makes is conditional or idempotent and is decided
      // by the partition's primary, so such a read costs at most a 404 or a retry, never a lost update.
      consistencyPolicy: { consistencyLevel: 'Session' },
      geoLocation: [{ location: group.location, failoverPriority: 0 }],
      capabilities: serverless ? [{ name: 'EnableServerless' }] : [],
      localAuthenticationDisabled: true,
      minimalTlsVersion: 'Tls12',
    });
    const database = new CosmosdbSqlDatabase(this, 'cosmos-database', {
      name: cosmosTopology.databaseName,
      accountName: cosmos.name,
      resourceGroupName: group.name,
      // Provisioned: one autoscaled budget shared by all containers (the small ones sit idle most of
      // the time). Serverless accounts take no throughput settings at all.
      autoscaleSettings: serverless ? undefined : { maxThroughput: p.cosmosMaxThroughput },
    });
    for (const container of cosmosTopology.containers) {
      new CosmosdbSqlContainer(this, constructId('cosmos-container', container.name), {
        name: container.name,
        accountName: cosmos.name,
        databaseName: database.name,
        resourceGroupName: group.name,
        partitionKeyPaths: [container.partitionKeyPath],
        partitionKeyVersion: 2,
      });
    }

    // --- Compute --------------------------------------------------------------------------------
    const plan = new ServicePlan(this, 'plan', {
      ...placed,
      name: names.plan,
      osType: 'Linux',
      skuName: p.planSku,
      // The plan keeps at least the app's always-ready instances and bursts up to this many.
      workerCount: p.alwaysReadyInstances,
      maximumElasticWorkerCount: p.maximumBurst,
    });

    const app = (this.functionApp = new LinuxFunctionApp(this, 'function-app', {
      ...placed,
      name: names.functionApp,
      servicePlanId: plan.id,
      functionsExtensionVersion: '~4',
      identity: { type: 'SystemAssigned' },
      // The provider writes `AzureWebJobsStorage__accountName` from these two (and strips it from
      // app_settings on read, so it must not be repeated there).
      storageAccountName: storage.name,
      storageUsesManagedIdentity: true,
      // No Azure Files content share: it only takes an account key. The app runs from its package in
      // blob storage instead (WEBSITE_RUN_FROM_PACKAGE below).
      contentShareForceDisabled: true,
      httpsOnly: true,
      ftpPublishBasicAuthenticationEnabled: false,
      webdeployPublishBasicAuthenticationEnabled: false,
      siteConfig: {
        applicationStack: { nodeVersion: p.nodeVersion },
        // Not a credential (ingestion needs an Entra token, see localAuthenticationDisabled); the
        // provider keeps it here and writes APPLICATIONINSIGHTS_CONNECTION_STRING itself.
        applicationInsightsConnectionString: insights.connectionString,
        elasticInstanceMinimum: p.alwaysReadyInstances,
        preWarmedInstanceCount: p.preWarmedInstances,
        appScaleLimit: p.maximumBurst,
        minimumTlsVersion: '1.2',
        ftpsState: 'Disabled',
        http2Enabled: true,
      },
      appSettings: {
        FUNCTIONS_WORKER_RUNTIME: 'node',
        languageWorkers__node__arguments: NODE_WORKER_ARGUMENTS,
        // The package is built with its production node_modules; no build on the server. Fetched
        // with the app's system-assigned identity (the default for a blob URL).
        WEBSITE_RUN_FROM_PACKAGE: `https://${packageStorage.name}.blob.core.windows.net/${deployments.name}/${PACKAGE_BLOB}`,
        SCM_DO_BUILD_DURING_DEPLOYMENT: 'false',
        // Identity-based connections: the system-assigned identity is the default credential on
        // Azure, so no `__credential` / `__clientId` settings are needed.
        ServiceBusConnection__fullyQualifiedNamespace: `${namespace.name}.servicebus.windows.net`,
        CosmosDbConnection__accountEndpoint: cosmos.endpoint,
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD',
        // Fault injection (simulate.billingFailures) is a local and test tool; never on in Azure.
        FAULT_INJECTION_ENABLED: 'false',
        // A fresh account has an empty catalog; a demo environment can start with the sample one.
        SEED_CATALOG: String(p.seedCatalog),
      },
      authSettingsV2: p.auth ? supportAuth(p.auth) : undefined,
    }));

    // --- Role assignments for the app's identity --------------------------------------------------
    const principalId = app.identity.principalId;
    const grant = (id: string, scope: string, roleDefinitionName: string) =>
      new RoleAssignment(this, id, { scope, roleDefinitionName, principalId, principalType: 'ServicePrincipal' });
    for (const role of SERVICE_BUS_ROLES) grant(constructId('role', role), namespace.id, role);
    for (const role of STORAGE_ROLES) grant(constructId('role', role), storage.id, role);
    grant(constructId('role', 'package', PACKAGE_ROLE), packageStorage.id, PACKAGE_ROLE);
    grant(constructId('role', MONITORING_ROLE), insights.id, MONITORING_ROLE);

    // Cosmos data-plane RBAC is separate from Azure RBAC and has its own assignment resource.
    new CosmosdbSqlRoleAssignment(this, 'cosmos-data-contributor', {
      resourceGroupName: group.name,
      accountName: cosmos.name,
      roleDefinitionId: `${cosmos.id}/sqlRoleDefinitions/${COSMOS_DATA_CONTRIBUTOR_ROLE_ID}`,
      principalId,
      scope: cosmos.id,
    });

    // --- Alerts ---------------------------------------------------------------------------------
    // What someone must hear about: an order left for a person, an API that fails its callers, and
    // messages left dead-lettered or naming no order. Without email addresses they still fire in
    // Azure Monitor.
    const actionGroup = p.alertEmails.length
      ? new MonitorActionGroup(this, 'alert-action-group', {
          name: names.actionGroup,
          resourceGroupName: group.name,
          shortName: 'orders',
          emailReceiver: p.alertEmails.map((emailAddress, i) => ({ name: `email-${i + 1}`, emailAddress, useCommonAlertSchema: true })),
          tags,
        })
      : undefined;
    // A log search over the app's log lines, every 5 minutes over the last 15 (a line that arrives
    // late is still seen); stateful (auto-mitigated), so one subject stays one alert however many
    // windows it appears in.
    const logAlert = (id: string, alert: { name: string; displayName: string; description: string; severity: number; query: string; per: string }) =>
      new MonitorScheduledQueryRulesAlertV2(this, id, {
        ...placed,
        name: alert.name,
        displayName: alert.displayName,
        description: alert.description,
        scopes: [insights.id],
        severity: alert.severity,
        evaluationFrequency: 'PT5M',
        windowDuration: 'PT15M',
        autoMitigationEnabled: true,
        criteria: [
          {
            query: alert.query,
            timeAggregationMethod: 'Count',
            operator: 'GreaterThan',
            threshold: 0,
            dimension: [{ name: alert.per, operator: 'Include', values: ['*'] }],
            failingPeriods: { minimumFailingPeriodsToTriggerAlert: 1, numberOfEvaluationPeriods: 1 },
          },
        ],
        action: actionGroup ? { actionGroups: [actionGroup.id] } : undefined,
      });
    logAlert('alert-orders-need-attention', {
      name: 'orders-need-attention',
      displayName: 'Orders need a person',
      description:
        'An order ended in attention: automatic recovery and compensation could not finish. ' +
        'Open it in the support portal (/api/portal/#/orders/<orderId>), see its timeline, and act. One alert per order.',
      severity: 1,
      query: ATTENTION_ALERT_QUERY,
      per: 'orderId',
    });
    logAlert('alert-dead-letters-parked', {
      name: 'dead-letters-parked',
      displayName: 'Dead-lettered messages that name no order',
      description:
        'A consumer\'s dead-letter queue held a message that names no order (malformed, or for an order that does not exist). ' +
        'It was kept in the Cosmos DB container deadletters (source, messageId, reason, body): find out who sent it. One alert per queue.',
      severity: 2,
      query: PARKED_DEAD_LETTER_ALERT_QUERY,
      per: 'event',
    });
    logAlert('alert-dead-letter-sweep-failing', {
      name: 'dead-letter-sweep-failing',
      displayName: 'Dead-letter queues not read',
      description:
        'The deadLetterSweeper function could not read a consumer\'s dead-letter queue, or could not record a message in it (the log line ' +
        'names the error, and the message by sequence number and id). Until it can, what Service Bus dead-lettered may be on no order, ' +
        'and finished orders\' messages stay in the queue. One alert per queue.',
      severity: 2,
      query: DEAD_LETTER_SWEEP_ALERT_QUERY,
      per: 'event',
    });
    const metricAction = actionGroup ? [{ actionGroupId: actionGroup.id }] : undefined;
    new MonitorMetricAlert(this, 'alert-api-5xx', {
      name: 'order-api-failing',
      resourceGroupName: group.name,
      description:
        `The function app answered more than ${API_5XX_ALERT_THRESHOLD} requests with 5xx in five minutes. ` +
        'Bad input gets 4xx, so this is the app or a dependency (Cosmos DB, Service Bus) failing: see failures in Application Insights.',
      scopes: [app.id],
      severity: 1,
      frequency: 'PT1M',
      windowSize: 'PT5M',
      criteria: [
        { metricNamespace: 'Microsoft.Web/sites', metricName: 'Http5xx', aggregation: 'Total', operator: 'GreaterThan', threshold: API_5XX_ALERT_THRESHOLD },
      ],
      action: metricAction,
      tags,
    });
    new MonitorMetricAlert(this, 'alert-dead-letters', {
      name: 'dead-letters-waiting',
      resourceGroupName: group.name,
      description:
        'Messages have stayed in a dead-letter queue for 30 minutes. In a consumer\'s queue the deadLetterSweeper function takes a ' +
        'message out once its order is completed or cancelled; what stays is poison (listed under Unreadable messages in the support ' +
        'portal: find who sent it, then purge it with Service Bus Explorer; one enqueued over an hour ago may be deferred, received by ' +
        'its sequence number) or the message of an order in attention (act on the order), ' +
        'or that function is failing (see its logs). Any other queue holds messages nothing processes: inspect them, then resubmit or purge.',
      scopes: [namespace.id],
      severity: 2,
      frequency: 'PT5M',
      windowSize: 'PT30M',
      criteria: [
        {
          metricNamespace: 'Microsoft.ServiceBus/namespaces',
          metricName: 'DeadletteredMessages',
          // The fewest seen in the window: a billing message waiting out its order's requeues never counts.
          aggregation: 'Minimum',
          operator: 'GreaterThan',
          threshold: 0,
          dimension: [{ name: 'EntityName', operator: 'Include', values: ['*'] }],
        },
      ],
      action: metricAction,
      tags,
    });

    // --- Outputs --------------------------------------------------------------------------------
    new TerraformOutput(this, 'api_base_url', {
      value: `https://${app.defaultHostname}/${httpRoutePrefix()}`,
      description: 'Base URL of the order API (POST /orders, GET /orders/{id}, the portal at /portal)',
    });
    new TerraformOutput(this, 'function_app_name', { value: app.name });
    new TerraformOutput(this, 'storage_account_name', { value: storage.name, description: "The Functions host's and the durable task hub's storage" });
    new TerraformOutput(this, 'package_storage_account_name', {
      value: packageStorage.name,
      description: `Its ${DEPLOYMENT_CONTAINER} container holds the app's package (WEBSITE_RUN_FROM_PACKAGE)`,
    });
    new TerraformOutput(this, 'resource_group_name', { value: group.name });
    new TerraformOutput(this, 'servicebus_namespace_fqdn', {
      value: `${namespace.name}.servicebus.windows.net`,
    });
    new TerraformOutput(this, 'cosmos_endpoint', { value: cosmos.endpoint });
  }
}

/**
 * App Service Authentication with Entra ID that identifies callers without requiring sign-in: the
 * public order API stays anonymous, and the support routes check the `support` app role in the
 * `x-ms-client-principal` header the platform adds for signed-in callers.
 */
function supportAuth(auth: { clientId: string; tenantId: string }): LinuxFunctionAppAuthSettingsV2 {
  return {
    authEnabled: true,
    requireAuthentication: false,
    unauthenticatedAction: 'AllowAnonymous',
    defaultProvider: 'azureactivedirectory',
    requireHttps: true,
    activeDirectoryV2: {
      clientId: auth.clientId,
      tenantAuthEndpoint: `https://login.microsoftonline.com/${auth.tenantId}/v2.0`,
      // ID tokens (portal sign-in) carry the client id as audience, API tokens the app id URI.
      allowedAudiences: [`api://${auth.clientId}`, auth.clientId],
    },
    login: { tokenStoreEnabled: false },
  };
}
