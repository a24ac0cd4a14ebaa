/**
 * Every hour (HISTORY_PURGE_SCHEDULE, NCRONTAB with seconds): purges the durable task hub's finished
 * orchestrations created more than HISTORY_RETENTION_DAYS ago (30; 0 turns it off), so the hub
 * does not grow by every order for good (src/support/historyPurge.ts).
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { durableClientInput } from '../src/bindings/durableBinding';
import { createLogger } from '../src/log';
import { historyRetentionDays, purgeFinishedHistory } from '../src/support/historyPurge';

app.timer('historyPurge', {
  schedule: process.env.HISTORY_PURGE_SCHEDULE?.trim() || '0 17 * * * *',
  extraInputs: [durableClientInput],
  handler: async (_timer: Timer, context: InvocationContext): Promise<void> => {
    const log = createLogger(context).with({ invocationId: context.invocationId });
    const client = df.getClient(context);
    await purgeFinishedHistory(new Date(), historyRetentionDays(process.env.HISTORY_RETENTION_DAYS), {
      client: {
        async purgeFinishedCreatedBefore(createdTimeTo, statuses) {
          const result = await client.purgeInstanceHistoryBy({
            // The extension asks for a start; the epoch takes in everything older than the retention.
            createdTimeFrom: new Date(0),
            createdTimeTo,
            runtimeStatus: statuses.map((s) => s as df.OrchestrationRuntimeStatus),
          });
          return result.instancesDeleted;
        },
      },
      log,
    });
  },
});
