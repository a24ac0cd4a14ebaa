/**
 * A Cosmos DB client on the query path Azure takes for a cross-partition ORDER BY. The gateway does
 * not serve such a query: it answers 400 (substatus 1004) with a query plan, and the SDK then queries
 * each partition key range itself. The stand-in serves ORDER BY directly, so a client plugin here
 * answers for the gateway (the query plan; the per-range queries still reach the stand-in). On that
 * path the SDK gives a continuation token, and takes one back, only with query control on.
 */
import { CosmosClient, type CosmosClientOptions, type PluginConfig } from '@azure/cosmos';
import { Agent } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos-emulator';

const ORDER_BY = /^SELECT \* FROM c(?: WHERE (.+))? ORDER BY c\.(\w+) (DESC|ASC)$/;

/** What the gateway answers for a cross-partition ORDER BY: the plan the SDK then runs per range. */
function queryPlan(query: string) {
  const [, where, field, direction] = ORDER_BY.exec(query)!;
  return {
    partitionedQueryExecutionInfoVersion: 2,
    queryInfo: {
      distinctType: 'None',
      top: null,
      offset: null,
      limit: null,
      orderBy: [direction === 'DESC' ? 'Descending' : 'Ascending'],
      orderByExpressions: [`c.${field}`],
      groupByExpressions: [],
      groupByAliases: [],
      aggregates: [],
      groupByAliasToAggregateType: {},
      rewrittenQuery: `SELECT c._rid, [{"item": c.${field}}] AS orderByItems, c AS payload FROM c WHERE ${where ? `(${where}) AND ` : ''}({documentdb-formattableorderbyquery-filter}) ORDER BY c.${field} ${direction}`,
      hasSelectValue: false,
      hasNonStreamingOrderBy: false,
    },
    queryRanges: [{ min: '', max: 'FF', isMinInclusive: true, isMaxInclusive: false }],
  };
}

/** How many of each the plugin saw: query plans it served, queries it refused, per-range queries passed on. */
export interface GatewayCounts {
  plans: number;
  refused: number;
  perRange: number;
}

function azureGateway(served: GatewayCounts): PluginConfig {
  return {
    on: 'request',
    plugin: async (context, _diagnostics, next) => {
      const body = typeof context.body === 'string' ? JSON.parse(context.body) : context.body;
      const query: string | undefined = body?.query;
      if (context.resourceType === 'docs' && query && ORDER_BY.test(query)) {
        if (context.headers?.['x-ms-cosmos-is-query-plan-request']) {
          served.plans += 1;
          return { headers: {}, result: queryPlan(query), code: 200 } as never;
        }
        served.refused += 1;
        throw Object.assign(new Error('The provided cross partition query can not be directly served by the gateway.'), {
          code: 400,
          substatus: 1004,
          headers: {},
          body: { code: 'BadRequest', message: 'cross partition query', additionalErrorInfo: JSON.stringify(queryPlan(query)) },
        });
      }
      if (query?.includes('orderByItems')) served.perRange += 1;
      return next(context);
    },
  };
}

export interface GatewayCosmos {
  client: CosmosClient;
  served: GatewayCounts;
  stop(): Promise<void>;
}

/** The Cosmos stand-in on a free port, and a client that queries it the way Azure makes the SDK. */
export async function startGatewayCosmos(): Promise<GatewayCosmos> {
  const certDir = mkdtempSync(join(tmpdir(), 'cosmos-paging-'));
  let emulator: CosmosEmulator | undefined;
  try {
    emulator = await startCosmosEmulator({ port: 0, certDir });
  } catch (err) {
    rmSync(certDir, { recursive: true, force: true });
    throw err;
  }
  const agent = new Agent({ ca: readFileSync(emulator.caCertificateFile), keepAlive: true });
  const served: GatewayCounts = { plans: 0, refused: 0, perRange: 0 };
  const client = new CosmosClient({
    endpoint: emulator.endpoint,
    key: emulator.key,
    agent,
    connectionPolicy: { enableEndpointDiscovery: false },
    plugins: [azureGateway(served)],
    // `plugins` is a hidden option of the SDK: not in its published types.
  } as CosmosClientOptions);
  const started = emulator;
  return {
    client,
    served,
    async stop() {
      client.dispose();
      agent.destroy();
      await started.stop();
      rmSync(certDir, { recursive: true, force: true });
    },
  };
}
