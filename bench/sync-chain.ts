/**
 * The reference demo's synchronous design, rebuilt for comparison: one HTTP endpoint that calls
 * inventory, then billing, then notification in sequence, each after its simulated latency, and
 * answers only when all three are done. It runs the same src/services operations against the same
 * Cosmos DB stand-in as the app, with the latencies of the app's own settings (src/config.ts), so
 * the only difference from the 202 path is the shape: sequential and in the request.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseOrderRequest } from '../src/domain/orderRequest';
import { newOrder } from '../src/domain/orderState';
import { mergeLines, priceLines } from '../src/domain/pricing';
import type { OrderSagaDependencies } from '../src/services/dependencies';
import { catalogPrices } from '../src/services/intake';
import { sendConfirmation } from '../src/services/notices';
import { chargePayment } from '../src/services/payment';
import { reconcileHolds, reserveStock } from '../src/services/stock';
import type { ServiceName } from '../src/topology';

export interface SyncChainServer {
  baseUrl: string;
  close(): Promise<void>;
}

async function placeOrderSynchronously(body: unknown, deps: OrderSagaDependencies): Promise<{ status: number; json: unknown }> {
  const parsed = parseOrderRequest(body, { faultInjectionEnabled: false });
  if (!parsed.ok) return { status: 400, json: { problems: parsed.problems } };
  const prices = await catalogPrices(parsed.value, deps);
  const { items, total } = priceLines(mergeLines(parsed.value.items), prices);
  const id = randomUUID();
  const { order } = await deps.orders.create(
    newOrder({ id, eventId: randomUUID(), correlationId: randomUUID(), customerId: parsed.value.customerId, items, total, now: deps.now() }),
  );
  const step = async (service: ServiceName, work: () => Promise<boolean>): Promise<boolean> => {
    await deps.orders.transitionStatus(id, { service, from: ['pending'], to: 'processing' });
    await deps.sleep(deps.settings.latencyMs[service]);
    const ok = await work();
    await deps.orders.transitionStatus(id, { service, from: ['processing'], to: ok ? 'done' : 'failed' });
    return ok;
  };
  if (!(await step('inventory', async () => (await reserveStock(order, id, deps)).ok))) {
    await reconcileHolds((await deps.orders.get(id))!, deps);
    return { status: 409, json: { orderId: id, state: 'failed' } };
  }
  await step('billing', async () => !(await chargePayment(order, deps)).voided);
  await step('notification', async () => (await sendConfirmation(order, deps), true));
  await deps.orders.transitionState(id, { from: ['accepted'], to: 'completed' });
  return { status: 200, json: { orderId: id, state: 'completed' } };
}

export async function startSyncChain(deps: OrderSagaDependencies): Promise<SyncChainServer> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      placeOrderSynchronously(body, deps).then(
        ({ status, json }) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(json));
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
