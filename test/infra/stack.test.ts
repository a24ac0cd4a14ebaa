// The synthesized Terraform for the order saga: what gets deployed, with which settings, and that
// the messaging and storage layout is exactly src/topology.ts.
import { Testing } from 'cdktf';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import 'cdktf/lib/testing/adapters/jest';
import { LinuxFunctionApp } from '@cdktf/provider-azurerm/lib/linux-function-app';
import { ServicePlan } from '@cdktf/provider-azurerm/lib/service-plan';
import { readParameters, ParameterError } from '../../infra/parameters';
import {
  API_5XX_ALERT_THRESHOLD,
  ATTENTION_ALERT_QUERY,
  PARKED_DEAD_LETTER_ALERT_QUERY,
  DEAD_LETTER_SWEEP_ALERT_QUERY,
  COSMOS_DATA_CONTRIBUTOR_ROLE_ID,
  DEPLOYMENT_CONTAINER,
  OrderSagaStack,
  PACKAGE_BLOB,
  type OrderSagaStackProps,
} from '../../infra/stack';
import { createLogger, DEAD_LETTER_SWEEP_FAILED_EVENT, DEAD_LETTER_WITHOUT_ORDER_EVENT, ORDER_NEEDS_ATTENTION_EVENT } from '../../src/log';
import { cosmosTopology, serviceBusTopology, SERVICES, type ServiceBusTopology } from '../../src/topology';
import localSettings from '../../local.settings.json';

Testing.setupJest();

// `Testing.app()` makes a temporary output directory per app and never removes it: give every app
// one under a directory this file removes.
const outdirs = fs.mkdtempSync(path.join(os.tmpdir(), 'order-saga-stack-test-'));
afterAll(() => fs.rmSync(outdirs, { recursive: true, force: true }));
let apps = 0;

type Block = Record<string, any>;
interface Synthesized {
  terraform: Block;
  provider: Record<string, Block[]>;
  resource: Record<string, Record<string, Block>>;
  output: Record<string, { value: string }>;
}

function synth(env: Record<string, string> = {}, topology: Partial<OrderSagaStackProps> = {}) {
  const stack = new OrderSagaStack(Testing.app({ outdir: path.join(outdirs, String(++apps)) }), 'order-saga-test', {
    parameters: readParameters(env),
    ...topology,
  });
  const json = Testing.synth(stack);
  return { json, tf: JSON.parse(json) as Synthesized };
}

const all = (tf: Synthesized, type: string): Block[] => Object.values(tf.resource[type] ?? {});
const one = (tf: Synthesized, type: string): Block => {
  const found = all(tf, type);
  expect(found).toHaveLength(1);
  return found[0];
};
/** `${azurerm_x.<construct id>.attr}` for the single resource of a type. */
const ref = (tf: Synthesized, type: string, attribute: string) => {
  const ids = Object.keys(tf.resource[type] ?? {});
  expect(ids).toHaveLength(1);
  return `\${${type}.${ids[0]}.${attribute}}`;
};
/** `${azurerm_x.<id>.attr}` for a resource of a type that has several. */
const refTo = (tf: Synthesized, type: string, id: string, attribute: string) => {
  expect(tf.resource[type]?.[id]).toBeDefined();
  return `\${${type}.${id}.${attribute}}`;
};
/** Resolves a `${type.id.attr}` reference to the resource block it points at. */
const target = (tf: Synthesized, reference: string): Block => {
  const m = /^\$\{([a-z_]+)\.([^.]+)\.[a-z_]+\}$/.exec(reference);
  if (!m) throw new Error(`not a plain reference: ${reference}`);
  return tf.resource[m[1]][m[2]];
};

const defaults = synth();
const app = one(defaults.tf, 'azurerm_linux_function_app');

