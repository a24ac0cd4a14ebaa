import { CONTAINERS } from '../../src/topology';
import { emulatorWithClient } from './emulator-with-client';

describe('Cosmos DB stand-in: conditional patch', () => {
  const { container } = emulatorWithClient('cosmos-patch-', { maxSockets: 64 });
  let n = 0;
  const newId = (prefix: string): string => `${prefix}-${Date.now()}-${n++}`;

  it('keeps the case of field names and literals in the condition', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('mixed-case');
    await orders.items.create({ id, State: 'Pending', billingStatus: 'Pending' });

    const { resource } = await orders.item(id, id).patch({
      condition: "FROM c WHERE c.State = 'Pending' AND c.billingStatus = 'Pending'",
      operations: [{ op: 'set', path: '/billingStatus', value: 'Done' }],
    });
    expect(resource.billingStatus).toBe('Done');

    // Lower-cased, the same condition no longer matches the document.
    await expect(
      orders.item(id, id).patch({ condition: "from c where c.state = 'pending'", operations: [{ op: 'set', path: '/x', value: 1 }] }),
    ).rejects.toMatchObject({ code: 412 });
  });

  it('answers 412 for a false condition and leaves the document as it was', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('false-condition');
    await orders.items.create({ id, status: { billing: 'done' }, stock: 3 });
    const { resource: before } = await orders.item(id, id).read();

    await expect(
      orders.item(id, id).patch({
        condition: "from c where c.status.billing = 'pending' and c.stock >= 1",
        operations: [
          { op: 'set', path: '/status/billing', value: 'charged-twice' },
          { op: 'incr', path: '/stock', value: -1 },
        ],
      }),
    ).rejects.toMatchObject({ code: 412 });

    const { resource: after } = await orders.item(id, id).read();
    expect(after).toEqual(before);
  });

  it('judges each id and literal in a condition on its own, escapes included', async () => {
    const inventory = container(CONTAINERS.inventory);
    const id = newId('holds');
    await inventory.items.create({ id, available: 5, holds: { 'order-a': 1 }, note: "it's" });
    const reserve = (order: string) =>
      inventory.item(id, id).patch({
        condition: `from c where c.available >= 1 and not is_defined(c.holds["${order}"])`,
        operations: [
          { op: 'incr', path: '/available', value: -1 },
          { op: 'set', path: `/holds/${order}`, value: 1 },
        ],
      });
    await expect(reserve('order-a')).rejects.toMatchObject({ code: 412 });
    await expect(reserve('order-b')).resolves.toBeDefined();
    await expect(reserve('order-b')).rejects.toMatchObject({ code: 412 });
    await expect(
      inventory.item(id, id).patch({ condition: "from c where c.note = 'it\\'s' and c.available = 4", operations: [{ op: 'set', path: '/checked', value: true }] }),
    ).resolves.toBeDefined();
    await expect(
      inventory.item(id, id).patch({ condition: "from c where c.note = 'its'", operations: [{ op: 'set', path: '/checked', value: false }] }),
    ).rejects.toMatchObject({ code: 412 });
    const { resource } = await inventory.item(id, id).read();
    expect(resource).toMatchObject({ available: 4, holds: { 'order-a': 1, 'order-b': 1 }, checked: true });
  });

  it('answers 404 for a missing document and 400 for a condition that is not a filter', async () => {
    const orders = container(CONTAINERS.orders);
    await expect(
      orders.item('no-such-order', 'no-such-order').patch({ condition: 'from c where c.a = 1', operations: [{ op: 'set', path: '/a', value: 2 }] }),
    ).rejects.toMatchObject({ code: 404 });
    const id = newId('bad-condition');
    await orders.items.create({ id, a: 1 });
    await expect(
      orders.item(id, id).patch({ condition: 'from c where c.a = = 1', operations: [{ op: 'set', path: '/a', value: 2 }] }),
    ).rejects.toMatchObject({ code: 400 });
    const { resource } = await orders.item(id, id).read();
    expect(resource.a).toBe(1);
  });

  it('takes at most 10 operations in one patch, as Cosmos DB does, with or without a condition', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('ops-limit');
    await orders.items.create({ id, a: 1 });
    const ops = (n: number) => Array.from({ length: n }, (_, i) => ({ op: 'set' as const, path: `/f${i}`, value: i }));
    await expect(orders.item(id, id).patch(ops(11))).rejects.toMatchObject({ code: 400, message: expect.stringContaining('at most 10 operations') });
    await expect(orders.item(id, id).patch({ condition: 'from c where c.a = 1', operations: ops(11) })).rejects.toMatchObject({ code: 400 });
    const { resource: unchanged } = await orders.item(id, id).read();
    expect(unchanged.f0).toBeUndefined();
    const { resource } = await orders.item(id, id).patch({ condition: 'from c where c.a = 1', operations: ops(10) });
    expect(resource.f9).toBe(9);
  });

  it('still honours If-Match alongside the condition', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('if-match');
    await orders.items.create({ id, a: 1 });
    await expect(
      orders.item(id, id).patch({ condition: 'from c where c.a = 1', operations: [{ op: 'set', path: '/a', value: 2 }] }, { accessCondition: { type: 'IfMatch', condition: 'stale-etag' } }),
    ).rejects.toMatchObject({ code: 412 });
    const { resource } = await orders.item(id, id).read();
    expect(resource.a).toBe(1);
  });

  it('lets exactly as many concurrent decrements through as there is stock', async () => {
    const inventory = container(CONTAINERS.inventory);
    const id = newId('hot-sku');
    await inventory.items.create({ id, available: 10 });

    const outcomes = await Promise.all(
      Array.from({ length: 50 }, () =>
        inventory
          .item(id, id)
          .patch({ condition: 'from c where c.available >= 1', operations: [{ op: 'incr', path: '/available', value: -1 }] })
          .then(
            () => 'patched',
            (err: { code?: number }) => (err.code === 412 ? 'refused' : `error ${String(err.code)}`),
          ),
      ),
    );
    expect(outcomes.filter((o) => o === 'patched')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'refused')).toHaveLength(40);
    const { resource } = await inventory.item(id, id).read();
    expect(resource.available).toBe(0);
  });

  it('costs the same per document whatever the size of the container', async () => {
    // Two containers no other test fills: one stays small, one holds 5,000 documents. Patches are
    // timed one by one in alternating rounds and compared by their medians, so a load spike on a
    // shared machine or a GC pause lands on both sides instead of failing the comparison. Before
    // conditions were checked on the one document, a patch at 5,000 documents cost >10x one at 100.
    const small = container(CONTAINERS.deadLetters);
    const large = container(CONTAINERS.payments);
    const seed = async (into: typeof small, count: number, prefix: string): Promise<string[]> => {
      const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
      for (let i = 0; i < ids.length; i += 100) {
        await Promise.all(ids.slice(i, i + 100).map((id) => into.items.create({ id, orderId: id, state: 'open', pad: 'x'.repeat(200) })));
      }
      return ids;
    };
    const timePatch = async (into: typeof small, id: string): Promise<number> => {
      const started = performance.now();
      await into.item(id, id).patch({
        condition: "from c where c.state = 'open' and not is_defined(c.holds['x'])",
        operations: [{ op: 'set', path: '/state', value: 'closed' }],
      });
      return performance.now() - started;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

    const rounds = 5;
    const perRound = 20;
    const smallIds = await seed(small, rounds * perRound + 10, newId('small'));
    await seed(large, 4_900, newId('large'));
    const largeIds = await seed(large, rounds * perRound + 10, newId('fresh'));
    // Warm up connections and the JIT on both sides.
    for (let i = 0; i < 10; i++) {
      await timePatch(small, smallIds[i]!);
      await timePatch(large, largeIds[i]!);
    }
    const atSmall: number[] = [];
    const atLarge: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const slice = (ids: string[]) => ids.slice(10 + round * perRound, 10 + (round + 1) * perRound);
      for (const id of slice(smallIds)) atSmall.push(await timePatch(small, id));
      for (const id of slice(largeIds)) atLarge.push(await timePatch(large, id));
    }
    expect(median(atLarge)).toBeLessThan(median(atSmall) * 3);
  });
});
