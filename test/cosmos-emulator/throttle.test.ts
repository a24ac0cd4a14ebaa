/**
 * The stand-in's throttling fault: a share of document requests answered 429 the way Cosmos DB
 * answers them, switched at run time over its own port; the SDK retries them and surfaces a 429
 * that outlasts its retries with the status, substatus and retry-after Cosmos DB gives.
 */
import { CosmosClient } from '@azure/cosmos';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { standInThrottle } from '../../local/cosmos-emulator/throttle-client';
import { statusCodeOf } from '../../src/errors';
import { cosmosTopology } from '../../src/topology';
import { emulatorWithClient } from './emulator-with-client';

describe('Cosmos DB stand-in throttling', () => {
  const standIn = emulatorWithClient('cosmos-throttle-');
  const cosmos = () => ({ endpoint: standIn.emulator.endpoint, caCertificateFile: standIn.emulator.caCertificateFile });

  afterEach(async () => {
    await standInThrottle(cosmos(), { share: 0 });
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
    await expect(standInThrottle(cosmos(), { retryAfterMs: -1 })).rejects.toThrow(/retryAfterMs must be/);
  });
});