describe('resources at the default parameters', () => {
  it('puts everything in one resource group in westeurope, named for the dev environment', () => {
    const group = one(defaults.tf, 'azurerm_resource_group');
    expect(group).toMatchObject({ name: 'rg-ordersaga-dev', location: 'westeurope' });
    for (const [type, byId] of Object.entries(defaults.tf.resource)) {
      for (const block of Object.values(byId)) {
        if ('resource_group_name' in block) expect([type, block.resource_group_name]).toEqual([type, ref(defaults.tf, 'azurerm_resource_group', 'name')]);
      }
    }
  });

  it('sends telemetry to a workspace-based Application Insights that accepts only Entra ID ingestion', () => {
    const insights = one(defaults.tf, 'azurerm_application_insights');
    expect(insights.workspace_id).toBe(ref(defaults.tf, 'azurerm_log_analytics_workspace', 'id'));
    expect(insights.local_authentication_disabled).toBe(true);
    expect(app.site_config.application_insights_connection_string).toBe(
      ref(defaults.tf, 'azurerm_application_insights', 'connection_string'),
    );
    expect(app.app_settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING).toBe('Authorization=AAD');
  });

  it('keeps host and durable task hub storage, and the package in an account of its own, without shared keys', () => {
    const accounts = defaults.tf.resource.azurerm_storage_account;
    expect(Object.keys(accounts).sort()).toEqual(['package-storage', 'storage']);
    for (const storage of Object.values(accounts)) {
      expect(storage).toMatchObject({ shared_access_key_enabled: false, default_to_oauth_authentication: true, min_tls_version: 'TLS1_2', allow_nested_items_to_be_public: false });
      expect(storage.name).toMatch(/^[a-z0-9]{3,24}$/);
    }
    // The provider turns these into AzureWebJobsStorage__accountName (identity form).
    expect(app.storage_account_name).toBe(refTo(defaults.tf, 'azurerm_storage_account', 'storage', 'name'));
    expect(app.storage_uses_managed_identity).toBe(true);
    expect(app.storage_account_access_key).toBeUndefined();
    expect(app.content_share_force_disabled).toBe(true);
    // Without the content share the app runs from its package in a private blob container, which
    // it reads with its identity (Storage Blob Data Reader on the package's account, below).
    const container = one(defaults.tf, 'azurerm_storage_container');
    expect(container).toMatchObject({
      name: DEPLOYMENT_CONTAINER,
      container_access_type: 'private',
      storage_account_id: refTo(defaults.tf, 'azurerm_storage_account', 'package-storage', 'id'),
    });
    expect(app.app_settings.WEBSITE_RUN_FROM_PACKAGE).toBe(
      `https://${refTo(defaults.tf, 'azurerm_storage_account', 'package-storage', 'name')}.blob.core.windows.net/${ref(defaults.tf, 'azurerm_storage_container', 'name')}/${PACKAGE_BLOB}`,
    );
    expect(defaults.tf.output.storage_account_name.value).toBe(refTo(defaults.tf, 'azurerm_storage_account', 'storage', 'name'));
    expect(defaults.tf.output.package_storage_account_name.value).toBe(refTo(defaults.tf, 'azurerm_storage_account', 'package-storage', 'name'));
    // ...and the provider must itself reach the keyless account with Entra ID.
    expect(defaults.tf.provider.azurerm[0].storage_use_azuread).toBe(true);
  });

  it('uses a Standard Service Bus namespace (duplicate detection needs it) with local auth off', () => {
    expect(one(defaults.tf, 'azurerm_servicebus_namespace')).toMatchObject({ sku: 'Standard', local_auth_enabled: false });
  });

  it('uses a serverless Cosmos DB account with keys disabled', () => {
    const cosmos = one(defaults.tf, 'azurerm_cosmosdb_account');
    expect(cosmos.capabilities).toEqual([{ name: 'EnableServerless' }]);
    expect(cosmos.local_authentication_disabled).toBe(true);
    expect(one(defaults.tf, 'azurerm_cosmosdb_sql_database').autoscale_settings).toBeUndefined();
    // One region: the app's Cosmos client runs without endpoint discovery (src/azure/clients.ts),
    // which a second region would want back.
    expect(cosmos.geo_location).toEqual([expect.objectContaining({ failover_priority: 0 })]);
  });

  it('runs on a Linux Elastic Premium EP1 plan with one always-ready instance and a burst of 20', () => {
    expect(defaults.json).toHaveResourceWithProperties(ServicePlan, {
      os_type: 'Linux',
      sku_name: 'EP1',
      worker_count: 1,
      maximum_elastic_worker_count: 20,
    });
    expect(app.service_plan_id).toBe(ref(defaults.tf, 'azurerm_service_plan', 'id'));
    expect(app.site_config).toMatchObject({ elastic_instance_minimum: 1, pre_warmed_instance_count: 1, app_scale_limit: 20 });
  });

  it('runs the app on Functions v4, Node 22, with a system-assigned identity and HTTPS only', () => {
    expect(defaults.json).toHaveResourceWithProperties(LinuxFunctionApp, {
      functions_extension_version: '~4',
      https_only: true,
      identity: { type: 'SystemAssigned' },
      site_config: expect.objectContaining({ application_stack: { node_version: '22' } }),
    });
  });

  it('configures the app with identity-based connections and fault injection off', () => {
    expect(app.app_settings).toMatchObject({
      FUNCTIONS_WORKER_RUNTIME: 'node',
      // The Node worker runs with the flags it runs with locally.
      languageWorkers__node__arguments: localSettings.Values.languageWorkers__node__arguments,
      ServiceBusConnection__fullyQualifiedNamespace: `${ref(defaults.tf, 'azurerm_servicebus_namespace', 'name')}.servicebus.windows.net`,
      CosmosDbConnection__accountEndpoint: ref(defaults.tf, 'azurerm_cosmosdb_account', 'endpoint'),
      FAULT_INJECTION_ENABLED: 'false',
      SEED_CATALOG: 'false',
    });
    // The connection-string forms the local emulators use must never reach Azure.
    expect(app.app_settings).not.toHaveProperty('ServiceBusConnection');
    expect(app.app_settings).not.toHaveProperty('CosmosDbConnection__accountKey');
    expect(app.app_settings).not.toHaveProperty('AzureWebJobsStorage');
    // The local stand-in for a signed-in support user would make anyone a support user on Azure.
    expect(app.app_settings).not.toHaveProperty('SUPPORT_DEV_PRINCIPAL');
  });

  it("grants the app's identity the data roles it needs, each on the resource it uses", () => {
    const principal = `\${azurerm_linux_function_app.${Object.keys(defaults.tf.resource.azurerm_linux_function_app)[0]}.identity[0].principal_id}`;
    const assignments = all(defaults.tf, 'azurerm_role_assignment');
    expect(assignments).toHaveLength(7);
    for (const r of assignments) expect(r).toMatchObject({ principal_id: principal, principal_type: 'ServicePrincipal' });
    const hostStorage = refTo(defaults.tf, 'azurerm_storage_account', 'storage', 'id');
    expect(new Map(assignments.map((r) => [r.role_definition_name, r.scope]))).toEqual(
      new Map([
        ['Azure Service Bus Data Sender', ref(defaults.tf, 'azurerm_servicebus_namespace', 'id')],
        // Owner, not only Receiver: the trigger reads its subscriptions' message counts to scale.
        ['Azure Service Bus Data Owner', ref(defaults.tf, 'azurerm_servicebus_namespace', 'id')],
        ['Storage Blob Data Owner', hostStorage],
        ['Storage Queue Data Contributor', hostStorage],
        ['Storage Table Data Contributor', hostStorage],
        // Its package: read, never write (the host's account, where it is Owner, holds no code).
        ['Storage Blob Data Reader', refTo(defaults.tf, 'azurerm_storage_account', 'package-storage', 'id')],
        ['Monitoring Metrics Publisher', ref(defaults.tf, 'azurerm_application_insights', 'id')],
      ]),
    );
    const cosmosGrant = one(defaults.tf, 'azurerm_cosmosdb_sql_role_assignment');
    const cosmosId = ref(defaults.tf, 'azurerm_cosmosdb_account', 'id');
    expect(cosmosGrant).toMatchObject({
      principal_id: principal,
      scope: cosmosId,
      account_name: ref(defaults.tf, 'azurerm_cosmosdb_account', 'name'),
      role_definition_id: `${cosmosId}/sqlRoleDefinitions/${COSMOS_DATA_CONTRIBUTOR_ROLE_ID}`,
    });
    expect(COSMOS_DATA_CONTRIBUTOR_ROLE_ID).toBe('00000000-0000-0000-0000-000000000002');
  });

  it('outputs the API base URL (with host.json routePrefix), namespace, Cosmos endpoint and app name', () => {
    const hostname = ref(defaults.tf, 'azurerm_linux_function_app', 'default_hostname');
    const routePrefix = require('../../host.json').extensions.http.routePrefix;
    expect(defaults.tf.output.api_base_url.value).toBe(`https://${hostname}/${routePrefix}`);
    expect(defaults.tf.output.servicebus_namespace_fqdn.value).toBe(
      `${ref(defaults.tf, 'azurerm_servicebus_namespace', 'name')}.servicebus.windows.net`,
    );
    expect(defaults.tf.output.cosmos_endpoint.value).toBe(ref(defaults.tf, 'azurerm_cosmosdb_account', 'endpoint'));
    expect(defaults.tf.output.function_app_name.value).toBe(ref(defaults.tf, 'azurerm_linux_function_app', 'name'));
  });

  it('pins the azurerm provider version the TypeScript bindings were generated for', () => {
    expect(defaults.tf.terraform.required_providers.azurerm).toEqual({ source: 'azurerm', version: '4.55.0' });
  });
});

