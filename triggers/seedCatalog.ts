/**
 * Seeds the local catalog at start-up (runOnStartup) when SEED_CATALOG is on; a no-op otherwise.
 * The intake and inventory routes also await the same once-per-process seeding, so a request
 * that races the start-up run still sees the catalog.
 */
import { app, type InvocationContext } from '@azure/functions';
import { createLogger } from '../src/log';
import { ensureCatalogSeeded } from '../src/services/catalogSeed';
import { appDependencies } from '../src/services/dependencies';

app.timer('seedCatalog', {
  schedule: '0 0 * * * *',
  runOnStartup: true,
  handler: async (_timer: unknown, context: InvocationContext): Promise<void> => {
    await ensureCatalogSeeded(appDependencies(), createLogger(context));
  },
});
