/**
 * When each support action applies: the API's rules (src/support/actions.ts), so the portal offers
 * a button only when the API would accept it, and says why not otherwise. Compensating again while
 * compensation runs, or once the order is cancelled, is accepted there as a no-op: not offered
 * here. test/unit/portalActionRules.test.ts holds both to the same answers.
 */
import { statusLabel } from './format';

const SERVICES = ['inventory', 'billing', 'notification'] as const;
const ACTIVE_STATES: readonly string[] = ['accepted', 'processing'];
const REQUEUE_BILLING_FROM: readonly string[] = ['pending', 'processing', 'deadlettered'];
const COMPENSATE_IN: readonly string[] = ['accepted', 'processing', 'attention'];

export interface ActionSubject {
  state?: string;
  status?: Partial<Record<(typeof SERVICES)[number], string>> | null;
}

/** Why requeue does not apply now, or undefined when it does. */
export function requeueRefusal(order: ActionSubject): string | undefined {
  if (!order.state || !ACTIVE_STATES.includes(order.state)) return `the order is ${statusLabel(order.state)}`;
  const billing = order.status?.billing ?? '';
  if (billing === 'failed') return 'billing failed for a business reason; compensate instead';
  if (!REQUEUE_BILLING_FROM.includes(billing)) return `billing is ${statusLabel(billing)}`;
  return undefined;
}

/** Why compensate does not apply now, or undefined when it does. */
export function compensateRefusal(order: ActionSubject): string | undefined {
  if (order.state && !COMPENSATE_IN.includes(order.state)) return `the order is ${statusLabel(order.state)}`;
  if (SERVICES.every((s) => order.status?.[s] === 'done')) return 'every service is done; the order is completing';
  return undefined;
}
