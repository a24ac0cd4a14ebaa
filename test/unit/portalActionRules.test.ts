// The portal offers Requeue and Compensate exactly when the API would accept them: for every order
// state and every combination of service statuses, its rule and the API's give the same answer.
import { actionOutcome, compensateRefusal, requeueRefusal } from '../../portal/src/actionRules';
import { formatWhen } from '../../portal/src/format';
import type { OrderState, ServiceStatus, TimelineEntry } from '../../src/domain/order';
import { MAX_SUPPORT_COMPENSATIONS, MAX_SUPPORT_REQUEUES, newOrder } from '../../src/domain/orderState';
import { createLogger } from '../../src/log';
import { requestCompensation, requestRequeue } from '../../src/support/actions';
import type { SupportPrincipal } from '../../src/support/principal';
import { memoryDependencies, RecordingMonitor } from './support/memoryStores';

const STATES: OrderState[] = ['accepted', 'processing', 'completed', 'compensating', 'cancelled', 'attention'];
const STATUSES: ServiceStatus[] = ['pending', 'processing', 'done', 'failed', 'deadlettered', 'compensated'];
const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });
const ana: SupportPrincipal = { name: 'ana@contoso.com', roles: ['support'], source: 'app-service-auth' };

/** A person asked for compensation, and the order has not begun it. */
const COMPENSATE_ASKED: TimelineEntry[] = [{ at: '2026-11-28T10:00:00.000Z', kind: 'support-action', detail: 'compensate', actor: 'bo@contoso.com' }];

/** Whether the API accepts the action on this order, as a fresh store holds it. */
async function apiAccepts(
  action: 'requeue' | 'compensate',
  state: OrderState,
  status: Record<'inventory' | 'billing' | 'notification', ServiceStatus>,
  timeline: TimelineEntry[] = [],
) {
  const deps = memoryDependencies();
  const order = newOrder({ id: 'o-1', eventId: 'e-1', correlationId: 'c-1', customerId: 'cu-1', items: [{ sku: 'MOUSE-01', quantity: 1, unitPrice: 24.5 }], total: 24.5, now: deps.now() });
  deps.orders.docs.set(order.id, { ...order, state, status, timeline: [...order.timeline, ...timeline] });
  const env = { deps, monitor: new RecordingMonitor(), log: silent };
  const result = action === 'requeue' ? await requestRequeue(order.id, ana, env) : await requestCompensation(order.id, ana, env);
  return result.kind === 'accepted' && !result.body.alreadyRequested;
}

/** A person asked for a requeue, and the monitor has not carried it out. */
const REQUEUE_ASKED: TimelineEntry[] = [{ at: '2026-11-28T10:00:00.000Z', kind: 'support-action', detail: 'requeue', actor: 'bo@contoso.com', service: 'billing' }];
/** ...and once it has. */
const REQUEUE_DONE: TimelineEntry[] = [...REQUEUE_ASKED, { at: '2026-11-28T10:00:01.000Z', kind: 'requeued', service: 'billing', actor: 'monitor', detail: 'attempt 1' }];

/** Every requeue a person may ask for, asked for and carried out. */
const REQUEUES_USED_UP: TimelineEntry[] = Array.from({ length: MAX_SUPPORT_REQUEUES }, (_, i) => [
  { ...REQUEUE_ASKED[0]!, at: `2026-11-28T10:${String(i).padStart(2, '0')}:00.000Z` },
  { ...REQUEUE_DONE[1]!, at: `2026-11-28T10:${String(i).padStart(2, '0')}:01.000Z`, detail: `attempt ${i + 1}` },
]).flat();
/** Every compensation a person may ask for, each run begun. */
const COMPENSATIONS_USED_UP: TimelineEntry[] = Array.from({ length: MAX_SUPPORT_COMPENSATIONS }, (_, i) => [
  { ...COMPENSATE_ASKED[0]!, at: `2026-11-28T11:${String(i).padStart(2, '0')}:00.000Z` },
  { at: `2026-11-28T11:${String(i).padStart(2, '0')}:01.000Z`, kind: 'compensation-started', detail: `run ${i + 1}`, actor: 'bo@contoso.com' },
]).flat();

