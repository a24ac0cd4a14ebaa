import { MAX_ITEM_BYTES } from '../../local/cosmos-emulator/item-size';
import { CONTAINERS } from '../../src/topology';
import { emulatorWithClient } from './emulator-with-client';

describe('Cosmos DB stand-in: the 2 MB item limit', () => {
  const { container } = emulatorWithClient('cosmos-size-');
  let n = 0;
  const newId = (prefix: string): string => `${prefix}-${Date.now()}-${n++}`;
  /** A string of `bytes` bytes as UTF-8, in two-byte characters so the count is not the length. */
  const text = (bytes: number): string => 'é'.repeat(bytes / 2);

  it('refuses a create, replace or upsert over 2 MB with 413, and stores nothing', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('big');
    await expect(orders.items.create({ id, blob: text(MAX_ITEM_BYTES) })).rejects.toMatchObject({ code: 413 });
    await expect(orders.item(id, id).read()).resolves.toMatchObject({ statusCode: 404 });
    await expect(orders.items.upsert({ id, blob: text(MAX_ITEM_BYTES) })).rejects.toMatchObject({ code: 413 });
    await expect(orders.item(id, id).read()).resolves.toMatchObject({ statusCode: 404 });

    await orders.items.create({ id, blob: 'small' });
    await expect(orders.item(id, id).replace({ id, blob: text(MAX_ITEM_BYTES) })).rejects.toMatchObject({ code: 413 });
    const { resource } = await orders.item(id, id).read();
    expect(resource.blob).toBe('small');
  });

  it('stores a document just under the limit', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('under');
    const blob = text(MAX_ITEM_BYTES - 4096);
    await orders.items.create({ id, blob });
    const { resource } = await orders.item(id, id).read();
    expect(resource.blob).toBe(blob);
  });

  it('refuses the patch that would take a document over 2 MB, after taking those that keep it under', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('growing');
    await orders.items.create({ id, timeline: [] });
    const entry = text(100 * 1024);
    let appended = 0;
    let refusal: unknown;
    for (let i = 0; i < 30 && refusal === undefined; i++) {
      try {
        await orders.item(id, id).patch({ condition: 'from c where true', operations: [{ op: 'add', path: '/timeline/-', value: entry }] });
        appended++;
      } catch (err) {
        refusal = err;
      }
    }
    expect(refusal).toMatchObject({ code: 413 });
    // 100 KB entries: 20 fit in 2 MB with the rest of the document, the 21st does not.
    expect(appended).toBe(20);
    const { resource } = await orders.item(id, id).read();
    expect(resource.timeline).toHaveLength(20);

    // A patch that does not grow it still applies, and so does one that shrinks it.
    await orders.item(id, id).patch([{ op: 'set', path: '/state', value: 'x' }]);
    await orders.item(id, id).patch([{ op: 'remove', path: '/timeline/0' }]);
    await orders.item(id, id).patch([{ op: 'add', path: '/timeline/-', value: 'small' }]);
    const { resource: after } = await orders.item(id, id).read();
    expect(after.timeline).toHaveLength(20);
    expect(after.state).toBe('x');
  });

  it('takes a patch that leaves a document just under 2 MB, system properties counted once', async () => {
    const orders = container(CONTAINERS.orders);
    // What the stored document holds besides the blob: its id, system properties and punctuation.
    const probe = newId('edge');
    await orders.items.create({ id: probe, blob: '' });
    const { resource: stored } = await orders.item(probe, probe).read();
    const id = newId('edge');
    const overhead = Buffer.byteLength(JSON.stringify(stored)) - probe.length + id.length;
    const blob = 'a'.repeat(MAX_ITEM_BYTES - 100 - overhead);
    await orders.items.create({ id, blob });
    // The patch carries a whole blob: only the document's exact size can tell it still fits.
    await orders.item(id, id).patch([{ op: 'set', path: '/blob', value: 'b'.repeat(blob.length) }]);
    const { resource } = await orders.item(id, id).read();
    expect(resource.blob).toBe('b'.repeat(blob.length));
    await expect(orders.item(id, id).patch([{ op: 'set', path: '/more', value: 'c'.repeat(200) }])).rejects.toMatchObject({ code: 413 });
  });

  it('counts the document, not the patches: many small patches of one value leave it writable', async () => {
    const orders = container(CONTAINERS.orders);
    const id = newId('rewritten');
    const value = text(64 * 1024);
    await orders.items.create({ id, value });
    // 40 patches of 64 KB each carry 2.5 MB in all, to a document that stays at 64 KB.
    for (let i = 0; i < 40; i++) {
      await orders.item(id, id).patch([{ op: 'set', path: '/value', value: i % 2 ? value : value.toUpperCase() }]);
    }
    const { resource } = await orders.item(id, id).read();
    expect(resource.value).toBe(value);
  });
});
