/**
 * The durable task hub is purged of finished orchestrations past the retention, through the host
 * and the durable engine, so it does not grow by every order for good; running monitors are kept.
 */
import { startSystem, type RunningSystem } from './system';

jest.setTimeout(120_000);

let system: RunningSystem;

beforeAll(async () => {
  system = await startSystem({
    env: {
      HISTORY_PURGE_SCHEDULE: '*/1 * * * * *',
      // About 2.6 s.
      HISTORY_RETENTION_DAYS: '0.00003',
    },
  });
});

afterAll(async () => {
  await system?.stop();
});

const instance = (id: string) => system.request('GET', `/runtime/webhooks/durabletask/instances/${id}`);

it('purges the monitor of a finished order once it is older than the retention, and keeps a running one', async () => {
  const done = await system.postOrder({ customerId: 'c-purge', items: [{ sku: 'MOUSE-01', quantity: 1 }] });
  expect(done.status).toBe(202);
  const finished = await system.waitForOrder<any>(done.body.orderId, (o) => o.state === 'completed' && o.monitor?.runtimeStatus === 'Completed');
  expect(finished.monitor.runtimeStatus).toBe('Completed');

  // Billing that keeps failing: its monitor waits out requeue backoffs (5, 10, 20 s) and stays running.
  const open = await system.postOrder({ customerId: 'c-purge', items: [{ sku: 'MOUSE-01', quantity: 1 }], simulate: { billingFailures: 1_000 } });
  expect(open.status).toBe(202);
  const openId = open.body.orderId as string;

  const deadline = Date.now() + 30_000;
  while ((await instance(done.body.orderId)).status !== 404) {
    if (Date.now() > deadline) throw new Error('the finished monitor was not purged');
    await new Promise((r) => setTimeout(r, 250));
  }
  const after = await system.getOrder<any>(done.body.orderId);
  expect(after.status).toBe(200);
  expect(after.body).toMatchObject({ state: 'completed', monitor: null });
  expect(after.body.timeline.length).toBeGreaterThan(1);

  const running = await instance(openId);
  // The extension answers 202 for an instance still running.
  expect(running.status).toBe(202);
  expect(['Running', 'Pending']).toContain(running.body.runtimeStatus);
});
