/**
 * Every hour (HISTORY_PURGE_SCHEDULE, NCRONTAB with seconds): purges the durable task hub's finished
 * orchestrations created more than HISTORY_RETENTION_DAYS ago (30; 0 turns it off), so the hub
 * does not grow by every order for good (src/support/historyPurge.ts).
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { durableHistoryPurgeClient } from '../src/azure/durableHistoryPurgeClient';
import { durableClientInput } from '../src/bindings/durableBinding';
import { createLogger } from '../src/log';
import { historyRetentionDays, purgeFinishedHistory } from '../src/support/historyPurge';

app.timer('historyPurge', {
  schedule: process.env.HISTORY_PURGE_SCHEDULE?.trim() || '0 17 * * * *',
  extraInputs: [durableClientInput],
  handler: async (_timer: Timer, context: InvocationContext): Promise<void> => {
    const log = createLogger(context).with({ invocationId: context.invocationId });
    await purgeFinishedHistory(new Date(), historyRetentionDays(process.env.HISTORY_RETENTION_DAYS), {
      client: durableHistoryPurgeClient(df.getClient(context)),
      log,
    });
  },
});