describe('alerts', () => {
  const metricAlert = (tf: Synthesized, name: string): Block => {
    const found = all(tf, 'azurerm_monitor_metric_alert').filter((a) => a.name === name);
    expect(found).toHaveLength(1);
    return found[0];
  };

  const queryAlert = (tf: Synthesized, name: string): Block => {
    const found = all(tf, 'azurerm_monitor_scheduled_query_rules_alert_v2').filter((a) => a.name === name);
    expect(found).toHaveLength(1);
    return found[0];
  };

  /** A log search every 5 minutes over the last 15 that fires per `per` whenever `query` finds a line. */
  const expectLogAlert = (name: string, severity: number, query: string, per: string) => {
    const rule = queryAlert(defaults.tf, name);
    expect(rule).toMatchObject({
      scopes: [ref(defaults.tf, 'azurerm_application_insights', 'id')],
      severity,
      evaluation_frequency: 'PT5M',
      window_duration: 'PT15M',
      auto_mitigation_enabled: true,
    });
    expect(rule.criteria).toEqual([
      expect.objectContaining({
        query,
        time_aggregation_method: 'Count',
        operator: 'GreaterThan',
        threshold: 0,
        dimension: [{ name: per, operator: 'Include', values: ['*'] }],
      }),
    ]);
  };

  it('keeps every trace its log alerts search: host.json samples no traces', () => {
    expect(ATTENTION_ALERT_QUERY).toMatch(/^traces\b/);
    expect(PARKED_DEAD_LETTER_ALERT_QUERY).toMatch(/^traces\b/);
    expect(DEAD_LETTER_SWEEP_ALERT_QUERY).toMatch(/^traces\b/);
    const sampling = require('../../host.json').logging.applicationInsights.samplingSettings;
    expect(sampling.isEnabled === false || String(sampling.excludedTypes).split(';').includes('Trace')).toBe(true);
  });

  it('raises one alert per order that ends in attention, from the event the app logs', () => {
    expectLogAlert('orders-need-attention', 1, ATTENTION_ALERT_QUERY, 'orderId');
    // The query looks for the line the activities write: its event name and its orderId field.
    const lines: string[] = [];
    createLogger({ info: () => undefined, warn: (line) => lines.push(String(line)), error: () => undefined })
      .with({ orderId: 'order-1', correlationId: 'c-1' })
      .warn(ORDER_NEEDS_ATTENTION_EVENT, { reason: 'compensation could not finish' });
    const line = JSON.parse(lines[0]!);
    expect(ATTENTION_ALERT_QUERY).toContain(`message has "${line.event}"`);
    expect(ATTENTION_ALERT_QUERY).toContain(`tostring(line.event) == "${line.event}"`);
    expect(line.orderId).toBe('order-1');
    expect(ATTENTION_ALERT_QUERY).toContain('orderId = tostring(line.orderId)');
  });

  /** The query finds the line the app logs as `<service>-<suffix>` for every consumer's queue, and shows `field`. */
  const expectPerQueueEvent = (query: string, suffix: string, field: string, value: string) => {
    for (const service of SERVICES) {
      const lines: string[] = [];
      createLogger({ info: () => undefined, warn: () => undefined, error: (line) => lines.push(String(line)) }).error(`${service}-${suffix}`, new Error(value), {
        messageId: value,
      });
      const line = JSON.parse(lines[0]!);
      expect(line.event).toBe(`${service}-${suffix}`);
      expect(query).toContain(`message has "${suffix}"`);
      expect(query).toContain(`tostring(line.event) endswith "-${suffix}"`);
      expect(query).toContain(`${field} = tostring(line.${field})`);
      expect(line[field]).toBe(value);
    }
  };

  it('raises one alert per dead-letter queue that held a message naming no order, from the event the app logs', () => {
    expectLogAlert('dead-letters-parked', 2, PARKED_DEAD_LETTER_ALERT_QUERY, 'event');
    // Logged when poison is first kept.
    expect(DEAD_LETTER_WITHOUT_ORDER_EVENT).toBe('deadletter-without-order');
    expectPerQueueEvent(PARKED_DEAD_LETTER_ALERT_QUERY, DEAD_LETTER_WITHOUT_ORDER_EVENT, 'messageId', 'm-1');
  });

  it('raises one alert per dead-letter queue the sweep cannot read or record from, from the event it logs', () => {
    expectLogAlert('dead-letter-sweep-failing', 2, DEAD_LETTER_SWEEP_ALERT_QUERY, 'event');
    expect(DEAD_LETTER_SWEEP_FAILED_EVENT).toBe('deadletter-sweep-failed');
    expectPerQueueEvent(DEAD_LETTER_SWEEP_ALERT_QUERY, DEAD_LETTER_SWEEP_FAILED_EVENT, 'error', 'Request size is too large');
  });

  it('alerts when the API answers 5xx, and when messages stay dead-lettered', () => {
    expect(metricAlert(defaults.tf, 'order-api-failing')).toMatchObject({
      scopes: [ref(defaults.tf, 'azurerm_linux_function_app', 'id')],
      severity: 1,
      window_size: 'PT5M',
      criteria: [
        {
          metric_namespace: 'Microsoft.Web/sites',
          metric_name: 'Http5xx',
          aggregation: 'Total',
          operator: 'GreaterThan',
          threshold: API_5XX_ALERT_THRESHOLD,
        },
      ],
    });
    expect(metricAlert(defaults.tf, 'dead-letters-waiting')).toMatchObject({
      scopes: [ref(defaults.tf, 'azurerm_servicebus_namespace', 'id')],
      window_size: 'PT30M',
      criteria: [
        {
          metric_namespace: 'Microsoft.ServiceBus/namespaces',
          metric_name: 'DeadletteredMessages',
          aggregation: 'Minimum',
          operator: 'GreaterThan',
          threshold: 0,
          dimension: [{ name: 'EntityName', operator: 'Include', values: ['*'] }],
        },
      ],
    });
  });

  it('emails nobody by default: no action group, the alerts fire in Azure Monitor only', () => {
    expect(all(defaults.tf, 'azurerm_monitor_action_group')).toEqual([]);
    for (const alert of all(defaults.tf, 'azurerm_monitor_scheduled_query_rules_alert_v2')) expect(alert.action).toBeUndefined();
    for (const alert of all(defaults.tf, 'azurerm_monitor_metric_alert')) expect(alert.action).toBeUndefined();
  });

  it('emails every address given, from every alert', () => {
    const { tf } = synth({ ORDERS_ALERT_EMAILS: 'ops@contoso.com, support-lead@contoso.com' });
    const group = one(tf, 'azurerm_monitor_action_group');
    expect(group).toMatchObject({ name: 'ag-ordersaga-dev', short_name: 'orders' });
    expect(group.email_receiver.map((r: Block) => r.email_address)).toEqual(['ops@contoso.com', 'support-lead@contoso.com']);
    const groupId = ref(tf, 'azurerm_monitor_action_group', 'id');
    const queryAlerts = all(tf, 'azurerm_monitor_scheduled_query_rules_alert_v2');
    expect(queryAlerts.map((a) => a.name).sort()).toEqual(['dead-letter-sweep-failing', 'dead-letters-parked', 'orders-need-attention']);
    for (const alert of queryAlerts) expect(alert.action).toEqual({ action_groups: [groupId] });
    const metricAlerts = all(tf, 'azurerm_monitor_metric_alert');
    expect(metricAlerts).toHaveLength(2);
    for (const alert of metricAlerts) expect(alert.action).toEqual([expect.objectContaining({ action_group_id: groupId })]);
  });
});

