/**
 * Support API: requeue or compensate one order, the fault switches (where fault injection is on),
 * and the dead-lettered messages that named no order.
 */
import { app, type InvocationContext } from '@azure/functions';
import { durableClientInput, monitorClientFor } from '../src/bindings/durableBinding';
import { appDependencies } from '../src/services/dependencies';
import { appCompensationFaults } from '../src/support/faults';
import { appSupportAccess } from '../src/support/principal';
import { handleFaults, handleParkedDeadLetters, handleSupportAction, type SupportEnvironmentFactory } from '../src/support/routes';
import { withApiHeaders } from '../src/http/apiHeaders';
import { ROUTES } from '../src/http/routes';

const environment =
  (context: InvocationContext): SupportEnvironmentFactory =>
  (log) => ({
    deps: appDependencies(),
    monitor: monitorClientFor(context, log),
    compensationFaults: appCompensationFaults(),
    ...appSupportAccess(),
  });

app.http('supportRequeueOrder', {
  ...ROUTES.supportRequeueOrder,
  authLevel: 'anonymous',
  extraInputs: [durableClientInput],
  handler: withApiHeaders((request, context) => handleSupportAction('requeue', request, context, environment(context))),
});

app.http('supportCompensateOrder', {
  ...ROUTES.supportCompensateOrder,
  authLevel: 'anonymous',
  extraInputs: [durableClientInput],
  handler: withApiHeaders((request, context) => handleSupportAction('compensate', request, context, environment(context))),
});

app.http('supportFaults', {
  ...ROUTES.supportFaults,
  authLevel: 'anonymous',
  // Not used by the switches, but the shared environment always carries a monitor client.
  extraInputs: [durableClientInput],
  handler: withApiHeaders((request, context) => handleFaults(request, context, environment(context))),
});

app.http('supportDeadLetters', {
  ...ROUTES.supportDeadLetters,
  authLevel: 'anonymous',
  // Not used by the listing either, for the same reason.
  extraInputs: [durableClientInput],
  handler: withApiHeaders((request, context) => handleParkedDeadLetters(request, context, environment(context))),
});
