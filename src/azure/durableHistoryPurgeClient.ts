/** The history purge (src/support/historyPurge.ts) through the durable client binding. */
import type { DurableClient, OrchestrationRuntimeStatus } from 'durable-functions';
import type { HistoryPurgeClient } from '../support/historyPurge';

export function durableHistoryPurgeClient(client: DurableClient): HistoryPurgeClient {
  return {
    async purgeFinishedCreatedBefore(createdTimeTo, statuses) {
      const result = await client.purgeInstanceHistoryBy({
        // The extension asks for a start; the epoch takes in everything older than the retention.
        createdTimeFrom: new Date(0),
        createdTimeTo,
        runtimeStatus: statuses.map((s) => s as OrchestrationRuntimeStatus),
      });
      return result.instancesDeleted;
    },
  };
}