/** Values that are, or point Terraform at, a key, SAS or key-bearing connection string. */
const SECRET = /AccountKey=|SharedAccessKey|SharedAccessSignature|[?&]sig=|InstrumentationKey=|primary_|secondary_|access_key|connection_string|_key\}/i;

describe('no secrets in app settings', () => {
  it('recognises the secret shapes it scans for', () => {
    for (const bad of [
      'DefaultEndpointsProtocol=https;AccountName=st;AccountKey=abc==',
      'Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abc=',
      'https://st.blob.core.windows.net/c?sv=2024&sig=abc',
      '${azurerm_storage_account.storage.primary_connection_string}',
      '${azurerm_cosmosdb_account.cosmos.primary_key}',
      '${azurerm_application_insights.application-insights.connection_string}',
    ]) {
      expect(SECRET.test(bad)).toBe(true);
    }
  });

  it.each([
    ['defaults', {}],
    ['every option on', {
      ORDERS_PLAN_SKU: 'EP3',
      ORDERS_COSMOS_CAPACITY: 'provisioned',
      ORDERS_SERVICEBUS_SKU: 'Premium',
      ORDERS_AUTH_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
      ORDERS_AUTH_TENANT_ID: '66666666-7777-8888-9999-000000000000',
    }],
  ])('has none with %s', (_label, env) => {
    const { tf } = synth(env);
    const fnApp = one(tf, 'azurerm_linux_function_app');
    for (const [name, value] of Object.entries(fnApp.app_settings as Record<string, string>)) {
      expect([name, SECRET.test(value)]).toEqual([name, false]);
    }
    expect(fnApp.connection_string).toBeUndefined();
    expect(fnApp.storage_account_access_key).toBeUndefined();
    expect(fnApp.site_config.application_insights_key).toBeUndefined();
    // Nothing anywhere in the configuration reads a key or key-bearing connection string attribute.
    expect(JSON.stringify(tf)).not.toMatch(/\.(primary|secondary)_[a-z_]*(key|connection_string)/);
  });
});

