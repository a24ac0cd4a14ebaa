import type { DurableClient } from 'durable-functions';
import { DurableMonitorClient } from '../../src/azure/durableMonitorClient';
import { createLogger } from '../../src/log';

function recording() {
  const lines: string[] = [];
  const sink = { info: (line: string) => lines.push(line), warn: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
  return { lines, log: createLogger(sink as never) };
}

const client = (raiseEvent: () => Promise<void>) => ({ raiseEvent }) as unknown as DurableClient;
const statusClient = (getStatus: () => Promise<unknown>) => ({ getStatus }) as unknown as DurableClient;

describe('DurableMonitorClient.status', () => {
  it("maps a status, and reads an unknown instance (the extension's 404) as no monitor", async () => {
    const running = new DurableMonitorClient(statusClient(async () => ({ runtimeStatus: 'Running', customStatus: { phase: 'watching' } })), undefined, 50);
    expect(await running.status('o-1')).toEqual({ runtimeStatus: 'Running', customStatus: { phase: 'watching' } });
    const unknown = new DurableMonitorClient(
      statusClient(() => Promise.reject(new Error('DurableClient error: Durable Functions extension replied with HTTP 404 response. This usually means ...'))),
      undefined,
      50,
    );
    expect(await unknown.status('o-2')).toBeNull();
  });

  it("reads a compensation run's status from the run's own instance", async () => {
    const asked: string[] = [];
    const monitor = new DurableMonitorClient(
      { getStatus: async (id: string) => (asked.push(id), { runtimeStatus: 'Running', customStatus: { current: 'refundPayment' } }) } as unknown as DurableClient,
      undefined,
      50,
    );
    expect(await monitor.status('o-1', 2)).toEqual({ runtimeStatus: 'Running', customStatus: { current: 'refundPayment' } });
    expect(asked).toEqual(['o-1:compensation:2']);
  });

  it('fails, rather than report no monitor, when the backend errs or does not answer in time', async () => {
    const failing = new DurableMonitorClient(statusClient(() => Promise.reject(new Error('The operation failed with an unexpected status code: 500'))), undefined, 50);
    await expect(failing.status('o-3')).rejects.toThrow(/could not be read: .*500/);
    const silent = new DurableMonitorClient(statusClient(() => new Promise(() => undefined)), undefined, 50);
    const started = performance.now();
    await expect(silent.status('o-4')).rejects.toThrow('the durable backend did not answer within 50 ms');
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
  });
});

describe('DurableMonitorClient.start', () => {
  const notFound = () => Promise.reject(new Error('Durable Functions extension replied with HTTP 404 response'));

  it('fails with a transient error when the backend does not confirm the start in time, and logs how the start ended', async () => {
    const { lines, log } = recording();
    let confirm!: () => void;
    const startNew = () => new Promise<string>((resolve) => (confirm = () => resolve('o-5')));
    const monitor = new DurableMonitorClient({ startNew, getStatus: notFound } as unknown as DurableClient, log, 50);
    const started = performance.now();
    await expect(monitor.start('o-5', { orderId: 'o-5', correlationId: 'c-5' })).rejects.toThrow('the durable backend did not answer within 50 ms');
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    confirm();
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('monitor-started-late');
  });

  it('reads a start that failed on an instance already there as success', async () => {
    const startNew = () => Promise.reject(new Error('An instance with ID o-6 already exists'));
    const getStatus = async () => ({ runtimeStatus: 'Running' });
    const monitor = new DurableMonitorClient({ startNew, getStatus } as unknown as DurableClient, undefined, 50);
    expect(await monitor.start('o-6', { orderId: 'o-6', correlationId: 'c-6' })).toBe('exists');
  });
});

describe('DurableMonitorClient.notifyOrderChanged (a best-effort nudge)', () => {
  it('gives up after its timeout when the durable backend does not answer, and says so', async () => {
    const { lines, log } = recording();
    const monitor = new DurableMonitorClient(client(() => new Promise<void>(() => undefined)), log, 50);
    const started = performance.now();
    await monitor.notifyOrderChanged('o-1', { source: 'support', action: 'requeue', by: 'alice' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('monitor-notify-failed');
    expect(lines[0]).toContain('did not answer within 50 ms');
  });

  it('reports a refused nudge (a finished monitor) and goes on', async () => {
    const { lines, log } = recording();
    const monitor = new DurableMonitorClient(client(() => Promise.reject(new Error('410 Gone'))), log, 50);
    await monitor.notifyOrderChanged('o-2', { source: 'sweeper', reason: 'test' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('410 Gone');
  });

  it('says nothing when the nudge is taken', async () => {
    const { lines, log } = recording();
    let raised = 0;
    const monitor = new DurableMonitorClient(client(async () => void raised++), log, 50);
    await monitor.notifyOrderChanged('o-3', { source: 'sweeper', reason: 'test' });
    expect(raised).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(lines).toEqual([]);
  });
});
