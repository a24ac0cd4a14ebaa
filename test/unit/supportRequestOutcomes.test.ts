/**
 * What the support view tells of each request a person made: pending while the monitor still owes
 * it, carried out by what followed it on the timeline, or overtaken by the order moving on first.
 */
import { decideNextStep, DEFAULT_MONITOR_POLICY, monitorSnapshotOf } from '../../src/domain/monitorPolicy';
import type { TimelineEntry } from '../../src/domain/order';
import { supportRequestOutcomes } from '../../src/domain/orderState';
import { orderDocument } from './support/orderDocument';

const at = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
const ask = (s: number, action: 'requeue' | 'compensate', actor = 'ana@contoso.com'): TimelineEntry => ({ at: at(s), kind: 'support-action', detail: action, actor });
const requeued = (s: number, actor = 'ana@contoso.com'): TimelineEntry => ({ at: at(s), kind: 'requeued', service: 'billing', actor, detail: 'attempt 1, message e-1:billing:1' });
const begun = (s: number, run: number, actor = 'ana@contoso.com'): TimelineEntry => ({
  at: at(s),
  kind: 'compensation-started',
  detail: `run ${run}`,
  actor,
  reason: `requested by ${actor}`,
});
const billingDeadLettered = { inventory: 'done', billing: 'deadlettered', notification: 'done' } as const;
const allDone = { inventory: 'done', billing: 'done', notification: 'done' } as const;

