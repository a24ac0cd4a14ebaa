/**
 * NCRONTAB schedules as Azure Functions timer triggers take them:
 * `{second} {minute} {hour} {day} {month} {day-of-week}` (a 5-field expression has no seconds),
 * each field `*`, a value, a range `a-b`, a step `* /n` or `a-b/n`, and comma lists; month and
 * day names (`Jan`, `Mon`); day-of-week 0 and 7 are Sunday. Times are UTC.
 */

export class CronExpressionError extends Error {
  override name = 'CronExpressionError';
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: string[];
}

const FIELDS: FieldSpec[] = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

function parseValue(text: string, spec: FieldSpec): number {
  const lower = text.toLowerCase();
  if (spec.names) {
    const idx = spec.names.findIndex((n) => lower === n || (lower.length > 3 && n.startsWith(lower.slice(0, 3)) && lower.startsWith(n)));
    if (idx >= 0) return spec.name === 'month' ? idx + 1 : idx;
  }
  if (!/^\d+$/.test(text)) throw new CronExpressionError(`bad ${spec.name} value "${text}"`);
  const n = Number(text);
  if (n < spec.min || n > spec.max) {
    throw new CronExpressionError(`${spec.name} ${n} is outside ${spec.min}-${spec.max}`);
  }
  return n;
}

function parseField(text: string, spec: FieldSpec): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    if (part === '') throw new CronExpressionError(`empty list item in ${spec.name} field "${text}"`);
    const [rangeText, stepText, extra] = part.split('/');
    if (extra !== undefined) throw new CronExpressionError(`bad step in ${spec.name} field "${part}"`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
        throw new CronExpressionError(`bad step in ${spec.name} field "${part}"`);
      }
      step = Number(stepText);
    }
    let lo: number;
    let hi: number;
    if (rangeText === '*' || rangeText === '?') {
      lo = spec.min;
      hi = spec.name === 'day-of-week' ? 6 : spec.max;
    } else if (rangeText!.includes('-')) {
      const [a, b] = rangeText!.split('-');
      lo = parseValue(a!, spec);
      hi = parseValue(b!, spec);
      if (hi < lo) throw new CronExpressionError(`backwards range in ${spec.name} field "${part}"`);
    } else {
      lo = parseValue(rangeText!, spec);
      // `5/15` means from 5 to the end in steps of 15.
      hi = stepText !== undefined ? spec.max : lo;
    }
    for (let v = lo; v <= hi; v += step) values.add(spec.name === 'day-of-week' && v === 7 ? 0 : v);
  }
  return values;
}

export class CronSchedule {
  readonly #seconds: Set<number>;
  readonly #minutes: Set<number>;
  readonly #hours: Set<number>;
  readonly #days: Set<number>;
  readonly #months: Set<number>;
  readonly #weekdays: Set<number>;
  readonly #dayStar: boolean;
  readonly #weekdayStar: boolean;

  constructor(readonly expression: string) {
    let fields = expression.trim().split(/\s+/);
    if (fields.length === 5) fields = ['0', ...fields];
    if (fields.length !== 6) {
      throw new CronExpressionError(
        `"${expression}" has ${fields.length} fields; NCRONTAB needs 6: second minute hour day month day-of-week`,
      );
    }
    const sets = fields.map((f, i) => parseField(f, FIELDS[i]!));
    [this.#seconds, this.#minutes, this.#hours, this.#days, this.#months, this.#weekdays] = sets as [
      Set<number>,
      Set<number>,
      Set<number>,
      Set<number>,
      Set<number>,
      Set<number>,
    ];
    this.#dayStar = fields[3] === '*' || fields[3] === '?';
    this.#weekdayStar = fields[5] === '*' || fields[5] === '?';
  }

  #dayMatches(d: Date): boolean {
    const dom = this.#days.has(d.getUTCDate());
    const dow = this.#weekdays.has(d.getUTCDay());
    // Classic cron: when both day fields are restricted, either one matching is enough.
    if (!this.#dayStar && !this.#weekdayStar) return dom || dow;
    return dom && dow;
  }

  /** The first occurrence strictly after `after`. */
  next(after: Date): Date {
    const t = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
    const limit = after.getTime() + 8 * 366 * 86400_000;
    while (t.getTime() <= limit) {
      if (!this.#months.has(t.getUTCMonth() + 1)) {
        t.setUTCMonth(t.getUTCMonth() + 1, 1);
        t.setUTCHours(0, 0, 0);
        continue;
      }
      if (!this.#dayMatches(t)) {
        t.setUTCDate(t.getUTCDate() + 1);
        t.setUTCHours(0, 0, 0);
        continue;
      }
      if (!this.#hours.has(t.getUTCHours())) {
        t.setUTCHours(t.getUTCHours() + 1, 0, 0);
        continue;
      }
      if (!this.#minutes.has(t.getUTCMinutes())) {
        t.setUTCMinutes(t.getUTCMinutes() + 1, 0);
        continue;
      }
      if (!this.#seconds.has(t.getUTCSeconds())) {
        t.setUTCSeconds(t.getUTCSeconds() + 1);
        continue;
      }
      return t;
    }
    throw new CronExpressionError(`"${this.expression}" never occurs`);
  }
}
