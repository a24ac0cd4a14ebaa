/**
 * The pieces of app configuration the host parses itself: NCRONTAB timer schedules and
 * package.json `main` globs. Table-driven; each row is something an app author writes.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CronExpressionError, CronSchedule } from '../../local/functions-host/ncrontab';
import { expandBraces, matchesPattern, resolveMainGlob } from '../../local/functions-host/main-glob';
import { parseTimeSpan } from '../../local/functions-host/timer-triggers';

const FROM = new Date('2026-11-26T21:59:58.500Z'); // a Thursday

describe('NCRONTAB schedules', () => {
  it.each([
    { expr: '*/5 * * * * *', next: ['2026-11-26T22:00:00.000Z', '2026-11-26T22:00:05.000Z', '2026-11-26T22:00:10.000Z'] },
    { expr: '0 */5 * * * *', next: ['2026-11-26T22:00:00.000Z', '2026-11-26T22:05:00.000Z', '2026-11-26T22:10:00.000Z'] },
    { expr: '0 30 9 * * 1-5', next: ['2026-11-27T09:30:00.000Z', '2026-11-30T09:30:00.000Z', '2026-12-01T09:30:00.000Z'] },
    { expr: '0 30 9 * * Mon-Fri', next: ['2026-11-27T09:30:00.000Z', '2026-11-30T09:30:00.000Z', '2026-12-01T09:30:00.000Z'] },
    { expr: '0 0 12 * * Sun', next: ['2026-11-29T12:00:00.000Z', '2026-12-06T12:00:00.000Z', '2026-12-13T12:00:00.000Z'] },
    { expr: '0 0 12 * * 7', next: ['2026-11-29T12:00:00.000Z', '2026-12-06T12:00:00.000Z', '2026-12-13T12:00:00.000Z'] },
    { expr: '15,45 * * * * *', next: ['2026-11-26T22:00:15.000Z', '2026-11-26T22:00:45.000Z', '2026-11-26T22:01:15.000Z'] },
    { expr: '10-12 0 22 * * *', next: ['2026-11-26T22:00:10.000Z', '2026-11-26T22:00:11.000Z', '2026-11-26T22:00:12.000Z'] },
    { expr: '0 0 0 29 Feb *', next: ['2028-02-29T00:00:00.000Z', '2032-02-29T00:00:00.000Z', '2036-02-29T00:00:00.000Z'] },
    { expr: '0 0 0 1 1,7 *', next: ['2027-01-01T00:00:00.000Z', '2027-07-01T00:00:00.000Z', '2028-01-01T00:00:00.000Z'] },
    { expr: '0 0 * * *', next: ['2026-11-27T00:00:00.000Z', '2026-11-28T00:00:00.000Z', '2026-11-29T00:00:00.000Z'] },
  ])('$expr', ({ expr, next }) => {
    const schedule = new CronSchedule(expr);
    const got: string[] = [];
    let at = FROM;
    for (let i = 0; i < next.length; i++) {
      at = schedule.next(at);
      got.push(at.toISOString());
    }
    expect(got).toEqual(next);
  });

  it.each(['* * *', '61 * * * * *', '*/0 * * * * *', 'a * * * * *', '0 0 0 31 2 *', '5-1 * * * * *', '1,,2 * * * * *'])(
    'rejects %s',
    (expr) => {
      expect(() => new CronSchedule(expr).next(FROM)).toThrow(CronExpressionError);
    },
  );

  it.each([
    { text: '00:00:10', ms: 10_000 },
    { text: '01:30:00', ms: 5_400_000 },
    { text: '1.00:00:00', ms: 86_400_000 },
    { text: '*/5 * * * * *', ms: undefined },
  ])('TimeSpan $text', ({ text, ms }) => {
    expect(parseTimeSpan(text)).toBe(ms);
  });
});

describe('package.json main globs', () => {
  it('expands braces, nested ones included', () => {
    expect(expandBraces('dist/{triggers,orchestrators,activities}/**/*.js')).toEqual([
      'dist/triggers/**/*.js',
      'dist/orchestrators/**/*.js',
      'dist/activities/**/*.js',
    ]);
    expect(expandBraces('a{b,{c,d}}e')).toEqual(['abe', 'ace', 'ade']);
  });

  it.each([
    { path: 'dist/triggers/a.js', pattern: 'dist/triggers/**/*.js', match: true },
    { path: 'dist/triggers/x/y/a.js', pattern: 'dist/triggers/**/*.js', match: true },
    { path: 'dist/triggers/a.js.map', pattern: 'dist/triggers/**/*.js', match: false },
    { path: 'dist/other/a.js', pattern: 'dist/triggers/**/*.js', match: false },
    { path: 'src/a.js', pattern: 'src/?.js', match: true },
    { path: 'src/ab.js', pattern: 'src/?.js', match: false },
    { path: 'index.js', pattern: '**/*.js', match: true },
  ])('$path ~ $pattern: $match', ({ path, pattern, match }) => {
    expect(matchesPattern(path, pattern)).toBe(match);
  });

  it('lists matching files in a stable order and skips node_modules', () => {
    const dir = mkdtempSync(join(tmpdir(), 'main-glob-'));
    try {
      for (const f of ['dist/triggers/b.js', 'dist/triggers/a.js', 'dist/triggers/a.js.map', 'dist/activities/deep/c.js', 'dist/local/x.js', 'node_modules/dist/triggers/z.js']) {
        mkdirSync(join(dir, f, '..'), { recursive: true });
        writeFileSync(join(dir, f), '');
      }
      expect(resolveMainGlob(dir, 'dist/{triggers,orchestrators,activities}/**/*.js').map((f) => f.slice(dir.length + 1))).toEqual([
        'dist/activities/deep/c.js',
        'dist/triggers/a.js',
        'dist/triggers/b.js',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
