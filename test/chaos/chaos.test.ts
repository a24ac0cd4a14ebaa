/**
 * The fault-injection run, small: a few dozen orders with billing failures, the low-stock and the
 * hot SKU while the host is SIGKILLed three times; nothing may be lost. The checker is tested on
 * synthetic observations first, so a broken checker cannot make the run pass.
 */
import { corruptCopyTarget, describeFaults, FAST_MONITOR_SETTINGS, formatChaosReport, killPointsWhilePlacing, planOrders, runChaos, seededRandom } from '../../bench/chaos';
import { checkChaosInvariants, type ChaosObservation, type ObservedOrder } from '../../bench/chaos-invariants';
import { Progress } from '../../bench/load';
import { startLocalStack, type LocalStack } from '../../local/stack';

const at = '2026-01-01T00:00:00.000Z';
/** The small run's message locks: a killed host's messages come back after this, not a minute. */
const LOCK_SECONDS = 10;
const completed = (id: string, sku: string, quantity: number, total: number): ObservedOrder => ({
  id,
  state: 'completed',
  total,
  items: [{ sku, quantity }],
  status: { inventory: 'done', billing: 'done', notification: 'done' },
  payment: { charged: total, refunded: 0 },
  notifications: [{ kind: 'confirmation', at }],
});
const cancelled = (id: string, sku: string, quantity: number, total: number, charged = 0): ObservedOrder => ({
  id,
  state: 'cancelled',
  total,
  items: [{ sku, quantity }],
  status: { inventory: 'compensated', billing: 'compensated', notification: 'compensated' },
  payment: { charged, refunded: charged },
  notifications: [{ kind: 'cancellation', at }],
});

/** Two completed orders (3 + 1 units of A), one cancelled after a refund; stock moved accordingly. */
function soundObservation(): ChaosObservation {
  return {
    initialStock: [
      { sku: 'A', available: 10, reserved: 0 },
      { sku: 'B', available: 3, reserved: 0 },
    ],
    finalStock: [
      { sku: 'A', available: 6, reserved: 4 },
      { sku: 'B', available: 3, reserved: 0 },
    ],
    orders: [completed('o1', 'A', 3, 30), completed('o2', 'A', 1, 10), cancelled('o3', 'B', 5, 50, 50)],
    neverAccepted: [],
  };
}

const kinds = (o: ChaosObservation) => checkChaosInvariants(o).violations.map((v) => `${v.kind} ${v.subject}`);

