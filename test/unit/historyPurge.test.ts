import fc from 'fast-check';
import { createLogger } from '../../src/log';
import { searchOptions } from './support/searchOptions';
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

describe('durable history purge, any retention the setting takes', () => {
  it.each(['99999999', '1e12'])('with a retention of %s days, longer than dates reach back, purges nothing and does not fail', async (setting) => {
    // The durable client writes the cut-off with toISOString, which throws for a date out of range.
    const client = { purgeFinishedCreatedBefore: jest.fn(async (before: Date) => (before.toISOString(), 0)) };
    await expect(purgeFinishedHistory(new Date('2026-11-29T12:00:00.000Z'), historyRetentionDays(setting), { client, log: silent })).resolves.toBe(0);
    expect(client.purgeFinishedCreatedBefore).not.toHaveBeenCalled();
  });

  it('asks for a valid cut-off after the epoch, where the purge starts, or for nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.double({ min: 0, max: 1e12, noNaN: true }).map(String), fc.integer({ min: 0, max: 2 ** 40 }).map(String), fc.constantFrom('1e8', '99999999', '1e300', '30')),
        fc.date({ min: new Date('2000-01-01T00:00:00.000Z'), max: new Date('2100-01-01T00:00:00.000Z'), noInvalidDate: true }),
        async (setting, now) => {
          const days = historyRetentionDays(setting);
          const asked: Date[] = [];
          const client = { purgeFinishedCreatedBefore: async (before: Date) => (asked.push(before), 0) };
          await purgeFinishedHistory(now, days, { client, log: silent });
          for (const before of asked) {
            expect(Number.isNaN(before.getTime())).toBe(false);
            expect(before.toISOString()).toEqual(expect.any(String));
            expect(before.getTime()).toBeGreaterThan(0);
            expect(before.getTime()).toBeLessThanOrEqual(now.getTime());
          }
          // Within the dates the purge can reach, it asks.
          if (days > 0 && now.getTime() - days * 86_400_000 > 0) expect(asked).toHaveLength(1);
        },
      ),
      searchOptions(300),
    );
  });
});
