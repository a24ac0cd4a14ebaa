/** The body of `POST /api/orders`, validated with every bad field reported at once. */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { FieldProblem } from '../errors';

export const MAX_ITEMS = 50;
export const MAX_QUANTITY = 1000;
export const MAX_BILLING_FAILURES = 10;

export const orderRequestSchema = z.strictObject({
  customerId: z.string().trim().min(1, 'must be a non-empty string').max(128),
  items: z
    .array(
      z.strictObject({
        sku: z
          .string()
          .min(1, 'must be a non-empty string')
          .max(64)
          .regex(/^[A-Za-z0-9._-]+$/, 'may contain only letters, digits, dot, underscore and dash'),
        quantity: z.number().int('must be a whole number').positive('must be at least 1').max(MAX_QUANTITY),
      }),
    )
    .min(1, 'must list at least one item')
    .max(MAX_ITEMS),
  simulate: z
    .strictObject({
      billingFailures: z.number().int().min(0).max(MAX_BILLING_FAILURES).optional(),
    })
    .optional(),
});

export type OrderRequest = z.infer<typeof orderRequestSchema>;

export type OrderRequestResult = { ok: true; value: OrderRequest } | { ok: false; problems: FieldProblem[] };

/** Paths are slash-separated like JSON pointers without the leading slash: `items/0/quantity`. */
export function problemsOf(error: z.ZodError): FieldProblem[] {
  const problems = error.issues.flatMap((issue) => {
    const base = issue.path.map(String).join('/');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: base ? `${base}/${key}` : key, message: 'is not a known field' }));
    }
    return [{ path: base || '(body)', message: issue.message }];
  });
  // One entry per field: an empty SKU breaks two rules but is one mistake.
  return problems.filter((p, i) => problems.findIndex((q) => q.path === p.path) === i);
}

export function parseOrderRequest(body: unknown, options: { faultInjectionEnabled: boolean }): OrderRequestResult {
  const parsed = orderRequestSchema.safeParse(body);
  const problems = parsed.success ? [] : problemsOf(parsed.error);
  const simulate = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).simulate : undefined;
  if (simulate !== undefined && !options.faultInjectionEnabled) {
    problems.push({ path: 'simulate', message: 'fault injection is not enabled on this deployment' });
  }
  if (problems.length > 0 || !parsed.success) return { ok: false, problems };
  return { ok: true, value: parsed.data };
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
