/** Auth, unknown entities, many connections, heartbeats, malformed input and the CLI. */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { isServiceBusError, ServiceBusClient } from '@azure/service-bus';
import rhea from 'rhea';
import { rawSender, receiveN, sasToken, sleep, startHarness, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (e: unknown) => e);
}

describe('authorization', () => {
  it('refuses a wrong key with an authorization error', async () => {
    const bad = h.newClient(h.emulator.connectionString.replace('SharedAccessKey=SAS_KEY_VALUE', 'SharedAccessKey=wrong'));
    const err = await errorOf(bad.createSender('orders').sendMessages({ body: 1 }));
    expect(isServiceBusError(err) && err.code).toBe('UnauthorizedAccess');
  });

  it('refuses a wrong key name', async () => {
    const bad = h.newClient(h.emulator.connectionString.replace('RootManageSharedAccessKey', 'SomeoneElse'));
    const err = await errorOf(bad.createReceiver('orders', 'billing-sub').receiveMessages(1, { maxWaitTimeInMs: 500 }));
    expect(isServiceBusError(err) && err.code).toBe('UnauthorizedAccess');
  });

  it('refuses an expired token and accepts a valid one', async () => {
    const uri = `sb://127.0.0.1:${h.emulator.port}/orders`;
    const cs = (token: string) => `Endpoint=sb://127.0.0.1:${h.emulator.port};SharedAccessSignature=${token};UseDevelopmentEmulator=true`;
    const expired = h.newClient(cs(sasToken(uri, 'RootManageSharedAccessKey', 'SAS_KEY_VALUE', Math.floor(Date.now() / 1000) - 60)));
    const err = await errorOf(expired.createSender('orders').sendMessages({ body: 1 }));
    expect(isServiceBusError(err) && err.code).toBe('UnauthorizedAccess');
    const valid = h.newClient(cs(sasToken(uri, 'RootManageSharedAccessKey', 'SAS_KEY_VALUE', Math.floor(Date.now() / 1000) + 3600)));
    await valid.createSender('orders').sendMessages({ body: 1 });
  });
});

describe('unknown entities', () => {
  it('fails a send to an unknown topic with MessagingEntityNotFound', async () => {
    const err = await errorOf(h.client.createSender('no-such-topic').sendMessages({ body: 1 }));
    expect(isServiceBusError(err) && err.code).toBe('MessagingEntityNotFound');
  });

  it('fails a receive from an unknown subscription with MessagingEntityNotFound', async () => {
    const err = await errorOf(h.client.createReceiver('orders', 'no-such-sub').receiveMessages(1, { maxWaitTimeInMs: 500 }));
    expect(isServiceBusError(err) && err.code).toBe('MessagingEntityNotFound');
  });

  it('refuses a session receiver (no entity requires sessions) with an error, not a hang', async () => {
    await expect(h.client.acceptNextSession('work', { maxAutoLockRenewalDurationInMs: 0 })).rejects.toThrow(/[Ss]ession/);
  });

  it('keeps serving the connection after a not-found', async () => {
    await errorOf(h.client.createSender('nope').sendMessages({ body: 1 }));
    await h.client.createSender('work').sendMessages({ body: 'still here' });
    const [m] = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 1);
    expect(m.body).toBe('still here');
  });
});

describe('many connections', () => {
  it('serves 40 clients sending and receiving at once', async () => {
    const n = 40;
    const clients = [...Array(n)].map(() => h.newClient());
    await Promise.all(clients.map((c, i) => c.createSender('work').sendMessages({ body: i })));
    const seen: number[] = [];
    await Promise.all(
      clients.map(async (c) => {
        const r = c.createReceiver('work');
        const got = await r.receiveMessages(1, { maxWaitTimeInMs: 3000 });
        for (const m of got) {
          seen.push(m.body as number);
          await r.completeMessage(m);
        }
      }),
    );
    const rest = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), n - seen.length, 3000);
    const all = [...seen, ...rest.map((m) => m.body as number)];
    expect(all.sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
  });
});

