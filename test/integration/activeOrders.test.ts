/**
 * The monitor sweep's query (`CosmosActiveOrders`) against the Cosmos DB stand-in through the real
 * @azure/cosmos SDK: its window, the states it reads, TOP, the ids it is asked to leave out; and a
 * sweep through it across a millisecond shared by more orders than a run checks.
 */
import type { CosmosClient } from '@azure/cosmos';
import type { Agent } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos-emulator';
import { container, createCosmosClient } from '../../src/azure/clients';
import { CosmosOrderRepository } from '../../src/azure/orderRepository';
import type { OrderState } from '../../src/domain/order';
import { newOrder } from '../../src/domain/orderState';
import { createLogger } from '../../src/log';
import { CosmosActiveOrders, sweepMonitors } from '../../src/support/monitorSweep';

let emulator: CosmosEmulator;
let client: CosmosClient;
let agent: Agent | undefined;
let certDir: string;
let orders: CosmosOrderRepository;
let source: CosmosActiveOrders;

const silent = createLogger({ info: () => undefined, warn: () => undefined, error: () => undefined });

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'cosmos-it-'));
  emulator = await startCosmosEmulator({ port: 0, certDir });
  ({ client, agent } = createCosmosClient({ endpoint: emulator.endpoint, key: emulator.key, caCertificateFile: emulator.caCertificateFile }));
  orders = new CosmosOrderRepository(container('orders', client));
  source = new CosmosActiveOrders(container('orders', client));
});

afterAll(async () => {
  client?.dispose();
  agent?.destroy();
  await emulator?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

async function store(id: string, createdAt: string, state: OrderState = 'accepted'): Promise<void> {
  const order = newOrder({ id, eventId: `ev-${id}`, correlationId: `corr-${id}`, customerId: 'c-1', items: [{ sku: 'IT-A', quantity: 1, unitPrice: 10 }], total: 10, now: createdAt });
  await orders.create({ ...order, state });
}

describe('CosmosActiveOrders', () => {
  it('reads open orders of the window, oldest first, at most TOP, and none of the ids it is to leave out', async () => {
    const t0 = '2030-01-01T00:00:00.000Z';
    const t1 = '2030-01-01T00:00:00.001Z';
    await store('w-a', t0);
    await store('w-b', t0, 'processing');
    await store('w-c', t0, 'completed');
    await store('w-d', t0, 'compensating');
    await store('w-e', t0, 'attention');
    await store('w-f', t1);
    await store('w-g', '2030-01-01T00:00:05.000Z');
    const before = '2030-01-01T00:00:01.000Z';

    const all = await source.activeOrders(t0, before, 10, []);
    expect(all.slice(0, 3).map((o) => o.id).sort()).toEqual(['w-a', 'w-b', 'w-d']);
    expect(all.slice(3)).toEqual([{ id: 'w-f', correlationId: 'corr-w-f', state: 'accepted', createdAt: t1 }]);

    const left = await source.activeOrders(t0, before, 10, ['w-b', 'w-a']);
    expect(left.map((o) => o.id)).toEqual(['w-d', 'w-f']);

    const top = await source.activeOrders(t0, before, 2, ['w-d']);
    expect(top.map((o) => o.id).sort()).toEqual(['w-a', 'w-b']);
    expect(await source.activeOrders(t1, before, 10, ['w-a', 'w-b', 'w-d'])).toHaveLength(1);
  });

  it('lets a sweep check every order of a millisecond it spends several runs on, each once, and go on to the later ones', async () => {
    const t = '2029-01-01T00:00:00.000Z';
    const burst = Array.from({ length: 7 }, (_, i) => `s-${i}`);
    for (const id of burst) await store(id, t);
    await store('s-later', '2029-01-01T00:00:00.001Z');
    const read: string[] = [];
    const monitor = {
      start: async () => 'started' as const,
      status: async (id: string) => {
        read.push(id);
        return { runtimeStatus: 'Running', customStatus: null };
      },
      notifyOrderChanged: async () => undefined,
    };
    const now = new Date('2029-01-01T01:00:00.000Z');
    let cursor = '';
    let runs = 0;
    do {
      cursor = (await sweepMonitors(cursor, now, { batchSize: 3, graceMs: 30_000 }, { orders: source, monitor, log: silent })).cursor;
      runs++;
    } while (cursor !== '' && runs < 10);
    expect(runs).toBe(3);
    expect([...read].sort()).toEqual([...burst, 's-later']);
  });
});