describe('messaging and storage layout equals src/topology.ts', () => {
  it('creates each topic with its duplicate detection and message TTL', () => {
    const topics = all(defaults.tf, 'azurerm_servicebus_topic');
    expect(topics.map((t) => t.name).sort()).toEqual(serviceBusTopology.topics.map((t) => t.name).sort());
    for (const topic of serviceBusTopology.topics) {
      expect(topics.find((t) => t.name === topic.name)).toMatchObject({
        namespace_id: ref(defaults.tf, 'azurerm_servicebus_namespace', 'id'),
        requires_duplicate_detection: topic.requiresDuplicateDetection,
        duplicate_detection_history_time_window: topic.duplicateDetectionHistoryTimeWindow,
        default_message_ttl: topic.defaultMessageTimeToLive,
      });
    }
  });

  it('creates exactly the subscriptions, with delivery count, lock, TTL and dead-lettering', () => {
    const deployed = all(defaults.tf, 'azurerm_servicebus_subscription').map((s) => ({
      topic: target(defaults.tf, s.topic_id).name,
      name: s.name,
      maxDeliveryCount: s.max_delivery_count,
      lockDuration: s.lock_duration,
      defaultMessageTimeToLive: s.default_message_ttl,
      deadLetteringOnMessageExpiration: s.dead_lettering_on_message_expiration,
    }));
    const expected = serviceBusTopology.topics.flatMap((t) =>
      t.subscriptions.map((s) => ({
        topic: t.name,
        name: s.name,
        maxDeliveryCount: s.maxDeliveryCount,
        lockDuration: s.lockDuration,
        defaultMessageTimeToLive: s.defaultMessageTimeToLive,
        deadLetteringOnMessageExpiration: s.deadLetteringOnMessageExpiration,
      })),
    );
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect(deployed.sort(byName)).toEqual(expected.sort(byName));
  });

  it('creates exactly the filter rules, each on its own subscription', () => {
    const deployed = all(defaults.tf, 'azurerm_servicebus_subscription_rule').map((r) => ({
      subscription: target(defaults.tf, r.subscription_id).name,
      name: r.name,
      filterType: r.filter_type,
      sqlFilter: r.sql_filter,
    }));
    const expected = serviceBusTopology.topics.flatMap((t) =>
      t.subscriptions.flatMap((s) =>
        s.rules.map((rule) => ({ subscription: s.name, name: rule.name, filterType: 'SqlFilter', sqlFilter: rule.sqlFilter })),
      ),
    );
    const key = (r: { subscription: string; name: string }) => `${r.subscription}/${r.name}`;
    expect(deployed.sort((a, b) => key(a).localeCompare(key(b)))).toEqual(
      expected.sort((a, b) => key(a).localeCompare(key(b))),
    );
    expect(deployed.length).toBeGreaterThan(0);
  });

  it('creates exactly the queues', () => {
    expect(all(defaults.tf, 'azurerm_servicebus_queue').map((q) => q.name).sort()).toEqual(
      serviceBusTopology.queues.map((q) => q.name).sort(),
    );
  });

  it('creates the database and exactly the containers with their partition keys', () => {
    expect(one(defaults.tf, 'azurerm_cosmosdb_sql_database').name).toBe(cosmosTopology.databaseName);
    const deployed = all(defaults.tf, 'azurerm_cosmosdb_sql_container').map((c) => ({
      name: c.name,
      partitionKeyPath: c.partition_key_paths,
      database: c.database_name,
    }));
    const expected = cosmosTopology.containers.map((c) => ({
      name: c.name,
      partitionKeyPath: [c.partitionKeyPath],
      database: ref(defaults.tf, 'azurerm_cosmosdb_sql_database', 'name'),
    }));
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect(deployed.sort(byName)).toEqual(expected.sort(byName));
  });

  it('follows a changed topology: new subscription, correlation filter, queue, container', () => {
    const changed: ServiceBusTopology = {
      topics: serviceBusTopology.topics.map((t) => ({
        ...t,
        duplicateDetectionHistoryTimeWindow: 'PT30M',
        subscriptions: [
          ...t.subscriptions.map((s) => ({ ...s, maxDeliveryCount: 7, lockDuration: 'PT2M' })),
          {
            name: 'audit-sub',
            maxDeliveryCount: 10,
            lockDuration: 'PT30S',
            defaultMessageTimeToLive: 'P1D',
            deadLetteringOnMessageExpiration: false,
            rules: [{ name: 'created-only', correlationFilter: { label: 'OrderCreated', properties: { event_type: 'OrderCreated' } } }],
          },
        ],
      })),
      queues: [
        {
          name: 'compensations',
          maxDeliveryCount: 5,
          lockDuration: 'PT1M',
          defaultMessageTimeToLive: 'P7D',
          deadLetteringOnMessageExpiration: true,
          requiresDuplicateDetection: true,
          duplicateDetectionHistoryTimeWindow: 'PT10M',
        },
      ],
    };
    const { tf } = synth({}, {
      serviceBusTopology: changed,
      cosmosTopology: { databaseName: 'other-db', containers: [{ name: 'audit', partitionKeyPath: '/orderId' }] },
    });
    expect(one(tf, 'azurerm_servicebus_topic').duplicate_detection_history_time_window).toBe('PT30M');
    const subs = all(tf, 'azurerm_servicebus_subscription');
    expect(subs).toHaveLength(4);
    expect(subs.filter((s) => s.name !== 'audit-sub').every((s) => s.max_delivery_count === 7 && s.lock_duration === 'PT2M')).toBe(true);
    const audit = all(tf, 'azurerm_servicebus_subscription_rule').find((r) => r.name === 'created-only')!;
    expect(target(tf, audit.subscription_id).name).toBe('audit-sub');
    expect(audit).toMatchObject({
      filter_type: 'CorrelationFilter',
      correlation_filter: { label: 'OrderCreated', properties: { event_type: 'OrderCreated' } },
    });
    expect(audit.sql_filter).toBeUndefined();
    expect(one(tf, 'azurerm_servicebus_queue')).toMatchObject({
      name: 'compensations',
      max_delivery_count: 5,
      requires_duplicate_detection: true,
      default_message_ttl: 'P7D',
    });
    expect(one(tf, 'azurerm_cosmosdb_sql_database').name).toBe('other-db');
    expect(one(tf, 'azurerm_cosmosdb_sql_container')).toMatchObject({ name: 'audit', partition_key_paths: ['/orderId'] });
  });

  it('refuses a correlation property azurerm would deploy as a string and so never match', () => {
    const typed: ServiceBusTopology = {
      topics: [{
        ...serviceBusTopology.topics[0],
        subscriptions: [{ ...serviceBusTopology.topics[0].subscriptions[0], rules: [{ name: 'r', correlationFilter: { properties: { priority: 1 } } }] }],
      }],
      queues: [],
    };
    expect(() => synth({}, { serviceBusTopology: typed })).toThrow(/priority must be a string/);
  });
});