describe('chaos invariant checker', () => {
  it('finds nothing wrong when every order ended consistently', () => {
    const verdict = checkChaosInvariants(soundObservation());
    expect(verdict.violations).toEqual([]);
    expect(verdict.counts).toMatchObject({ accepted: 3, completed: 2, cancelled: 1 });
    expect(verdict.stock.map((s) => [s.sku, s.completedQuantity, s.ok])).toEqual([
      ['A', 4, true],
      ['B', 0, true],
    ]);
  });

  it('flags an order cancelled with no business failure: faults must not cost a customer a valid order', () => {
    const o = soundObservation();
    const outOfStock = [{ kind: 'failed', service: 'inventory' }, { kind: 'compensation-started', reason: 'inventory failed: out of stock: B (requested 5)' }];
    o.orders[2] = { ...o.orders[2]!, timeline: outOfStock };
    expect(kinds(o)).toEqual([]);
    o.orders[2] = { ...o.orders[2]!, timeline: [{ kind: 'deadlettered', service: 'billing' }, { kind: 'compensation-started', reason: 'billing dead-lettered after 3 requeues' }] };
    expect(checkChaosInvariants(o).violations).toEqual([
      { kind: 'cancelled-without-cause', subject: 'o3', detail: 'cancelled with no business failure on its timeline: billing dead-lettered after 3 requeues' },
    ]);
  });

  it('flags a second confirmation of a completed order', () => {
    const o = soundObservation();
    o.orders[0]!.notifications.push({ kind: 'confirmation', at });
    expect(kinds(o)).toEqual(['confirmation o1']);
  });

  it('flags a completed order charged twice and a cancelled order not refunded', () => {
    const o = soundObservation();
    o.orders[1]!.payment.charged = 20;
    o.orders[2]!.payment.refunded = 0;
    expect(kinds(o)).toEqual(['money o2', 'money o3']);
  });

  it('flags a cancelled order without its cancellation notice, and one with two confirmations', () => {
    const o = soundObservation();
    o.orders[2]!.notifications = [
      { kind: 'confirmation', at },
      { kind: 'confirmation', at },
    ];
    expect(kinds(o)).toEqual(['confirmation o3', 'cancellation-notice o3']);
  });

  it('flags stock that leaked (still reserved for a cancelled order) and oversold stock', () => {
    const leaked = soundObservation();
    leaked.finalStock[1] = { sku: 'B', available: 1, reserved: 2 };
    expect(kinds(leaked)).toEqual(['stock B']);
    const oversold = soundObservation();
    oversold.finalStock[0] = { sku: 'A', available: -1, reserved: 11 };
    expect(checkChaosInvariants(oversold).violations[0]!.detail).toContain('oversold');
  });

  it('flags stock still held by a finished order, and names the orders holding a short SKU', () => {
    const o = soundObservation();
    // o1 completed but its hold was never settled: the counts are right, the hold is not.
    o.finalStock[0] = { sku: 'A', available: 6, reserved: 4, holds: [{ orderId: 'o1', quantity: 3 }] };
    // o3 was cancelled but still holds 2 of B.
    o.finalStock[1] = { sku: 'B', available: 1, reserved: 2, holds: [{ orderId: 'o3', quantity: 2 }] };
    const verdict = checkChaosInvariants(o);
    expect(kinds(o)).toEqual(['hold A', 'stock B', 'hold B']);
    expect(verdict.violations.find((v) => v.kind === 'stock')!.detail).toContain('holds left: o3 x2 (cancelled, inventory compensated)');
    // An order still on its way may hold stock.
    const inFlight = soundObservation();
    inFlight.orders.push({ ...completed('o4', 'A', 1, 10), state: 'processing' });
    inFlight.finalStock[0] = { sku: 'A', available: 5, reserved: 5, holds: [{ orderId: 'o4', quantity: 1 }] };
    expect(kinds(inFlight)).toEqual(['not-terminal o4', 'stock A']);
  });

  it('flags orders that are stuck, need a person, or were never accepted', () => {
    const o = soundObservation();
    o.orders.push({ ...completed('o4', 'A', 1, 10), state: 'processing', status: { inventory: 'done', billing: 'deadlettered', notification: 'done' } });
    o.orders.push({ ...cancelled('o5', 'B', 1, 10), state: 'attention', statusReason: { billing: 'refund failed' } });
    o.neverAccepted.push('chaos-key-7');
    expect(kinds(o).sort()).toEqual(['attention o5', 'not-accepted chaos-key-7', 'not-terminal o4']);
  });

  it('flags an unreadable copy that never showed on its order as dead-lettered by the service it was sent to', () => {
    const o = soundObservation();
    o.orders[0]!.timeline = [{ kind: 'deadlettered', service: 'inventory', detail: 'message o1:unreadable:inventory' }];
    // Recorded as noted (the service had finished), the detail goes on after the message id.
    o.orders[1]!.timeline = [{ kind: 'deadlettered', service: 'notification', detail: 'message o2:unreadable:notification; notification already done, order completed' }];
    // A dead-letter of billing's copy is not this copy's.
    o.orders[2]!.timeline = [{ kind: 'failed', service: 'inventory' }, { kind: 'deadlettered', service: 'billing', detail: 'message o3:unreadable:inventory' }];
    o.corruptCopies = [
      { orderId: 'o1', service: 'inventory', messageId: 'o1:unreadable:inventory' },
      { orderId: 'o2', service: 'notification', messageId: 'o2:unreadable:notification' },
      { orderId: 'o3', service: 'inventory', messageId: 'o3:unreadable:inventory' },
      { orderId: 'o9', service: 'inventory', messageId: 'o9:unreadable:inventory' },
    ];
    expect(kinds(o)).toEqual(['dead-letter o3', 'dead-letter o9']);
  });

  it("flags poison gone from its dead-letter queue, and a finished order's message left in one", () => {
    const o = soundObservation();
    o.corruptCopies = [
      { orderId: 'o1', service: 'inventory', messageId: 'o1:unreadable:inventory' },
      { orderId: 'o2', service: 'notification', messageId: 'o2:unreadable:notification' },
    ];
    o.orders[0]!.timeline = [{ kind: 'deadlettered', service: 'inventory', detail: 'message o1:unreadable:inventory' }];
    o.orders[1]!.timeline = [{ kind: 'deadlettered', service: 'notification', detail: 'message o2:unreadable:notification' }];
    o.orders.push({ ...completed('o4', 'A', 0, 0), state: 'attention' });
    o.deadLetterQueues = [
      { service: 'inventory', messageId: 'o1:unreadable:inventory', orderId: 'o1' },
      // o2's copy is in the wrong queue, so not where it was dead-lettered.
      { service: 'inventory', messageId: 'o2:unreadable:notification', orderId: 'o2' },
      // A cancelled order's billing message should have been taken out; one of an order left for a
      // person, and one naming no order of this run, stay.
      { service: 'billing', messageId: 'ev-o3:billing:1', orderId: 'o3' },
      { service: 'billing', messageId: 'ev-o4', orderId: 'o4' },
      { service: 'billing', messageId: 'stranger' },
    ];
    expect(kinds(o).filter((k) => k.startsWith('dead-letter-queue'))).toEqual(['dead-letter-queue o2', 'dead-letter-queue o3']);
    o.deadLetterQueues = o.deadLetterQueues.filter((m) => m.orderId !== 'o3').concat({ service: 'notification', messageId: 'o2:unreadable:notification', orderId: 'o2' });
    expect(kinds(o).filter((k) => k.startsWith('dead-letter-queue'))).toEqual([]);
  });

  it('sends an unreadable copy for one order in ten, to inventory and notification by turns, by place alone', () => {
    const targets = Array.from({ length: 40 }, (_, i) => corruptCopyTarget(i));
    expect(targets.filter(Boolean)).toEqual(['inventory', 'notification', 'inventory', 'notification']);
    expect([7, 17, 27, 37].map(corruptCopyTarget)).toEqual(['inventory', 'notification', 'inventory', 'notification']);
  });

  it('plans the same orders for the same seed, with every kind of trouble in the mix', () => {
    const catalog = [
      { sku: 'LOW', available: 3, reserved: 0 },
      { sku: 'HOT', available: 1000, reserved: 0 },
      { sku: 'OTHER', available: 1000, reserved: 0 },
    ];
    const a = planOrders(200, seededRandom(7), catalog, 'x');
    const b = planOrders(200, seededRandom(7), catalog, 'x');
    expect(a).toEqual(b);
    expect(a.lowStockSku).toBe('LOW');
    expect(a.hotSku).toBe('HOT');
    const failures = a.orders.map((o) => o.body.simulate?.billingFailures ?? 0);
    expect(Math.max(...failures)).toBe(6);
    expect(failures.filter((n) => n > 0).length).toBeGreaterThan(20);
    // Some orders want more of the low-stock SKU than exists: they must end cancelled.
    const impossible = a.orders.filter((o) => o.body.items.some((i) => i.sku === 'LOW' && i.quantity > 3));
    expect(impossible.length).toBeGreaterThanOrEqual(16);
    expect(a.orders.filter((o) => o.body.items.some((i) => i.sku === 'HOT')).length).toBeGreaterThan(60);
    expect(new Set(a.orders.map((o) => o.idempotencyKey)).size).toBe(200);
  });
});