describe('robustness', () => {
  async function rawExchange(bytes: Buffer): Promise<void> {
    await new Promise<void>((resolve) => {
      const socket = net.connect(h.emulator.port, '127.0.0.1', () => socket.write(bytes));
      socket.on('data', () => undefined);
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, 500);
    });
  }

  it('survives garbage, a bad protocol header and a malformed frame, and keeps serving', async () => {
    await rawExchange(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await rawExchange(Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x09, 0x09, 0x09, 0x09]));
    // valid AMQP header, then a frame whose body is not a performative
    const frame = Buffer.from([0, 0, 0, 16, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    await rawExchange(Buffer.concat([Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 1, 0, 0]), frame]));
    await h.client.createSender('work').sendMessages({ body: 'alive' });
    const [m] = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 1);
    expect(m.body).toBe('alive');
  });

  it('rejects a transfer that is not an AMQP message without closing the connection', async () => {
    // The SDK cannot send malformed messages; a raw AMQP client can.
    const { conn, sender } = await rawSender(h, 'work');
    const outcome = new Promise<string>((resolve) => {
      sender.once('rejected', (ctx) => resolve(`rejected:${ctx.delivery?.remote_state?.error?.condition}`));
      sender.once('accepted', () => resolve('accepted'));
    });
    sender.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]), undefined, 0);
    expect(await outcome).toBe('rejected:amqp:decode-error');
    await new Promise<void>((resolve) => {
      sender.once('accepted', () => resolve());
      sender.send({ body: 'fine' });
    });
    conn.close();
    const [m] = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 1);
    expect(m.body).toBe('fine');
  });

  it('stops promptly, telling connected clients why, even with a silent socket open', async () => {
    const silent = net.connect(h.emulator.port, '127.0.0.1');
    silent.on('error', () => undefined);
    await new Promise<void>((resolve) => silent.once('connect', () => resolve()));
    const conn = rhea.create_container().connect({ port: h.emulator.port, host: '127.0.0.1', reconnect: false });
    conn.on('connection_error', () => undefined);
    await new Promise<void>((resolve) => conn.once('connection_open', () => resolve()));
    const closed = new Promise<string | undefined>((resolve) => conn.once('connection_close', (ctx) => resolve((ctx as { error?: { condition?: string } }).error?.condition)));
    const t0 = Date.now();
    await h.emulator.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await closed).toBe('amqp:connection:forced');
    silent.destroy();
  });

  it('sends heartbeats so a client with a short idle timeout stays connected', async () => {
    const container = rhea.create_container();
    const conn = container.connect({ port: h.emulator.port, host: '127.0.0.1', idle_time_out: 400, reconnect: false });
    let closed = false;
    conn.on('disconnected', () => (closed = true));
    conn.on('connection_close', () => (closed = true));
    await new Promise<void>((resolve) => conn.once('connection_open', () => resolve()));
    await sleep(1500);
    expect(closed).toBe(false);
    await new Promise<void>((resolve) => {
      conn.once('connection_close', () => resolve());
      conn.close();
    });
  });

  it('clears its idle-timeout timers when it stops with clients still connected', async () => {
    // The emulator's side of a connection re-arms a timer of twice its idle timeout (4 minutes)
    // on every frame it reads; one left behind keeps the process alive that long.
    const armed = jest.spyOn(global, 'setTimeout');
    const cleared = jest.spyOn(global, 'clearTimeout');
    try {
      const container = rhea.create_container();
      const conn = container.connect({ port: h.emulator.port, host: '127.0.0.1', reconnect: false });
      await new Promise<void>((resolve) => conn.once('connection_open', () => resolve()));
      const gone = new Promise<void>((resolve) => conn.once('disconnected', () => resolve()));
      await h.emulator.stop();
      await gone;
      const idleTimers = armed.mock.results.filter((_, i) => armed.mock.calls[i]![1] === 240_000).map((r) => r.value);
      const clearedTimers = new Set(cleared.mock.calls.map((call) => call[0]));
      expect(idleTimers.length).toBeGreaterThan(0);
      expect(idleTimers.filter((t) => !clearedTimers.has(t))).toEqual([]);
    } finally {
      armed.mockRestore();
      cleared.mockRestore();
    }
  });
});

describe('cli', () => {
  const cli = path.resolve(__dirname, '../../dist/local/servicebus-emulator/cli.js');

  function run(env: Record<string, string>) {
    const child = spawn(process.execPath, [cli], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, exited, out: () => out, err: () => err };
  }

  async function waitFor(pred: () => boolean, ms = 10_000) {
    const end = Date.now() + ms;
    while (!pred() && Date.now() < end) await sleep(20);
  }

  it('prints where it listens, serves the SDK, stops on SIGTERM, and refuses a taken port', async () => {
    if (!fs.existsSync(cli)) throw new Error(`build first (npm run build): ${cli} is missing`);
    const a = run({ SERVICEBUS_EMULATOR_PORT: '0' });
    await waitFor(() => a.out().includes('\n'));
    const m = /^Service Bus emulator listening on sb:\/\/127\.0\.0\.1:(\d+)\n$/.exec(a.out());
    expect(m).not.toBeNull();
    const port = Number(m![1]);
    const client = new ServiceBusClient(`Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`);
    await client.createSender('orders').sendMessages({ body: 'via cli', messageId: 'cli-1' });
    const b = run({ SERVICEBUS_EMULATOR_PORT: String(port) });
    expect(await b.exited).toBe(1);
    expect(b.err()).toContain(String(port));
    await client.close();
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
  });

  it('locks messages for SERVICEBUS_EMULATOR_LOCK_DURATION instead of the topology\'s minute, and refuses a lock Service Bus would not take', async () => {
    const a = run({ SERVICEBUS_EMULATOR_PORT: '0', SERVICEBUS_EMULATOR_LOCK_DURATION: 'PT3S' });
    try {
      await waitFor(() => a.out().includes('\n'));
      const port = Number(/sb:\/\/127\.0\.0\.1:(\d+)/.exec(a.out())![1]);
      const client = new ServiceBusClient(`Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`);
      try {
        await client.createSender('orders').sendMessages({ body: 'locked briefly', messageId: 'lock-1' });
        for (const subscription of ['inventory-sub', 'billing-sub', 'notification-sub']) {
          const receiver = client.createReceiver('orders', subscription);
          const before = Date.now();
          const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
          const lockMs = message!.lockedUntilUtc!.getTime() - before;
          expect(lockMs).toBeGreaterThan(2_000);
          expect(lockMs).toBeLessThanOrEqual(3_100);
          await receiver.close();
        }
      } finally {
        await client.close();
      }
    } finally {
      a.child.kill('SIGTERM');
      expect(await a.exited).toBe(0);
    }
    for (const refused of ['PT0.5S', 'PT6M', 'one minute']) {
      const b = run({ SERVICEBUS_EMULATOR_PORT: '0', SERVICEBUS_EMULATOR_LOCK_DURATION: refused });
      expect(await b.exited).toBe(1);
      expect(b.err()).toContain(refused);
    }
  });
});
