/** Order API: POST /api/orders (intake), GET /api/orders/{id} (the order; support names to support only), GET /api/orders (list, support only). */
import { app, type InvocationContext } from '@azure/functions';
import { durableClientInput, monitorClientFor } from '../src/bindings/durableBinding';
import { handleCreateOrder, handleGetOrder, handleListOrders, type EnvironmentFactory } from '../src/http/orderRoutes';
import { appDependencies } from '../src/services/dependencies';
import { withApiHeaders } from '../src/http/apiHeaders';
import { ROUTES } from '../src/http/routes';
import { appSupportAccess } from '../src/support/principal';

const environment =
  (context: InvocationContext): EnvironmentFactory =>
  (log) => ({ deps: appDependencies(), monitor: monitorClientFor(context, log) });

app.http('createOrder', {
  ...ROUTES.createOrder,
  authLevel: 'anonymous',
  extraInputs: [durableClientInput],
  handler: withApiHeaders((request, context) => handleCreateOrder(request, context, environment(context))),
});

app.http('getOrder', {
  ...ROUTES.getOrder,
  authLevel: 'anonymous',
  extraInputs: [durableClientInput],
  handler: withApiHeaders((request, context) => handleGetOrder(request, context, environment(context), appSupportAccess())),
});

app.http('listOrders', {
  ...ROUTES.listOrders,
  authLevel: 'anonymous',
  handler: withApiHeaders((request, context) => handleListOrders(request, context, appDependencies, appSupportAccess())),
});
