/** Seeds the small local catalog once per process when SEED_CATALOG is on; existing SKUs are kept. */
import { SEED_CATALOG } from '../domain/catalog';
import type { Logger } from '../log';
import type { OrderSagaDependencies } from './dependencies';

const seeded = new WeakMap<OrderSagaDependencies, Promise<number>>();

/** Resolves with the number of SKUs created by this call's seeding run (0 when all existed). */
export function ensureCatalogSeeded(deps: OrderSagaDependencies, log?: Logger): Promise<number> {
  if (!deps.settings.seedCatalog) return Promise.resolve(0);
  let run = seeded.get(deps);
  if (!run) {
    run = (async () => {
      const created = await Promise.all(SEED_CATALOG.map((item) => deps.inventory.ensure({ ...item, reserved: 0, holds: {} })));
      const count = created.filter(Boolean).length;
      log?.info('catalog-seeded', { created: count, skus: SEED_CATALOG.length });
      return count;
    })();
    // A failed run (dependency down at start-up) is retried by the next caller.
    run.catch(() => seeded.delete(deps));
    seeded.set(deps, run);
  }
  return run;
}
