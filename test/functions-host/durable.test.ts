/**
 * Durable functions through the host and the local durable engine: an HTTP starter with the real
 * DurableClient starts an orchestration, the orchestrator calls an activity, and the client reads
 * the result; the status URL the client hands out is served by this host.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, startHost, type HostUnderTest, logShows } from './host-process';

describe('durable functions', () => {
  let host: HostUnderTest;
  const dataDir = mkdtempSync(join(tmpdir(), 'durable-host-'));

  beforeAll(async () => {
    host = await startHost('durable-app', { DURABLE_DATA_DIR: dataDir });
  });
  afterAll(async () => {
    await host?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs an orchestration started from an HTTP function to completion', async () => {
    const start = await fetch(`${host.url}/api/greet`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(['Tokyo', 'Seattle', 'London']),
    });
    expect(start.status).toBe(202);
    const check = (await start.json()) as { id: string; statusQueryGetUri: string };
    expect(start.headers.get('location')).toBe(check.statusQueryGetUri);

    const done = await eventually(
      async () => {
        const res = await fetch(`${host.url}/api/greet/${check.id}`);
        const body = (await res.json()) as { runtimeStatus: string; output: unknown };
        return body.runtimeStatus === 'Completed' ? body : undefined;
      },
      15_000,
      'the orchestration to complete',
    );
    expect(done.output).toEqual(['Hello Tokyo', 'Hello Seattle', 'Hello London']);

    // The status URL handed to callers answers on this host.
    const status = await fetch(check.statusQueryGetUri);
    expect(status.status).toBe(200);
    expect(((await status.json()) as { runtimeStatus: string }).runtimeStatus).toBe('Completed');
    await logShows(host, /Executed 'greet' \(Succeeded/);
  });

  it('answers an unknown instance as not found through the client', async () => {
    const res = await fetch(`${host.url}/api/greet/no-such-instance`);
    expect(res.status).toBe(404);
  });
});