it.each([
  ['no request', [], true],
  ['every requeue used up', REQUEUES_USED_UP, true],
  // On an active order the last request is pending; in attention no more may be made: nothing is offered.
  ['every compensation used up', COMPENSATIONS_USED_UP, false],
  ['compensation asked for', COMPENSATE_ASKED, true],
  ['a requeue asked for', REQUEUE_ASKED, true],
  ['a requeue carried out', REQUEUE_DONE, true],
])('offers each action on exactly the orders the API accepts it for, and says why not otherwise (%s)', async (_, timeline: TimelineEntry[], offersSome: boolean) => {
  let offered = 0;
  let refused = 0;
  for (const state of STATES) {
    for (const inventory of STATUSES) {
      for (const billing of STATUSES) {
        for (const notification of STATUSES) {
          const status = { inventory, billing, notification };
          for (const [action, refusal] of [
            ['requeue', requeueRefusal({ state, status, timeline })],
            ['compensate', compensateRefusal({ state, status, timeline })],
          ] as const) {
            const accepted = await apiAccepts(action, state, status, timeline);
            expect({ action, state, status, portalOffers: refusal === undefined }).toEqual({ action, state, status, portalOffers: accepted });
            if (refusal === undefined) offered++;
            else {
              refused++;
              expect(refusal).toMatch(/^(the order is|the order needs attention|billing|(inventory|notification) failed for a business reason|every service|compensation was asked for by bo@contoso.com|compensation was asked for \d+ times|a requeue was asked for by bo@contoso.com)/);
            }
          }
        }
      }
    }
  }
  // Both answers occur for both actions (a rule that always says the same would pass nothing).
  if (offersSome) expect(offered).toBeGreaterThan(100);
  else expect(offered).toBe(0);
  expect(refused).toBeGreaterThan(100);
});

it('refuses a requeue of billing once another service failed for a business reason: the order is compensated, a charge would be refunded', async () => {
  const status = { inventory: 'failed', billing: 'deadlettered', notification: 'done' } as const;
  const why = 'inventory failed for a business reason; the order is compensated, not retried';
  expect(requeueRefusal({ state: 'processing', status })).toBe(why);
  expect(await apiAccepts('requeue', 'processing', status, [])).toBe(false);
});

it('says an order that needs attention in words, in the portal and in the API', async () => {
  const status = { inventory: 'failed', billing: 'done', notification: 'compensated' } as const;
  expect(requeueRefusal({ state: 'attention', status })).toBe('the order needs attention');
  expect(requeueRefusal({ state: 'cancelled', status })).toBe('the order is cancelled');
  const deps = memoryDependencies();
  const order = newOrder({ id: 'o-1', eventId: 'e-1', correlationId: 'c-1', customerId: 'cu-1', items: [{ sku: 'MOUSE-01', quantity: 1, unitPrice: 24.5 }], total: 24.5, now: deps.now() });
  deps.orders.docs.set(order.id, { ...order, state: 'attention', status: { ...status } });
  const result = await requestRequeue(order.id, ana, { deps, monitor: new RecordingMonitor(), log: silent });
  expect(result).toMatchObject({ kind: 'notApplicable', detail: 'the order needs attention; only an active order can be requeued' });
});

describe('what the portal says after an action', () => {
  const orderId = '5e1f0c4a-7d55-4a39-9b7e-2a6b3f1d9c01';

  it('names the person and the time of the request already pending, as the API answers them', () => {
    const requestedAt = '2026-11-28T10:00:05.000Z';
    const text = actionOutcome(
      { orderId, action: 'requeue', accepted: true, alreadyRequested: true, requestedBy: 'bo@contoso.com', requestedAt },
      'requeue',
      orderId,
    );
    expect(text).toBe(`Requeue was already asked for by bo@contoso.com at ${formatWhen(requestedAt)} on order 5e1f0c4a: nothing new was recorded.`);
  });

  it('says a new request was accepted', () => {
    const text = actionOutcome({ orderId, action: 'compensate', accepted: true, alreadyRequested: false, requestedBy: 'ana@contoso.com' }, 'compensate', orderId);
    expect(text).toBe('Compensate accepted for order 5e1f0c4a. Watch the lanes and timeline below.');
  });
});

it('offers Compensate on an order in attention whose services late deliveries all finished: only an active order completes', async () => {
  const done = { inventory: 'done', billing: 'done', notification: 'done' } as const;
  expect(await apiAccepts('compensate', 'attention', done)).toBe(true);
  expect(compensateRefusal({ state: 'attention', status: done })).toBeUndefined();
  // An active one is about to complete, and is not cancelled.
  expect(await apiAccepts('compensate', 'processing', done)).toBe(false);
  expect(compensateRefusal({ state: 'processing', status: done })).toBe('every service is done; the order is completing');
});
