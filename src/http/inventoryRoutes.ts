/** HTTP handlers of the inventory API: every SKU, and one SKU. */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { z } from 'zod';
import { isSku } from '../domain/catalog';
import { validateQuery } from '../domain/validation';
import { ValidationError } from '../errors';
import { createLogger } from '../log';
import { ensureCatalogSeeded } from '../services/catalogSeed';
import { findInventoryItem, listInventory } from '../services/queries';
import type { OrderSagaDependencies } from '../services/dependencies';
import type { SupportAccess } from '../support/principal';
import { authorizeSupportRequest, isResponse } from '../support/routes';
import { notFound, problemFromError } from './problem';

/** Neither route takes a query parameter: one sent is refused by name, as the orders list refuses those it does not know. */
const NO_PARAMETERS = z.strictObject({});

function refuseParameters(request: HttpRequest): void {
  const parsed = validateQuery(NO_PARAMETERS, request.url);
  if (!parsed.ok) throw new ValidationError('invalid query parameters', parsed.problems);
}

export async function handleListInventory(request: HttpRequest, context: InvocationContext, dependencies: () => OrderSagaDependencies): Promise<HttpResponseInit> {
  const log = createLogger(context).with({ invocationId: context.invocationId });
  try {
    refuseParameters(request);
    const deps = dependencies();
    await ensureCatalogSeeded(deps, log);
    return { status: 200, jsonBody: await listInventory(deps) };
  } catch (err) {
    return problemFromError(err, log);
  }
}

/**
 * One SKU's stock. The orders holding part of it (`holds`) are shown to support only: their ids
 * open those orders, customers and all.
 */
export async function handleGetInventoryItem(
  request: HttpRequest,
  context: InvocationContext,
  dependencies: () => OrderSagaDependencies,
  access: SupportAccess,
): Promise<HttpResponseInit> {
  const log = createLogger(context).with({ invocationId: context.invocationId });
  try {
    const sku = request.params.sku ?? '';
    if (!isSku(sku)) return notFound(`no sku ${JSON.stringify(sku)}`);
    refuseParameters(request);
    const deps = dependencies();
    await ensureCatalogSeeded(deps, log);
    const item = await findInventoryItem(sku, deps);
    if (!item) return notFound(`no sku ${sku}`);
    if (isResponse(authorizeSupportRequest(request, access))) {
      const { holds: _holds, ...stock } = item;
      return { status: 200, jsonBody: stock };
    }
    return { status: 200, jsonBody: item };
  } catch (err) {
    return problemFromError(err, log);
  }
}
