import { createLogger } from '../../src/log';
import { DEFAULT_HISTORY_RETENTION_DAYS, historyRetentionDays, purgeFinishedHistory, PURGED_STATUSES } from '../../src/support/historyPurge';

const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });

describe('durable history purge', () => {
  it('purges the finished orchestrations created before the retention, and only those', async () => {
    const calls: [Date, readonly string[]][] = [];
    const client = { purgeFinishedCreatedBefore: async (before: Date, statuses: readonly string[]) => (calls.push([before, statuses]), 7) };
    const deleted = await purgeFinishedHistory(new Date('2026-03-31T12:00:00.000Z'), 30, { client, log: silent });
    expect(deleted).toBe(7);
    expect(calls).toEqual([[new Date('2026-03-01T12:00:00.000Z'), ['Completed', 'Failed', 'Terminated']]]);
    expect(PURGED_STATUSES).not.toContain('Running');
  });

  it('a retention of 0 turns it off', async () => {
    const client = { purgeFinishedCreatedBefore: jest.fn(async () => 1) };
    expect(await purgeFinishedHistory(new Date(), 0, { client, log: silent })).toBe(0);
    expect(client.purgeFinishedCreatedBefore).not.toHaveBeenCalled();
  });

  it.each([
    [undefined, DEFAULT_HISTORY_RETENTION_DAYS],
    ['  ', DEFAULT_HISTORY_RETENTION_DAYS],
    ['7', 7],
    ['0', 0],
    ['0.5', 0.5],
  ])('retention setting %p -> %p days', (value, days) => {
    expect(historyRetentionDays(value)).toBe(days);
  });

  it.each(['-1', 'a week', 'Infinity'])('refuses the retention setting %p', (value) => {
    expect(() => historyRetentionDays(value)).toThrow(/HISTORY_RETENTION_DAYS/);
  });
});
