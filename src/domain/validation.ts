/**
 * Validation of what clients send (bodies, query strings), with every bad field reported at once
 * and in the API's own words: "must be at most 1000", not the schema library's wording.
 */
import { z } from 'zod';
import { type FieldProblem, ValidationError } from '../errors';

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: FieldProblem[] };

const TYPE_NOUNS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'an array',
  object: 'a JSON object',
};

function bound(side: 'most' | 'least', origin: string, limit: number | bigint, inclusive: boolean | undefined): string | undefined {
  const n = Number(limit);
  switch (origin) {
    case 'string':
      if (side === 'least' && n === 1) return 'must not be empty';
      return `must be at ${side} ${n} characters long`;
    case 'array':
    case 'set':
      return `must list at ${side} ${n} item${n === 1 ? '' : 's'}`;
    case 'number':
    case 'int':
    case 'bigint':
      if (inclusive === false) return `must be ${side === 'most' ? 'less' : 'greater'} than ${n}`;
      return `must be at ${side} ${n}`;
    default:
      return undefined;
  }
}

/**
 * The message for an issue whose rule did not set one of its own (a rule's own message wins: it
 * is the schema's, this is only the fallback of one parse).
 */
export function fieldMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${TYPE_NOUNS[issue.expected] ?? issue.expected}`;
    case 'too_big':
      return bound('most', issue.origin, issue.maximum, issue.inclusive);
    case 'too_small':
      return bound('least', issue.origin, issue.minimum, issue.inclusive);
    case 'invalid_value':
      return `must be one of: ${issue.values.map(String).join(', ')}`;
    default:
      return undefined;
  }
}

/** What a field no schema knows is told. */
export const UNKNOWN_FIELD = 'is not a known field';

/** Paths are slash-separated like JSON pointers without the leading slash: `items/0/quantity`. */
export function problemsOf(error: z.ZodError): FieldProblem[] {
  const problems = error.issues.flatMap((issue) => {
    const base = issue.path.map(String).join('/');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: base ? `${base}/${key}` : key, message: UNKNOWN_FIELD }));
    }
    return [{ path: base || '(body)', message: issue.message }];
  });
  // One entry per field: an empty SKU breaks two rules but is one mistake.
  return problems.filter((p, i) => problems.findIndex((q) => q.path === p.path) === i);
}

export function validate<T extends z.ZodType>(schema: T, input: unknown): Validated<z.output<T>> {
  const parsed = schema.safeParse(input, { error: fieldMessage });
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, problems: problemsOf(parsed.error) };
}

/**
 * A request URL's query string against its schema. Read from the URL, not from `request.query`:
 * the Functions host hands the worker one value per name, repeated values joined with a comma, so
 * only the URL still shows a repeat. A parameter given more than once is refused rather than one
 * of its values silently used: `?state=cancelled&state=attention` is not a filter this API has.
 */
export function validateQuery<T extends z.ZodType>(schema: T, url: string): Validated<z.output<T>> {
  const values = new Map<string, string>();
  const repeated = new Set<string>();
  for (const [name, value] of new URL(url).searchParams) {
    if (values.has(name)) repeated.add(name);
    else values.set(name, value);
  }
  const parsed = validate(schema, Object.fromEntries(values));
  if (!repeated.size) return parsed;
  const problems = parsed.ok ? [] : parsed.problems;
  // An unknown parameter is said to be unknown, however often it came; a known one, to come once.
  return {
    ok: false,
    problems: [
      ...[...repeated].filter((name) => !problems.some((p) => p.path === name && p.message === UNKNOWN_FIELD)).map((path) => ({ path, message: 'must be given once' })),
      ...problems.filter((p) => !repeated.has(p.path) || p.message === UNKNOWN_FIELD),
    ],
  };
}

/** Whether each field of an ISO 8601 date and time is in range (Date.parse takes 30 February as 2 March). */
function exists(text: string): boolean {
  const fields = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))$/.exec(text);
  if (!fields) return false;
  const [y, mo, d, h, mi, sec = 0, oh = 0, om = 0] = fields.slice(1).map((f) => Number(f ?? 0));
  // setUTCFullYear, not Date.UTC, which reads years 0 to 99 as 1900 to 1999 (0000 is a leap year, 1900 is not).
  const end = new Date(0);
  end.setUTCFullYear(y!, mo!, 0);
  const days = end.getUTCDate();
  return mo! >= 1 && mo! <= 12 && d! >= 1 && d! <= days && h! <= 23 && mi! <= 59 && sec <= 59 && oh <= 23 && om <= 59 && !Number.isNaN(Date.parse(text));
}

/**
 * Date.parse drops the digits past the millisecond; the stamps are whole milliseconds, so one is
 * before 17:00:00.0001 exactly when it is before 17:00:00.001.
 */
function instantMs(text: string): number {
  return Date.parse(text) + (/\.\d{3}\d*[1-9]/.test(text) ? 1 : 0);
}

/**
 * An instant in ISO 8601 with its offset (`2026-11-29T17:00:00Z`, `...T18:00:00.5+01:00`), read as
 * the UTC text the documents hold (`toISOString()`), so it compares with their stamps as text.
 */
export const instant = z
  .string()
  // A "+" sent as it is in a query string reads as a space: say so rather than that the offset is missing.
  .refine((text) => !/T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)? \d{2}:\d{2}$/.test(text), 'must be a date and time with its offset; a "+" in a query string is sent as %2B')
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/, 'must be a date and time with its offset, such as 2026-11-29T17:00:00Z')
  .refine(exists, 'must be a date and time that exists')
  // After 9999 in UTC the text is "+010000-...", which sorts before every stamp.
  .refine((text) => instantMs(text) < Date.UTC(10000, 0, 1), 'must be a date and time before the year 10000 in UTC')
  .transform((text) => new Date(instantMs(text)).toISOString());

/** Most items a listing returns in one page, whatever the caller asks for. */
export const PAGE_MAX = 100;

/** The paging parameters of every listing: `pageSize` (1-PAGE_MAX, 20 when absent) and `continuationToken`. */
export const pageQueryFields = {
  // Digits only: a number's other spellings (`0x10`, `1e1`, ` 5`) are not what a page size looks like.
  pageSize: z
    .string()
    .regex(/^-?[0-9]+$/, 'must be a whole number')
    // However many digits: past PAGE_MAX it is said to be too big, not not a number; below zero, too small.
    .transform((digits) => {
      if (digits.startsWith('-')) return /[1-9]/.test(digits) ? -1 : 0;
      const significant = digits.replace(/^0+(?=\d)/, '');
      return significant.length > 9 ? Number.MAX_SAFE_INTEGER : Number(significant);
    })
    .pipe(z.number().min(1).max(PAGE_MAX))
    .optional()
    .transform((n) => n ?? 20),
  continuationToken: z.string().min(1).max(8192).optional(),
};

/** The 400 for a `continuationToken` a listing cannot go on from, saying why. */
export function invalidContinuationToken(why = 'is not a token this API issued'): ValidationError {
  return new ValidationError('invalid continuationToken', [{ path: 'continuationToken', message: why }]);
}
