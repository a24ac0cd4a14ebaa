/**
 * The durable task hub keeps every orchestration it ever ran: each order's monitor, and each of its
 * compensation runs, with their history. Nothing else deletes them (the Azure Storage backend
 * never does by itself; the local engine's SQLite neither), so the hub grows by every order for
 * as long as the app lives. A timer purges the finished ones (completed, failed, terminated)
 * created longer ago than the retention, by the durable client's purge by filter. An instance's
 * creation time is its current execution's start (Azure Storage dates it anew on continue-as-new):
 * a monitor that continued as new is kept for the retention from its last execution, not its first.
 *
 * What a purge takes away: the `monitor` of a finished order's support view reads `null` after
 * the retention (the order's own timeline keeps its whole story). A failed or terminated monitor
 * of an order still active is found missing by the monitor sweeper and started again, as it would
 * be had it stayed; a request for an order in `attention` starts its monitor again the same way.
 */
import type { Logger } from '../log';

/** Runtime statuses of an orchestration that will not run again by itself. */
export const PURGED_STATUSES = ['Completed', 'Failed', 'Terminated'] as const;

export const DEFAULT_HISTORY_RETENTION_DAYS = 30;
const DAY_MS = 86_400_000;

/** What the purge needs of the durable client. */
export interface HistoryPurgeClient {
  purgeFinishedCreatedBefore(createdTimeTo: Date, statuses: readonly string[]): Promise<number>;
}

/** The retention in days from `HISTORY_RETENTION_DAYS`: unset keeps the default; 0 turns the purge off. */
export function historyRetentionDays(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_HISTORY_RETENTION_DAYS;
  const days = Number(value);
  if (!Number.isFinite(days) || days < 0) throw new Error(`HISTORY_RETENTION_DAYS must be a number of days, 0 or more; got ${JSON.stringify(value)}`);
  return days;
}

/** One run: purges the finished orchestrations created before `now` minus the retention; returns how many. */
export async function purgeFinishedHistory(now: Date, retentionDays: number, env: { client: HistoryPurgeClient; log: Logger }): Promise<number> {
  if (retentionDays === 0) return 0;
  const before = new Date(now.getTime() - retentionDays * DAY_MS);
  // The purge reaches back to the epoch (src/azure/durableHistoryPurgeClient.ts starts it there):
  // a retention that goes further back purges nothing, and past the dates a Date holds, its
  // cut-off could not even be written.
  if (!(before.getTime() > 0)) return 0;
  const deleted = await env.client.purgeFinishedCreatedBefore(before, PURGED_STATUSES);
  if (deleted > 0) env.log.info('durable-history-purged', { instancesDeleted: deleted, createdBefore: before.toISOString() });
  return deleted;
}
