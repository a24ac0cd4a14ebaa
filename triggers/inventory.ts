/** Inventory API: GET /api/inventory (every SKU) and GET /api/inventory/{sku}. */
import { app } from '@azure/functions';
import { handleGetInventoryItem, handleListInventory } from '../src/http/inventoryRoutes';
import { appDependencies } from '../src/services/dependencies';
import { withApiHeaders } from '../src/http/apiHeaders';
import { ROUTES } from '../src/http/routes';
import { appSupportAccess } from '../src/support/principal';

app.http('listInventory', {
  ...ROUTES.listInventory,
  authLevel: 'anonymous',
  handler: withApiHeaders((request, context) => handleListInventory(request, context, appDependencies)),
});

app.http('getInventoryItem', {
  ...ROUTES.getInventoryItem,
  authLevel: 'anonymous',
  handler: withApiHeaders((request, context) => handleGetInventoryItem(request, context, appDependencies, appSupportAccess())),
});
