/** Inventory API: GET /api/inventory (every SKU) and GET /api/inventory/{sku}. */
import { app } from '@azure/functions';
import { handleGetInventoryItem, handleListInventory } from '../src/http/inventoryRoutes';
import { appDependencies } from '../src/services/dependencies';

app.http('listInventory', {
  route: 'inventory',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: (request, context) => handleListInventory(request, context, appDependencies),
});

app.http('getInventoryItem', {
  route: 'inventory/{sku}',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: (request, context) => handleGetInventoryItem(request, context, appDependencies),
});
