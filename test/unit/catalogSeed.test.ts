import { SEED_CATALOG } from '../../src/domain/catalog';
import { ensureCatalogSeeded } from '../../src/services/catalogSeed';
import { MemoryInventoryStore, memoryDependencies } from './support/memoryStores';

describe('ensureCatalogSeeded', () => {
  it('creates the missing SKUs once and keeps the stock of existing ones', async () => {
    const deps = memoryDependencies({ seedCatalog: true });
    deps.inventory = new MemoryInventoryStore([{ id: 'MOUSE-01', name: 'Wireless mouse', price: 24.5, available: 7 }]);
    expect(await ensureCatalogSeeded(deps)).toBe(SEED_CATALOG.length - 1);
    expect(await ensureCatalogSeeded(deps)).toBe(SEED_CATALOG.length - 1);
    expect((await deps.inventory.get('MOUSE-01'))!.available).toBe(7);
    expect((await deps.inventory.list()).map((i) => i.id).sort()).toEqual(SEED_CATALOG.map((i) => i.id).sort());
    expect(SEED_CATALOG.some((i) => i.available < 10)).toBe(true);
  });

  it('does nothing unless SEED_CATALOG is on', async () => {
    const deps = memoryDependencies({ seedCatalog: false });
    deps.inventory = new MemoryInventoryStore([]);
    expect(await ensureCatalogSeeded(deps)).toBe(0);
    expect(await deps.inventory.list()).toEqual([]);
  });

  it('tries again after a failed run', async () => {
    const deps = memoryDependencies({ seedCatalog: true });
    const inventory = new MemoryInventoryStore([]);
    const ensure = inventory.ensure.bind(inventory);
    let down = true;
    inventory.ensure = async (item) => {
      if (down) throw new Error('ECONNREFUSED');
      return ensure(item);
    };
    deps.inventory = inventory;
    await expect(ensureCatalogSeeded(deps)).rejects.toThrow('ECONNREFUSED');
    down = false;
    expect(await ensureCatalogSeeded(deps)).toBe(SEED_CATALOG.length);
  });
});
