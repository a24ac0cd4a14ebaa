/**
 * Every 5 s (DEADLETTER_SWEEP_SCHEDULE, NCRONTAB with seconds): reads the consumers' dead-letter
 * queues, surfaces what was dead-lettered on its order or in the dead-letter archive, and takes out
 * the messages of orders that are completed or cancelled. Poison stays in its queue
 * (`src/support/deadLetterSweep.ts`).
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { ServiceBusDeadLetterQueue } from '../src/azure/deadLetterQueues';
import { durableClientInput, monitorClientFor } from '../src/bindings/durableBinding';
import { createLogger } from '../src/log';
import { appDependencies } from '../src/services/dependencies';
import { DeadLetterSweep } from '../src/support/deadLetterSweep';
import { SERVICES } from '../src/topology';

const sweep = new DeadLetterSweep();

app.timer('deadLetterSweeper', {
  schedule: process.env.DEADLETTER_SWEEP_SCHEDULE?.trim() || '*/5 * * * * *',
  extraInputs: [durableClientInput],
  handler: async (_timer: Timer, context: InvocationContext): Promise<void> => {
    const log = createLogger(context).with({ invocationId: context.invocationId });
    const env = { deps: appDependencies(), monitor: monitorClientFor(context, log), log };
    const reports = await Promise.all(SERVICES.map((service) => sweep.sweep(service, new ServiceBusDeadLetterQueue(service), env)));
    const busy = reports.filter((r) => r.recorded > 0 || r.removed > 0 || r.failed);
    if (busy.length > 0) log.info('deadletter-sweep', { queues: busy });
  },
});
