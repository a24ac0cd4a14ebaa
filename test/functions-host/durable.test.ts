/**
 * Durable functions through the host and the local durable engine: an HTTP starter with the real
 * DurableClient starts an orchestration, the orchestrator calls an activity, and the client reads
 * the result; the status URL the client hands out is served by this host. The engine runs in a
 * thread of its own and serves the client's calls on its own port, as the extension does on Azure.
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

  async function startGreeting(cities: string[]): Promise<{ id: string; statusQueryGetUri: string }> {
    const start = await fetch(`${host.url}/api/greet`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(cities),
    });
    expect(start.status).toBe(202);
    return (await start.json()) as { id: string; statusQueryGetUri: string };
  }

  it("fails the orchestration with the activity's error", async () => {
    const check = await startGreeting(['Tokyo', 'Atlantis']);
    const failed = await eventually(
      async () => {
        const body = (await (await fetch(check.statusQueryGetUri)).json()) as { runtimeStatus: string; output: unknown };
        return body.runtimeStatus === 'Failed' ? body : undefined;
      },
      15_000,
      'the orchestration to fail',
    );
    expect(String(failed.output)).toContain('no such city: Atlantis');
  });

  it("serves the durable client on the engine's own port, which answers while the app's thread is busy", async () => {
    const data = (await (await fetch(`${host.url}/api/durable-client-data`)).json()) as { rpcBaseUrl: string; baseUrl: string };
    const rpc = new URL(data.rpcBaseUrl);
    expect(rpc.port).not.toBe(new URL(host.url).port);
    // The management webhooks stay on the host's port (the URLs callers are handed).
    expect(data.baseUrl).toBe(`${host.url}/runtime/webhooks/durabletask`);

    const check = await startGreeting(['Oslo']);
    await eventually(
      async () => ((await (await fetch(check.statusQueryGetUri)).json()) as { runtimeStatus: string }).runtimeStatus === 'Completed' || undefined,
      15_000,
      'the orchestration to complete',
    );
    let busyEndedAt = 0;
    const busy = fetch(`${host.url}/api/busy?ms=1500`, { method: 'POST' }).then((res) => {
      busyEndedAt = Date.now();
      return res;
    });
    await new Promise((r) => setTimeout(r, 200));
    const status = await fetch(new URL(`instances/${check.id}`, data.rpcBaseUrl));
    const answeredAt = Date.now();
    expect(status.status).toBe(200);
    expect(((await status.json()) as { runtimeStatus: string }).runtimeStatus).toBe('Completed');
    expect((await busy).status).toBe(204);
    // Answered while the app's thread was still spinning (1.3 s of it were left when asked).
    expect(answeredAt).toBeLessThan(busyEndedAt);
  });
});