describe('parameters', () => {
  it('sizes the plan and the always-ready and burst instances', () => {
    const { tf } = synth({ ORDERS_PLAN_SKU: 'EP2', ORDERS_ALWAYS_READY: '3', ORDERS_PREWARMED: '2', ORDERS_MAX_BURST: '40' });
    expect(one(tf, 'azurerm_service_plan')).toMatchObject({ sku_name: 'EP2', worker_count: 3, maximum_elastic_worker_count: 40 });
    expect(one(tf, 'azurerm_linux_function_app').site_config).toMatchObject({
      elastic_instance_minimum: 3,
      pre_warmed_instance_count: 2,
      app_scale_limit: 40,
    });
  });

  it('switches Cosmos DB to provisioned autoscale throughput shared by the database', () => {
    const { tf } = synth({ ORDERS_COSMOS_CAPACITY: 'provisioned', ORDERS_COSMOS_MAX_THROUGHPUT: '4000' });
    expect(one(tf, 'azurerm_cosmosdb_account').capabilities ?? []).not.toContainEqual({ name: 'EnableServerless' });
    expect(one(tf, 'azurerm_cosmosdb_sql_database').autoscale_settings).toEqual({ max_throughput: 4000 });
  });

  it('switches Service Bus to Premium with one messaging unit', () => {
    const { tf } = synth({ ORDERS_SERVICEBUS_SKU: 'Premium' });
    expect(one(tf, 'azurerm_servicebus_namespace')).toMatchObject({ sku: 'Premium', capacity: 1, premium_messaging_partitions: 1, local_auth_enabled: false });
  });

  it('runs the app on Node 20 when asked, and on no other major', () => {
    expect(one(synth({ ORDERS_NODE_VERSION: '20' }).tf, 'azurerm_linux_function_app').site_config.application_stack).toEqual({ node_version: '20' });
    expect(() => readParameters({ ORDERS_NODE_VERSION: '18' })).toThrow(/ORDERS_NODE_VERSION=18/);
  });

  it('seeds the demo catalog only when asked', () => {
    expect(one(synth({ ORDERS_SEED_CATALOG: 'true' }).tf, 'azurerm_linux_function_app').app_settings.SEED_CATALOG).toBe('true');
  });

  it('leaves App Service Authentication off unless an Entra app is given', () => {
    expect(app.auth_settings_v2).toBeUndefined();
  });

  it('turns on Entra ID authentication that identifies callers but keeps the order API anonymous', () => {
    const clientId = '11111111-2222-3333-4444-555555555555';
    const tenantId = '66666666-7777-8888-9999-000000000000';
    const { tf } = synth({ ORDERS_AUTH_CLIENT_ID: clientId, ORDERS_AUTH_TENANT_ID: tenantId });
    expect(one(tf, 'azurerm_linux_function_app').auth_settings_v2).toMatchObject({
      auth_enabled: true,
      require_authentication: false,
      unauthenticated_action: 'AllowAnonymous',
      default_provider: 'azureactivedirectory',
      active_directory_v2: {
        client_id: clientId,
        tenant_auth_endpoint: `https://login.microsoftonline.com/${tenantId}/v2.0`,
        allowed_audiences: expect.arrayContaining([`api://${clientId}`]),
      },
    });
  });

  it('names every resource for the environment and keeps the storage name within 24 characters', () => {
    const { tf } = synth({ ORDERS_ENV: 'prod', ORDERS_NAME: 'contosoorders', ORDERS_LOCATION: 'swedencentral' });
    expect(one(tf, 'azurerm_resource_group')).toMatchObject({ name: 'rg-contosoorders-prod', location: 'swedencentral' });
    expect(one(tf, 'azurerm_linux_function_app').name).toBe('func-contosoorders-prod');
    expect(tf.resource.azurerm_storage_account.storage.name).toBe('stcontosoordersprod');
    expect(tf.resource.azurerm_storage_account['package-storage'].name).toBe('spcontosoordersprod');
    const longest = readParameters({ ORDERS_ENV: 'abcdefgh', ORDERS_NAME: 'abcdefghijklmn' });
    for (const account of Object.values(synth({ ORDERS_ENV: longest.environment, ORDERS_NAME: longest.baseName }).tf.resource.azurerm_storage_account)) {
      expect(account.name.length).toBeLessThanOrEqual(24);
    }
  });

  it('keeps local state outside cdktf.out by default and uses a blob container when asked', () => {
    expect(defaults.tf.terraform.backend).toEqual({ local: { path: '../../../terraform.order-saga-test.tfstate' } });
    const { tf } = synth({ ORDERS_STATE_STORAGE_ACCOUNT: 'sttfstate', ORDERS_STATE_RESOURCE_GROUP: 'rg-tfstate' });
    expect(tf.terraform.backend).toEqual({
      azurerm: {
        storage_account_name: 'sttfstate',
        resource_group_name: 'rg-tfstate',
        container_name: 'tfstate',
        key: 'order-saga-test.tfstate',
        use_azuread_auth: true,
      },
    });
  });

  it.each([
    [{ ORDERS_PLAN_SKU: 'P1v3' }, /ORDERS_PLAN_SKU=P1v3/],
    [{ ORDERS_ALWAYS_READY: '5', ORDERS_MAX_BURST: '3' }, /below ORDERS_ALWAYS_READY/],
    [{ ORDERS_ALWAYS_READY: '21' }, /ORDERS_ALWAYS_READY=21/],
    [{ ORDERS_SERVICEBUS_SKU: 'Basic' }, /ORDERS_SERVICEBUS_SKU=Basic/],
    [{ ORDERS_COSMOS_MAX_THROUGHPUT: '1500' }, /multiple of 1000/],
    [{ ORDERS_AUTH_CLIENT_ID: '11111111-2222-3333-4444-555555555555' }, /set both or neither/],
    [{ ORDERS_ENV: 'Prod_1' }, /ORDERS_ENV=Prod_1/],
    // A leading digit is refused, and the message says so.
    [{ ORDERS_ENV: '1dev' }, /ORDERS_ENV=1dev: expected 1-8 lower-case letters or digits, starting with a letter/],
    [{ ORDERS_NAME: '9orders' }, /ORDERS_NAME=9orders: expected 3-14 lower-case letters or digits, starting with a letter/],
    [{ ORDERS_SEED_CATALOG: 'yes' }, /ORDERS_SEED_CATALOG=yes/],
    [{ ORDERS_ALERT_EMAILS: 'ops@contoso.com, nobody' }, /ORDERS_ALERT_EMAILS=nobody: expected comma-separated email addresses/],
  ])('rejects %j', (env, message) => {
    expect(() => readParameters(env)).toThrow(ParameterError);
    expect(() => readParameters(env)).toThrow(message);
  });
});