describe('supportRequestOutcomes', () => {
  it('has nothing to tell of an order nobody asked anything of', () => {
    expect(supportRequestOutcomes(orderDocument())).toEqual([]);
  });

  it('tells a compensate request pending until its run begins, then carried out by that run', () => {
    const asked = orderDocument({ timeline: [ask(1, 'compensate')] });
    expect(supportRequestOutcomes(asked)).toEqual([
      { action: 'compensate', by: 'ana@contoso.com', at: at(1), outcome: 'pending', detail: 'the monitor begins compensation at its next look' },
    ]);
    const running = orderDocument({ state: 'compensating', timeline: [ask(1, 'compensate'), begun(2, 1)] });
    expect(supportRequestOutcomes(running)).toEqual([
      { action: 'compensate', by: 'ana@contoso.com', at: at(1), outcome: 'carried-out', detail: 'compensation began (run 1)', carriedOutAt: at(2) },
    ]);
  });

  it('tells a compensate request the order completed before as overtaken, nothing undone', () => {
    const completed = orderDocument({ state: 'completed', status: allDone, timeline: [ask(1, 'compensate'), { at: at(2), kind: 'completed' }] });
    expect(supportRequestOutcomes(completed)).toEqual([
      expect.objectContaining({
        action: 'compensate',
        outcome: 'overtaken',
        detail: 'every service finished before compensation began: the order completed, and nothing was undone',
      }),
    ]);
    // Every service done, the completing write not landed yet: it will complete, not be cancelled.
    const completing = orderDocument({ state: 'processing', status: allDone, timeline: [ask(1, 'compensate')] });
    expect(supportRequestOutcomes(completing)[0]).toMatchObject({ outcome: 'overtaken', detail: expect.stringContaining('the order is completing') });
  });

  it('tells a compensate request on an order in attention pending when a late delivery then finishes the last service: a compensating order never completes', () => {
    // Run 1 could undo nothing (every step failed) while notification's delivery was still at work;
    // bo asks again (attention -> compensating), and that delivery then records its `done`.
    const failed = (s: number, name: string): TimelineEntry => ({ at: at(s), kind: 'compensation-failed', detail: `${name} failed after retries`, actor: 'monitor' });
    const order = orderDocument({
      state: 'compensating',
      status: allDone,
      timeline: [
        { at: at(1), kind: 'done', service: 'inventory' },
        { at: at(2), kind: 'done', service: 'billing' },
        { at: at(3), kind: 'delivery', service: 'notification' },
        ask(4, 'compensate'),
        begun(5, 1),
        { at: at(6), kind: 'compensation-underway', detail: 'run 1', actor: 'monitor' },
        failed(7, 'refundPayment'),
        failed(8, 'releaseStock'),
        failed(9, 'sendCancellation'),
        { at: at(10), kind: 'attention', actor: 'monitor' },
        ask(11, 'compensate', 'bo@contoso.com'),
        { at: at(12), kind: 'done', service: 'notification' },
      ],
    });
    // The monitor begins bo's run: only an active order is completed instead.
    expect(decideNextStep(monitorSnapshotOf(order), DEFAULT_MONITOR_POLICY, new Date(at(13)))).toMatchObject({ kind: 'compensate', requestedBy: 'bo@contoso.com' });
    expect(supportRequestOutcomes(order)[1]).toEqual({
      action: 'compensate',
      by: 'bo@contoso.com',
      at: at(11),
      outcome: 'pending',
      detail: 'the monitor begins compensation at its next look',
    });
  });

  it('gives each compensate request on an order in attention its own run', () => {
    const order = orderDocument({
      state: 'attention',
      timeline: [ask(1, 'compensate'), begun(2, 1), { at: at(3), kind: 'attention' }, ask(4, 'compensate', 'bo@contoso.com'), begun(5, 2, 'bo@contoso.com'), { at: at(6), kind: 'attention' }],
    });
    expect(supportRequestOutcomes(order)).toEqual([
      expect.objectContaining({ by: 'ana@contoso.com', outcome: 'carried-out', detail: 'compensation began (run 1)', carriedOutAt: at(2) }),
      expect.objectContaining({ by: 'bo@contoso.com', outcome: 'carried-out', detail: 'compensation began (run 2)', carriedOutAt: at(5) }),
    ]);
  });

  it('tells a requeue request pending on a dead-lettered billing, then carried out by the requeue written after it once its message went out', async () => {
    const asked = orderDocument({ status: billingDeadLettered, timeline: [ask(1, 'requeue')] });
    expect(supportRequestOutcomes(asked)).toEqual([
      { action: 'requeue', by: 'ana@contoso.com', at: at(1), outcome: 'pending', detail: 'the monitor requeues billing at its next look' },
    ]);
    // The requeue names its message before the send: until the send is recorded, Service Bus may not have taken it.
    const written = orderDocument({ status: { ...billingDeadLettered, billing: 'pending' }, timeline: [ask(1, 'requeue'), requeued(2)] });
    expect(supportRequestOutcomes(written)).toEqual([
      {
        action: 'requeue',
        by: 'ana@contoso.com',
        at: at(1),
        outcome: 'pending',
        detail: 'billing requeued (attempt 1, message e-1:billing:1); its message has not gone out yet: the monitor sends it again',
      },
    ]);
    const sent: TimelineEntry = { at: at(3), kind: 'republished', service: 'billing', reason: 'requeue 1 by ana@contoso.com', detail: 'attempt 1, message e-1:billing:1', actor: 'monitor' };
    const done = orderDocument({ status: { ...billingDeadLettered, billing: 'pending' }, timeline: [ask(1, 'requeue'), requeued(2), sent] });
    expect(supportRequestOutcomes(done)).toEqual([
      { action: 'requeue', by: 'ana@contoso.com', at: at(1), outcome: 'carried-out', detail: 'billing requeued (attempt 1, message e-1:billing:1)', carriedOutAt: at(2) },
    ]);
    // A billing that moved on without the record (it took the message, or the order finished) needs no send.
    const taken = orderDocument({ status: { ...billingDeadLettered, billing: 'done' }, timeline: [ask(1, 'requeue'), requeued(2)] });
    expect(supportRequestOutcomes(taken)[0]).toMatchObject({ outcome: 'carried-out', carriedOutAt: at(2) });
  });

  it('never tells a requeue whose message has not gone out carried out once compensation is asked for: the monitor compensates and never sends it', () => {
    const written = { state: 'processing' as const, status: { ...billingDeadLettered, billing: 'pending' as const } };
    const asked = orderDocument({ ...written, timeline: [ask(1, 'requeue'), requeued(2), ask(3, 'compensate', 'bo@contoso.com')] });
    // The requeue step declines it from here on, and the monitor's next step is the run.
    expect(decideNextStep(monitorSnapshotOf(asked), DEFAULT_MONITOR_POLICY, new Date(at(4)))).toMatchObject({ kind: 'compensate' });
    const unsent = {
      action: 'requeue',
      by: 'ana@contoso.com',
      at: at(1),
      outcome: 'pending',
      detail:
        'billing requeued (attempt 1, message e-1:billing:1); its message has not gone out yet, and compensation was asked for before its message was recorded sent: the monitor does not send it again',
    };
    expect(supportRequestOutcomes(asked)[0]).toEqual(unsent);
    // As it reads once the run began.
    const begunAfter = orderDocument({ ...written, state: 'compensating', timeline: [ask(1, 'requeue'), requeued(2), ask(3, 'compensate', 'bo@contoso.com'), begun(4, 1, 'bo@contoso.com')] });
    expect(supportRequestOutcomes(begunAfter)[0]).toEqual(unsent);
    // Cancelled with no send ever recorded: billing was never retried.
    const cancelled = orderDocument({
      state: 'cancelled',
      status: { inventory: 'compensated', billing: 'compensated', notification: 'compensated' },
      timeline: [ask(1, 'requeue'), requeued(2), ask(3, 'compensate', 'bo@contoso.com'), begun(4, 1, 'bo@contoso.com'), { at: at(5), kind: 'cancelled' }],
    });
    expect(supportRequestOutcomes(cancelled)[0]).toEqual({
      action: 'requeue',
      by: 'ana@contoso.com',
      at: at(1),
      outcome: 'overtaken',
      detail: 'compensation was asked for before its message was recorded sent; billing was not retried (a send that lands late finds it compensated)',
    });
    // Nor once another service failed for a business reason.
    const failed = orderDocument({ ...written, status: { ...written.status, inventory: 'failed' }, timeline: [ask(1, 'requeue'), requeued(2)] });
    expect(supportRequestOutcomes(failed)[0]).toMatchObject({ outcome: 'pending', detail: expect.stringContaining('inventory failed for a business reason') });
    // A send recorded (before or after compensation was asked for) is a requeue carried out.
    const sent: TimelineEntry = { at: at(4), kind: 'republished', service: 'billing', detail: 'attempt 1, message e-1:billing:1', actor: 'monitor' };
    const sentLate = orderDocument({ ...written, timeline: [ask(1, 'requeue'), requeued(2), ask(3, 'compensate', 'bo@contoso.com'), sent] });
    expect(supportRequestOutcomes(sentLate)[0]).toMatchObject({ outcome: 'carried-out', carriedOutAt: at(2) });
  });

  it('tells a requeue written before the request as no part of it', () => {
    const order = orderDocument({ status: billingDeadLettered, timeline: [requeued(1, 'monitor'), ask(2, 'requeue')] });
    expect(supportRequestOutcomes(order)[0]).toMatchObject({ outcome: 'pending' });
  });

  it.each([
    ['billing finished first', { state: 'completed', status: allDone, timeline: [ask(1, 'requeue')] }, 'billing finished before it was requeued'],
    [
      'billing failed for a business reason first',
      { status: { ...billingDeadLettered, billing: 'failed' }, timeline: [ask(1, 'requeue')] },
      'billing failed for a business reason before it was requeued',
    ],
    [
      'compensation was asked for after it',
      { status: billingDeadLettered, timeline: [ask(1, 'requeue'), ask(2, 'compensate', 'bo@contoso.com')] },
      'compensation was asked for after it; the order is compensated, not retried',
    ],
    [
      'compensation began',
      { state: 'compensating', status: billingDeadLettered, timeline: [ask(1, 'requeue'), begun(2, 1, 'monitor')] },
      'compensation began before billing was requeued; billing is refunded, not retried',
    ],
    [
      'inventory failed for a business reason',
      { status: { inventory: 'failed', billing: 'deadlettered', notification: 'done' }, timeline: [ask(1, 'requeue')] },
      'inventory failed for a business reason; the order is compensated, not retried',
    ],
  ] as const)('tells a requeue request overtaken when %s', (_, over, detail) => {
    const order = orderDocument({ ...over, status: { ...over.status }, timeline: [...over.timeline] });
    expect(supportRequestOutcomes(order)[0]).toMatchObject({ action: 'requeue', outcome: 'overtaken', detail });
  });

  it('keeps the requests in the order they were made, and reads a timeline the portal holds as the API sent it', () => {
    const order = { state: 'processing', status: billingDeadLettered, timeline: [{ kind: 'support-action', detail: 'requeue', at: at(1) }, { kind: 'support-action', detail: 'compensate' }, ask(3, 'compensate')] };
    expect(supportRequestOutcomes(order).map((r) => [r.action, r.by, r.outcome])).toEqual([
      ['requeue', 'support', 'overtaken'],
      ['compensate', 'ana@contoso.com', 'pending'],
    ]);
  });
});
