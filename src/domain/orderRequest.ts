/** The body of `POST /api/orders`, validated with every bad field reported at once. */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isOnlyDots, SKU_CHARACTERS } from './catalog';
import { validate, type Validated } from './validation';

export const MAX_ITEMS = 50;
export const MAX_QUANTITY = 1000;

/**
 * A customer id is what support types to find the customer's orders: control characters and
 * halves of a character (unpaired surrogates) can be neither typed, shown nor searched for.
 */
export const searchableText = <T extends z.ZodString>(schema: T) =>
  schema.refine((text) => !/[\p{Cc}\p{Cs}]/u.test(text), 'must not contain control characters or broken characters');

/**
 * A whole number from `min` to `max`. One beyond ±(2^53 - 1), where JSON numbers stop being exact,
 * fails the whole-number check too: it is said to be out of range, not "not whole".
 */
const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .number()
    .int({
      error: (issue) => (issue.code === 'too_big' ? `must be at most ${max}` : issue.code === 'too_small' ? `must be at least ${min}` : 'must be a whole number'),
    })
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

const itemsSchema = z
  .array(
    z.strictObject({
      sku: z
        .string()
        .min(1, 'must be a non-empty string')
        .max(64)
        .regex(SKU_CHARACTERS, 'may contain only letters, digits, dot, underscore and dash')
        .refine((sku) => !isOnlyDots(sku), 'must not be only dots'),
      quantity: wholeNumber(1, MAX_QUANTITY),
    }),
  )
  .min(1, 'must list at least one item')
  .max(MAX_ITEMS);

/** Lines of one SKU are reserved as one: together they keep the limit of one line. */
function oneSkuWithinLimit(items: z.output<typeof itemsSchema>, ctx: z.RefinementCtx): void {
  const totals = new Map<string, number>();
  items.forEach((item, i) => {
    const before = totals.get(item.sku) ?? 0;
    totals.set(item.sku, before + item.quantity);
    if (before <= MAX_QUANTITY && before + item.quantity > MAX_QUANTITY) {
      ctx.addIssue({ code: 'custom', path: [i, 'quantity'], message: `with the lines before it for ${item.sku}, must be at most ${MAX_QUANTITY} in all` });
    }
  });
}

const orderRequestShape = (items: z.ZodType<z.output<typeof itemsSchema>>) =>
  z.strictObject({
    customerId: searchableText(z.string().trim().min(1, 'must be a non-empty string').max(128)),
    items,
    simulate: z
      .strictObject({
        // No upper bound: a count past every delivery and requeue makes billing never succeed.
        billingFailures: wholeNumber(0).optional(),
      })
      .optional(),
  });

export const orderRequestSchema = orderRequestShape(itemsSchema.superRefine(oneSkuWithinLimit));

/**
 * The rules earlier versions of the API accepted bodies by, looser than today's (one SKU could
 * pass the line limit over several lines). An order they accepted was recorded, and a retry of it
 * with its Idempotency-Key is still that order.
 */
const recordedOrderRequestSchema = orderRequestShape(itemsSchema);

export type OrderRequest = z.infer<typeof orderRequestSchema>;

export function parseOrderRequest(body: unknown, options: { faultInjectionEnabled: boolean }): Validated<OrderRequest> {
  const parsed = validate(orderRequestSchema, body);
  let problems = parsed.ok ? [] : [...parsed.problems];
  const simulate = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).simulate : undefined;
  if (simulate !== undefined && !options.faultInjectionEnabled) {
    // Where `simulate` is not taken at all, that is the one thing to say about it: not also how its
    // shape is wrong (`simulate: null` named the field twice, "must be a JSON object" beside this).
    problems = problems.filter((p) => p.path !== 'simulate' && !p.path.startsWith('simulate/'));
    problems.push({ path: 'simulate', message: 'fault injection is not enabled on this deployment' });
  }
  if (problems.length > 0 || !parsed.ok) return { ok: false, problems };
  return parsed;
}

/** The body as earlier versions read it, when they would have accepted it here; see `recordedOrderRequestSchema`. */
export function parseRecordedOrderRequest(body: unknown, options: { faultInjectionEnabled: boolean }): OrderRequest | undefined {
  const parsed = recordedOrderRequestSchema.safeParse(body);
  return parsed.success && (options.faultInjectionEnabled || parsed.data.simulate === undefined) ? parsed.data : undefined;
}

/**
 * A stable fingerprint of what the client asked for, to recognise "same Idempotency-Key, same
 * body" regardless of key order or whitespace.
 */
export function orderRequestFingerprint(request: OrderRequest): string {
  const canonical = {
    customerId: request.customerId,
    items: request.items.map((i) => ({ sku: i.sku, quantity: i.quantity })),
    simulate: request.simulate?.billingFailures === undefined ? null : { billingFailures: request.simulate.billingFailures },
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}
