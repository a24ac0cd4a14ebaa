/**
 * Instance management through the real DurableClient: start conflicts, suspend/resume, terminate,
 * rewind, purge, listing with filters and continuation tokens, check-status links, retention.
 */
import { HttpRequest } from '@azure/functions';
import * as df from 'durable-functions';
import { startTestHub, type TestHub } from './harness';

const HOUR = 3600_000;

df.app.orchestration('waitForGo', function* (context) {
  const go = yield context.df.waitForExternalEvent('Go');
  return { go };
});
df.app.orchestration('quick', function* (context) {
  return context.df.getInput() ?? 'done';
});
const shipping = { broken: true };
df.app.activity('shipParcel', {
  handler: (orderId: string) => {
    if (shipping.broken) throw new Error('carrier API down');
    return `shipped ${orderId}`;
  },
});
const reservations: string[] = [];
df.app.activity('reserveParcel', {
  handler: (orderId: string) => {
    reservations.push(orderId);
    return `reserved ${orderId}`;
  },
});
df.app.orchestration('shipOrder', function* (context) {
  const reserved = yield context.df.callActivity('reserveParcel', context.df.getInput());
  const shipped = yield context.df.callActivity('shipParcel', context.df.getInput());
  return [reserved, shipped];
});

df.app.orchestration('restartsTwice', function* (context) {
  const round = context.df.getInput<number>();
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 2 * HOUR));
  if (round < 2) {
    context.df.continueAsNew(round + 1);
    return undefined;
  }
  return round;
});

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ retention: { completedMaxAgeMs: 48 * HOUR, sweepIntervalMs: HOUR } });
});
afterAll(() => hub.stop());

describe('start', () => {
  it('refuses an instance id that is still running, like the extension (409)', async () => {
    await hub.client.startNew('waitForGo', { instanceId: 'dup-1' });
    await expect(hub.client.startNew('waitForGo', { instanceId: 'dup-1' })).rejects.toThrow(/409/);
    await hub.client.raiseEvent('dup-1', 'Go', 1);
    expect((await hub.status('dup-1')).output).toEqual({ go: 1 });
  });

  it('starts a finished instance id over with fresh history', async () => {
    await hub.client.startNew('quick', { instanceId: 'again', input: 'first' });
    expect((await hub.status('again')).output).toBe('first');
    await hub.client.startNew('quick', { instanceId: 'again', input: 'second' });
    const status = await hub.status('again', { showHistory: true });
    expect(status.output).toBe('second');
    expect((status.history as unknown[]).length).toBe(2);
  });

  it('rejects an orchestrator that is not registered', async () => {
    await expect(hub.client.startNew('noSuchOrchestrator')).rejects.toThrow(/400/);
  });

  it('builds check-status links that answer over HTTP', async () => {
    const id = await hub.client.startNew('quick', { input: 'linked' });
    await hub.idle();
    const request = new HttpRequest({ method: 'POST', url: `${hub.baseUrl}/api/start` });
    const response = hub.client.createCheckStatusResponse(request, id);
    expect(response.status).toBe(202);
    const links = (await response.json()) as Record<string, string>;
    expect(links.id).toBe(id);
    expect(response.headers.get('Location')).toBe(links.statusQueryGetUri);
    const polled = await fetch(links.statusQueryGetUri);
    expect(polled.status).toBe(200);
    expect(await polled.json()).toMatchObject({ instanceId: id, runtimeStatus: 'Completed', output: 'linked' });
  });

  it('serves the management links: raise an event and terminate through them', async () => {
    const waiting = await hub.client.startNew('waitForGo');
    const doomed = await hub.client.startNew('waitForGo');
    await hub.idle();
    const links = hub.client.createHttpManagementPayload(waiting) as unknown as Record<string, string>;
    // getClient points links at localhost:7071 outside Azure; the paths are what the host serves.
    const local = (url: string): string => url.replace(/^http:\/\/[^/]+/, hub.baseUrl);
    const raised = await fetch(local(links.sendEventPostUri.replace('{eventName}', 'Go')), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify('via link'),
    });
    expect(raised.status).toBe(202);
    expect((await hub.status(waiting)).output).toEqual({ go: 'via link' });
    const doomedLinks = hub.client.createHttpManagementPayload(doomed) as unknown as Record<string, string>;
    const terminated = await fetch(local(doomedLinks.terminatePostUri.replace('{text}', 'by%20link')), { method: 'POST' });
    expect(terminated.status).toBe(202);
    const status = await hub.status(doomed);
    expect(status.runtimeStatus).toBe('Terminated');
    expect(status.output).toBe('by link');
  });

  it('throws on the status of an unknown instance, like the client does against Azure', async () => {
    await expect(hub.client.getStatus('nobody')).rejects.toThrow(/404/);
  });
});

describe('suspend and resume', () => {
  it('holds events while suspended and delivers them on resume', async () => {
    const id = await hub.client.startNew('waitForGo');
    await hub.idle();
    await hub.client.suspend(id, 'maintenance');
    expect((await hub.status(id)).runtimeStatus).toBe('Suspended');
    await hub.client.raiseEvent(id, 'Go', 'now');
    await hub.idle();
    expect((await hub.status(id)).runtimeStatus).toBe('Suspended');
    await hub.client.resume(id, 'done');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual({ go: 'now' });
  });
});

describe('terminate', () => {
  it('ends a waiting instance with the reason as output; later calls return quietly', async () => {
    const id = await hub.client.startNew('waitForGo');
    await hub.idle();
    await hub.client.terminate(id, 'customer cancelled');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Terminated');
    expect(status.output).toBe('customer cancelled');
    await hub.client.raiseEvent(id, 'Go', 1);
    await hub.client.terminate(id, 'again');
    expect((await hub.status(id)).output).toBe('customer cancelled');
  });

  it('rejects operations on an unknown instance', async () => {
    await expect(hub.client.terminate('ghost', 'x')).rejects.toThrow("No instance with ID 'ghost' found.");
    await expect(hub.client.raiseEvent('ghost', 'Go', 1)).rejects.toThrow("No instance with ID 'ghost' found.");
  });
});

