import type { DurableClient } from 'durable-functions';
import { DurableMonitorClient } from '../../src/azure/durableMonitorClient';
import { createLogger } from '../../src/log';

function recording() {
  const lines: string[] = [];
  const sink = { info: (line: string) => lines.push(line), warn: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
  return { lines, log: createLogger(sink as never) };
}

const client = (raiseEvent: () => Promise<void>) => ({ raiseEvent }) as unknown as DurableClient;

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
