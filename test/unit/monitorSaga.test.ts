import { compensationOutcome, planCompensation } from '../../src/domain/saga';
import type { OrderDocument, ServiceStatus, TimelineEntry } from '../../src/domain/order';
import { orderDocument } from './support/orderDocument';

function order(
  status: { inventory: ServiceStatus; billing: ServiceStatus; notification: ServiceStatus },
  timeline: TimelineEntry[] = [],
): OrderDocument {
  return orderDocument({ state: 'compensating', status, timeline });
}

const names = (o: OrderDocument) => planCompensation(o).map((s) => s.name);

describe('planCompensation', () => {
  it('undoes the later step first: billing done after inventory -> refund, release, notice', () => {
    const o = order({ inventory: 'done', billing: 'done', notification: 'done' }, [
      { at: '2026-01-01T00:00:01.000Z', kind: 'done', service: 'inventory' },
      { at: '2026-01-01T00:00:02.000Z', kind: 'done', service: 'billing' },
    ]);
    expect(names(o)).toEqual(['refundPayment', 'releaseStock', 'sendCancellation']);
  });

  it('inventory done after billing -> release, refund, notice', () => {
    const o = order({ inventory: 'done', billing: 'done', notification: 'done' }, [
      { at: '2026-01-01T00:00:01.000Z', kind: 'done', service: 'billing' },
      { at: '2026-01-01T00:00:05.000Z', kind: 'done', service: 'inventory' },
    ]);
    expect(names(o)).toEqual(['releaseStock', 'refundPayment', 'sendCancellation']);
  });

  it('out of stock after a charge: the refund and the holds given back (none, unless the failing delivery died before returning them), then the notice', () => {
    const o = order({ inventory: 'failed', billing: 'done', notification: 'done' });
    const plan = names(o);
    expect(plan.slice(0, 2).sort()).toEqual(['refundPayment', 'releaseStock']);
    expect(plan[2]).toBe('sendCancellation');
  });

  it('releases stock again on a second run even when inventory says compensated: the first may have died before its holds were back', () => {
    const o = order({ inventory: 'compensated', billing: 'compensated', notification: 'done' });
    expect(names(o)).toEqual(['releaseStock', 'sendCancellation']);
  });

  it('a dead-lettered billing may still have charged: it is refunded (a no-op when nothing was charged)', () => {
    const o = order({ inventory: 'done', billing: 'deadlettered', notification: 'done' }, [
      { at: '2026-01-01T00:00:01.000Z', kind: 'done', service: 'inventory' },
    ]);
    expect(names(o)).toEqual(['refundPayment', 'releaseStock', 'sendCancellation']);
  });

  it('skips what is already compensated, so a second run only finishes the rest', () => {
    const o = order({ inventory: 'done', billing: 'compensated', notification: 'done' });
    expect(names(o)).toEqual(['releaseStock', 'sendCancellation']);
  });

  it('always ends with exactly one cancellation notice', () => {
    for (const s of ['pending', 'done', 'failed', 'compensated'] as ServiceStatus[]) {
      const plan = names(order({ inventory: s, billing: s, notification: s }));
      expect(plan.filter((n) => n === 'sendCancellation')).toHaveLength(1);
      expect(plan[plan.length - 1]).toBe('sendCancellation');
    }
  });
});

describe('compensationOutcome', () => {
  it('is cancelled when every compensation succeeded, attention otherwise', () => {
    expect(compensationOutcome([])).toEqual({ outcome: 'cancelled', failures: [] });
    expect(compensationOutcome([{ name: 'refundPayment', error: 'gateway down' }]).outcome).toBe('attention');
  });
});