describe('rewind', () => {
  it('re-runs the failed activity of a failed instance and completes it, keeping earlier results', async () => {
    shipping.broken = true;
    const id = await hub.client.startNew('shipOrder', { input: 'o-9' });
    expect((await hub.status(id)).runtimeStatus).toBe('Failed');
    shipping.broken = false;
    await hub.client.rewind(id, 'carrier is back');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual(['reserved o-9', 'shipped o-9']);
    expect(reservations.filter((o) => o === 'o-9')).toHaveLength(1);
  });

  it('refuses to rewind an instance that has not failed', async () => {
    const id = await hub.client.startNew('quick');
    await hub.idle();
    await expect(hub.client.rewind(id, 'why')).rejects.toThrow(/only orchestrations in the "Failed" state/);
  });
});

describe('list and purge', () => {
  let batchStart: Date;
  it('lists with filters and follows continuation tokens', async () => {
    const t0 = new Date(hub.engine.clock.now());
    await hub.advance(HOUR);
    batchStart = new Date(hub.engine.clock.now());
    for (let i = 0; i < 7; i++) await hub.client.startNew('quick', { instanceId: `batch-${i}` });
    await hub.client.startNew('waitForGo', { instanceId: 'batch-waiting' });
    await hub.idle();
    // One raw page of 3 carries a continuation token; the client follows tokens to the end.
    const page = await fetch(`${hub.baseUrl}/durabletask/instances/?instanceIdPrefix=batch-&top=3`);
    expect(((await page.json()) as unknown[]).length).toBe(3);
    expect(page.headers.get('x-ms-continuation-token')).toBeTruthy();
    const all = await hub.client.getStatusBy({ createdTimeFrom: new Date(t0.getTime() + HOUR) });
    expect(all.map((s) => s.instanceId).sort()).toEqual([...Array.from({ length: 7 }, (_, i) => `batch-${i}`), 'batch-waiting'].sort());
    const running = await hub.client.getStatusBy({
      createdTimeFrom: new Date(t0.getTime() + HOUR),
      runtimeStatus: [df.OrchestrationRuntimeStatus.Running],
    });
    expect(running.map((s) => s.instanceId)).toEqual(['batch-waiting']);
    const before = await hub.client.getStatusBy({ createdTimeTo: t0 });
    expect(before.some((s) => s.instanceId.startsWith('batch-'))).toBe(false);
  });

  it('purges one finished instance, refuses a running one, and purges by time and status', async () => {
    expect((await hub.client.purgeInstanceHistory('batch-0')).instancesDeleted).toBe(1);
    await expect(hub.client.getStatus('batch-0')).rejects.toThrow(/404/);
    expect((await hub.client.purgeInstanceHistory('batch-0')).instancesDeleted).toBe(0);
    await expect(hub.client.purgeInstanceHistory('batch-waiting')).rejects.toThrow(/412/);
    const from = batchStart;
    const result = await hub.client.purgeInstanceHistoryBy({
      createdTimeFrom: from,
      runtimeStatus: [df.OrchestrationRuntimeStatus.Completed],
    });
    expect(result.instancesDeleted).toBe(6);
    const left = await hub.client.getStatusBy({ createdTimeFrom: from });
    expect(left.map((s) => s.instanceId)).toEqual(['batch-waiting']);
  });
});

describe('continue-as-new', () => {
  it("dates the instance from its current execution's start, as Azure Storage does, which purge by creation time goes by", async () => {
    const started = hub.engine.clock.now();
    const id = await hub.client.startNew('restartsTwice', { instanceId: 'restarts-twice', input: 0 });
    await hub.advance(6 * HOUR);
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toBe(2);
    // Executions started at 0, 2 and 4 hours; the instance row keeps the last one's start.
    const lastStart = Math.floor((started + 4 * HOUR) / 1000) * 1000;
    expect(new Date(status.createdTime).getTime()).toBe(lastStart);
    // The history purge's query (triggers/historyPurge.ts): finished, created before a cut-off.
    await hub.client.purgeInstanceHistoryBy({
      createdTimeFrom: new Date(0),
      createdTimeTo: new Date(started + 3 * HOUR),
      runtimeStatus: [df.OrchestrationRuntimeStatus.Completed],
    });
    expect((await hub.status(id)).runtimeStatus).toBe('Completed');
  });
});

describe('retention', () => {
  it('purges finished instances older than the configured age and keeps running ones', async () => {
    const done = await hub.client.startNew('quick', { instanceId: 'retained-done' });
    const waiting = await hub.client.startNew('waitForGo', { instanceId: 'retained-waiting' });
    await hub.idle();
    await hub.advance(47 * HOUR);
    expect((await hub.status(done)).runtimeStatus).toBe('Completed');
    await hub.advance(2 * HOUR);
    await expect(hub.client.getStatus(done)).rejects.toThrow(/404/);
    expect((await hub.status(waiting)).runtimeStatus).toBe('Running');
  });
});

describe('virtual clock controls over HTTP', () => {
  it('advances time and waits for idle through /admin/durable/', async () => {
    const before = hub.engine.clock.now();
    const res = await fetch(`${hub.baseUrl}/admin/durable/advance?ms=${HOUR}`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(Date.parse(((await res.json()) as { now: string }).now)).toBe(before + HOUR);
    expect((await fetch(`${hub.baseUrl}/admin/durable/idle`, { method: 'POST' })).status).toBe(200);
  });
});
