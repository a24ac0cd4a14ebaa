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
    // A container no other test fills, so its size is what this test makes it.
    const orders = container(CONTAINERS.payments);
    const timePatches = async (ids: string[]): Promise<number> => {
      const started = performance.now();
      for (const id of ids) {
        await orders.item(id, id).patch({
          condition: "from c where c.state = 'Open' and not is_defined(c.holds['x'])",
          operations: [{ op: 'set', path: '/state', value: 'Closed' }],
        });
      }
      return performance.now() - started;
    };
    const seed = async (count: number, prefix: string): Promise<string[]> => {
      const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
      for (let i = 0; i < ids.length; i += 100) {
        await Promise.all(ids.slice(i, i + 100).map((id) => orders.items.create({ id, orderId: id, state: 'Open', pad: 'x'.repeat(200) })));
      }
      return ids;
    };
    // 50 documents: patch 40 of them (10 more first, to warm up connections and the JIT).
    const small = await seed(50, newId('small'));
    await timePatches(small.slice(0, 10));
    const atSmall = await timePatches(small.slice(10));
    // 5,000 documents: patch 40 that have not been patched yet.
    await seed(4_910, newId('large'));
    const fresh = await seed(40, newId('fresh'));
    const atLarge = await timePatches(fresh);
    expect(atLarge).toBeLessThan(atSmall * 3);
  });
});
