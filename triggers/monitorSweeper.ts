/**
 * Every 30 s (MONITOR_SWEEP_SCHEDULE, NCRONTAB with seconds): restarts the monitor of every active
 * order whose monitor is missing, failed or terminated. Bounded work per run (MONITOR_SWEEP_BATCH).
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { durableClientInput, monitorClientFor } from '../src/bindings/durableBinding';
import { createLogger } from '../src/log';
import { CosmosActiveOrders, DEFAULT_SWEEP, sweepMonitors } from '../src/support/monitorSweep';

const positive = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value && Number.isFinite(n) && n > 0 ? n : fallback;
};

/** Kept between runs in this process; a new process starts from the oldest active order. */
let cursor = '';

app.timer('monitorSweeper', {
  schedule: process.env.MONITOR_SWEEP_SCHEDULE?.trim() || '*/30 * * * * *',
  extraInputs: [durableClientInput],
  handler: async (_timer: Timer, context: InvocationContext): Promise<void> => {
    const log = createLogger(context).with({ invocationId: context.invocationId });
    const report = await sweepMonitors(
      cursor,
      new Date(),
      {
        batchSize: Math.floor(positive(process.env.MONITOR_SWEEP_BATCH, DEFAULT_SWEEP.batchSize)),
        graceMs: positive(process.env.MONITOR_SWEEP_GRACE_SECONDS, DEFAULT_SWEEP.graceMs / 1000) * 1000,
      },
      { orders: new CosmosActiveOrders(), monitor: monitorClientFor(context, log), log },
    );
    cursor = report.cursor;
    if (report.restarted.length > 0) log.info('monitor-sweep', { checked: report.checked, restarted: report.restarted.length });
  },
});