describe('kill points while placing', () => {
  it('are distinct, rising, and leave more than twice the concurrency unplaced', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const points = killPointsWhilePlacing(3, 500, 16, seededRandom(seed));
      expect(points).toHaveLength(3);
      expect(new Set(points).size).toBe(3);
      expect([...points].sort((a, b) => a - b)).toEqual(points);
      for (const p of points) {
        expect(p).toBeGreaterThanOrEqual(50);
        expect(p).toBeLessThanOrEqual(450);
      }
      for (const p of killPointsWhilePlacing(2, 36, 8, seededRandom(seed))) {
        expect(p).toBeGreaterThanOrEqual(3);
        expect(p).toBeLessThanOrEqual(36 - 2 * 8 - 1);
      }
    }
  });

  it('come from the seed alone, and still give one point per kill in a tiny run', () => {
    expect(killPointsWhilePlacing(3, 500, 16, seededRandom(7))).toEqual(killPointsWhilePlacing(3, 500, 16, seededRandom(7)));
    expect(killPointsWhilePlacing(3, 4, 8, seededRandom(7))).toEqual([1, 1, 1]);
  });
});

describe('the faults a run injects', () => {
  it('are host kills unless a dependency is stalled instead', () => {
    expect(describeFaults(undefined, 5)).toBe('5 host kills (SIGKILL)');
    expect(describeFaults({ kind: 'host' }, 1)).toBe('1 host kill (SIGKILL)');
    expect(describeFaults({ kind: 'servicebus', stallSeconds: 30 }, 2)).toBe('2 stalls of the Service Bus emulator (SIGSTOP, 30 s each)');
    expect(describeFaults({ kind: 'cosmos', stallSeconds: 40 }, 1)).toBe('1 stall of the Cosmos DB stand-in (SIGSTOP, 40 s each)');
    expect(describeFaults({ kind: 'throttle', stallSeconds: 30, percent: 40, retryAfterMs: 100 }, 2)).toBe(
      '2 stretches of Cosmos DB throttling (40% of document requests answered 429, retry after 100 ms, 30 s each)',
    );
  });
});

