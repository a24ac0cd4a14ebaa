/**
 * The host's HTTP front end runs in a thread of its own: a burst of new connections is taken in
 * while the app's thread is busy, instead of one connection per turn of that thread (libuv accepts
 * one connection per turn of a loop). Counted in the app's own work, not in time.
 */
import { Agent, get } from 'node:http';
import { startHost, type HostUnderTest } from './host-process';

function getJson(url: string, agent: Agent | false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

const turnsIn = (answer: { body: string }): number => (JSON.parse(answer.body) as { busyTurns: number }).busyTurns;

describe('HTTP front end', () => {
  let host: HostUnderTest;
  beforeAll(async () => {
    host = await startHost('http-app');
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('takes in 40 new connections while the app thread is kept busy, in far fewer than 40 turns of its work', async () => {
    let keepBusy = true;
    // Four clients on kept-alive connections keep the app's thread in 30 ms stretches of work.
    const busy = Array.from({ length: 4 }, async () => {
      const agent = new Agent({ keepAlive: true });
      while (keepBusy) expect((await getJson(`${host.url}/api/busy`, agent)).status).toBe(204);
      agent.destroy();
    });
    try {
      let before = 0;
      while (before < 8) before = turnsIn(await getJson(`${host.url}/api/busy/turns`, false));

      // Each on a connection of its own (no agent: a new connection, closed after the answer).
      const burst = await Promise.all(Array.from({ length: 40 }, () => getJson(`${host.url}/api/busy/turns`, false)));
      expect(burst.map((a) => a.status)).toEqual(Array(40).fill(200));
      const turns = Math.max(...burst.map(turnsIn)) - before;
      // Taking the connections in on the app's thread needed a turn each, and every turn ran at
      // least one stretch of busy work: 40 or more. Through the front end they arrive together.
      expect(turns).toBeLessThan(20);
    } finally {
      keepBusy = false;
      await Promise.all(busy);
    }
  });
});
