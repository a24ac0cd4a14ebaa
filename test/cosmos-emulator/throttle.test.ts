/**
 * The stand-in's throttling fault: a share of document requests answered 429 the way Cosmos DB
 * answers them, switched at run time over its own port; the SDK retries them and surfaces a 429
 * that outlasts its retries with the status, substatus and retry-after Cosmos DB gives.
 */
import { CosmosClient } from '@azure/cosmos';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { standInThrottle } from '../../local/cosmos-emulator/throttle-client';
import { createServer, type AddressInfo } from 'node:net';
import { createCosmosClient } from '../../src/azure/clients';
import { isStoreUnavailable } from '../../src/azure/cosmosErrors';
import { statusCodeOf } from '../../src/errors';
import { cosmosTopology } from '../../src/topology';
import { emulatorWithClient } from './emulator-with-client';

describe('Cosmos DB stand-in throttling', () => {
  const standIn = emulatorWithClient('cosmos-throttle-');
  const cosmos = () => ({ endpoint: standIn.emulator.endpoint, caCertificateFile: standIn.emulator.caCertificateFile });

  afterEach(async () => {
    await standInThrottle(cosmos(), { share: 0, containers: null });
  });

  /** A client whose throttle retries are bounded as given. */
  function clientWith(retryOptions: { maxRetryAttemptCount: number; maxWaitTimeInSeconds: number }) {
    const agent = new Agent({ ca: readFileSync(standIn.emulator.caCertificateFile), keepAlive: true });
    const client = new CosmosClient({ endpoint: standIn.emulator.endpoint, key: standIn.emulator.key, agent, connectionPolicy: { retryOptions } });
    return {
      orders: client.database(cosmosTopology.databaseName).container('orders'),
      close: () => {
        client.dispose();
        agent.destroy();
      },
    };
  }

  it('is off until switched on, and says so', async () => {
    expect(await standInThrottle(cosmos())).toMatchObject({ share: 0, throttled: 0 });
    await standIn.container('orders').items.create({ id: 'throttle-off' });
  });

  it('answers every document request 429 TooManyRequests with substatus 3200 and x-ms-retry-after-ms, changing nothing', async () => {
    const { orders, close } = clientWith({ maxRetryAttemptCount: 2, maxWaitTimeInSeconds: 5 });
    try {
      expect(await standInThrottle(cosmos(), { share: 1, retryAfterMs: 20 })).toMatchObject({ share: 1, retryAfterMs: 20 });
      const err = await orders.items.create({ id: 'throttled-create' }).then(
        () => undefined,
        (e: unknown) => e as { code?: number; substatus?: number; retryAfterInMs?: number; headers?: Record<string, unknown>; body?: { code?: string } },
      );
      expect(statusCodeOf(err)).toBe(429);
      expect(err).toMatchObject({ substatus: 3200, retryAfterInMs: 20, body: { code: 'TooManyRequests' } });
      // The SDK tried three times (two retries), each answered 429.
      expect(err?.headers?.['x-ms-throttle-retry-count']).toBe(2);
      expect((await standInThrottle(cosmos())).throttled).toBeGreaterThanOrEqual(3);

      await standInThrottle(cosmos(), { share: 0 });
      await expect(orders.item('throttled-create', 'throttled-create').read()).resolves.toMatchObject({ statusCode: 404 });
    } finally {
      close();
    }
  });

  it('throttles a share of requests, which the SDK retries through', async () => {
    const { orders, close } = clientWith({ maxRetryAttemptCount: 30, maxWaitTimeInSeconds: 30 });
    try {
      const before = await standInThrottle(cosmos(), { share: 0.5, retryAfterMs: 1 });
      for (let i = 0; i < 40; i++) await orders.items.create({ id: `share-${i}` });
      const after = await standInThrottle(cosmos());
      expect(after.throttled - before.throttled).toBeGreaterThan(5);
      await standInThrottle(cosmos(), { share: 0 });
      const { resources } = await orders.items.query('SELECT VALUE COUNT(1) FROM c WHERE STARTSWITH(c.id, "share-")').fetchAll();
      expect(resources).toEqual([40]);
    } finally {
      close();
    }
  });

  it('leaves the account, databases and containers alone, and refuses bad settings', async () => {
    await standInThrottle(cosmos(), { share: 1 });
    const { orders, close } = clientWith({ maxRetryAttemptCount: 0, maxWaitTimeInSeconds: 0 });
    try {
      await expect(orders.read()).resolves.toMatchObject({ statusCode: 200 });
    } finally {
      close();
    }
    await expect(standInThrottle(cosmos(), { share: 2 })).rejects.toThrow(/share must be/);
    await expect(standInThrottle(cosmos(), { containers: [''] })).rejects.toThrow(/containers must be/);
    await expect(standInThrottle(cosmos(), { retryAfterMs: -1 })).rejects.toThrow(/retryAfterMs must be/);
  });

  it('throttles only the containers named, and counts the others as let through', async () => {
    const { orders, close } = clientWith({ maxRetryAttemptCount: 1, maxWaitTimeInSeconds: 5 });
    const payments = orders.database.container('payments');
    try {
      const before = await standInThrottle(cosmos(), { share: 1, retryAfterMs: 1, containers: ['payments'] });
      expect(before.containers).toEqual(['payments']);
      await orders.items.create({ id: 'not-throttled' });
      const err = await payments.items.create({ id: 'throttled', orderId: 'throttled' }).then(() => undefined, (e: unknown) => e);
      expect(statusCodeOf(err)).toBe(429);
      expect(isStoreUnavailable(err)).toBe(true);
      const after = await standInThrottle(cosmos());
      expect(after.passed - before.passed).toBe(1);
      expect(after.throttled - before.throttled).toBe(2);
    } finally {
      close();
    }
  });
});

describe('isStoreUnavailable: what Cosmos DB failing to serve a call looks like through the SDK', () => {
  const standIn = emulatorWithClient('cosmos-unavailable-');

  it('counts a refused connection, but not an answer about the request itself (404, 409)', async () => {
    // A port that refuses: one the system gave and took back.
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port: free } = server.address() as AddressInfo;
        server.close(() => resolve(free));
      });
    });
    const { client, agent } = createCosmosClient({ endpoint: `https://127.0.0.1:${port}/`, key: standIn.emulator.key, caCertificateFile: standIn.emulator.caCertificateFile });
    try {
      const refused = await client.database(cosmosTopology.databaseName).container('orders').items.create({ id: 'nowhere' }).then(() => undefined, (e: unknown) => e);
      expect(refused).toBeDefined();
      expect(isStoreUnavailable(refused)).toBe(true);
    } finally {
      client.dispose();
      agent?.destroy();
    }

    const orders = standIn.container('orders');
    const missing = await orders.item('absent', 'absent').replace({ id: 'absent' }).then(() => undefined, (e: unknown) => e);
    expect(statusCodeOf(missing)).toBe(404);
    expect(isStoreUnavailable(missing)).toBe(false);
    await orders.items.create({ id: 'twice' });
    const conflict = await orders.items.create({ id: 'twice' }).then(() => undefined, (e: unknown) => e);
    expect(statusCodeOf(conflict)).toBe(409);
    expect(isStoreUnavailable(conflict)).toBe(false);
  });
});