describe('fault-injection run (small)', () => {
  let stack: LocalStack | undefined;

  afterAll(async () => {
    await stack?.stop();
  });

  it('loses nothing when the host is SIGKILLed 3 times while 36 orders are placed and processed', async () => {
    // Locks of 10 s instead of a minute: the messages a killed host held come back within the test's time.
    stack = await startLocalStack({ hostEnv: FAST_MONITOR_SETTINGS, serviceBusLockDuration: `PT${LOCK_SECONDS}S` });
    const result = await runChaos(stack, { orders: 36, kills: 3, seed: 20261126, timeoutMs: 120_000, concurrency: 8, lockSeconds: LOCK_SECONDS, progress: new Progress() });
    const report = formatChaosReport(result);
    // The table is the failure message: it names every violating order.
    expect({ violations: result.verdict.violations, report }).toEqual({ violations: [], report });
    expect(result.kills).toHaveLength(3);
    // Two of them while orders were still being placed (their POSTs retried with their keys).
    expect(result.kills.filter((k) => k.whilePlacing)).toHaveLength(2);
    expect(result.verdict.counts['accepted']).toBe(36);
    // The mix really produced both outcomes, so both sets of rules were checked.
    expect(result.verdict.counts['completed']).toBeGreaterThan(0);
    expect(result.verdict.counts['cancelled']).toBeGreaterThanOrEqual(3);
    // Billing failures of up to 6 (past maxDeliveryCount) dead-letter some billing; the report
    // counts the dead-letters the orders' timelines recorded.
    expect(result.deadLetters['billing']).toBeGreaterThan(0);
    expect(report).toMatch(new RegExp(`dead-letters inv / bill / notif +\\d+ / ${result.deadLetters['billing']} / \\d+`));
    // Orders 7, 17 and 27 got an unreadable copy of their event (inventory, notification,
    // inventory): each dead-lettered and showed on its order (or the violations above name it).
    expect(result.corruptCopies).toBe(3);
    expect(result.deadLetters['inventory']).toBeGreaterThanOrEqual(2);
    expect(result.deadLetters['notification']).toBeGreaterThanOrEqual(1);
    // The dead-letter queues were read at the end: the copies stayed, finished orders' messages were taken out.
    expect(result.deadLetterQueueChecked).toBe(true);
    expect(report).toMatch(/dead-letter queues kept, cleared +0  PASS/);
  }, 200_000);
});
