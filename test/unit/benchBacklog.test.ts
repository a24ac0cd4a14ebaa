/** The backlog run's figures, from orders as the API answers them. */
import { completedAfterSeconds } from '../../bench/backlog';

describe('how long a completed order took', () => {
  const placed = '2026-11-29T03:00:00.000Z';

  it('is measured to its completion, not to entries written after it', () => {
    const order = {
      state: 'completed',
      createdAt: placed,
      updatedAt: '2026-11-29T03:09:00.000Z',
      timeline: [
        { kind: 'accepted', at: placed },
        { kind: 'delivery', service: 'billing', at: '2026-11-29T03:04:00.000Z' },
        { kind: 'completed', service: 'billing', at: '2026-11-29T03:05:30.000Z' },
        // A republished message the backlog held, delivered after the order completed.
        { kind: 'duplicate-ignored', service: 'billing', at: '2026-11-29T03:09:00.000Z' },
      ],
    };
    expect(completedAfterSeconds(order)).toBe(330);
  });

  it('is none for an order that did not complete', () => {
    expect(completedAfterSeconds({ state: 'cancelled', createdAt: placed, timeline: [{ kind: 'accepted', at: placed }] })).toBeUndefined();
  });
});
