/** Dynamic concurrency: slots per function, back to one when the host lags, one more when healthy and full. */
import { ConcurrencyManager, FunctionConcurrency } from '../../local/functions-host/concurrency';

const flush = () => new Promise((r) => setImmediate(r));

describe('FunctionConcurrency', () => {
  it('starts at one invocation; a second waits until the first is released', async () => {
    const f = new FunctionConcurrency('consumer', 16);
    const first = await f.acquire();
    let secondStarted = false;
    const second = f.acquire().then((release) => ((secondStarted = true), release));
    await flush();
    expect(secondStarted).toBe(false);
    expect([f.running, f.waiting]).toEqual([1, 1]);
    first();
    first(); // releasing twice frees one slot only
    (await second)();
    expect(secondStarted).toBe(true);
    expect([f.running, f.waiting]).toEqual([0, 0]);
  });

  it('grows by one per healthy adjustment only while every slot is used, up to its cap', async () => {
    const f = new FunctionConcurrency('consumer', 3);
    f.adjust(false);
    expect(f.limit).toBe(1); // nothing ran: no reason to grow
    const releases = [await f.acquire()];
    const waiting = [f.acquire(), f.acquire(), f.acquire()];
    f.adjust(false);
    expect(f.limit).toBe(2);
    releases.push(await waiting[0]!);
    expect(f.running).toBe(2);
    f.adjust(false);
    f.adjust(false);
    expect(f.limit).toBe(3); // the cap
    releases.push(await waiting[1]!);
    expect([f.running, f.waiting]).toEqual([3, 1]);
    releases.forEach((r) => r());
    (await waiting[2]!)();
  });

  it('drops to one when the host is overloaded; running invocations finish, new ones wait', async () => {
    const f = new FunctionConcurrency('consumer', 16);
    const held: (() => void)[] = [];
    for (let i = 0; i < 8; i++) {
      const next = f.acquire();
      f.adjust(false);
      held.push(await next);
    }
    expect(f.limit).toBe(9);
    f.adjust(true);
    expect(f.limit).toBe(1);
    const late = f.acquire();
    let started = false;
    void late.then(() => (started = true));
    held.splice(0, 7).forEach((r) => r());
    await flush();
    expect(started).toBe(false); // 1 still runs, the limit is 1
    held.shift()!();
    await flush();
    expect(started).toBe(true);
    f.adjust(true);
    expect(f.limit).toBe(1); // never below one
  });
});

describe('ConcurrencyManager', () => {
  it('applies one lag reading to every function, and caps each by its own bound and the host maximum', async () => {
    let lag = 0;
    const manager = new ConcurrencyManager({ maximumFunctionConcurrency: 4, lagThresholdMs: 1, sampleLag: () => lag });
    const a = manager.forFunction('a', 16);
    const b = manager.forFunction('b', 2);
    expect(manager.forFunction('a')).toBe(a);
    const held = [await a.acquire(), await b.acquire()];
    const more = [a.acquire(), a.acquire(), a.acquire(), a.acquire(), b.acquire(), b.acquire()];
    for (let i = 0; i < 6; i++) {
      manager.adjust();
      await flush();
    }
    expect([a.limit, a.running, a.waiting]).toEqual([4, 4, 1]);
    expect([b.limit, b.running, b.waiting]).toEqual([2, 2, 1]);
    lag = 1.5;
    manager.adjust();
    expect([a.limit, b.limit]).toEqual([1, 1]);
    held.forEach((r) => r());
    for (const p of more) void p.then((r) => r());
  });
});

describe('ConcurrencyManager with the API in view', () => {
  it('gives way only while API requests are being served; with none, lets triggers double', async () => {
    let lag = 5;
    let inFlight = 0;
    const manager = new ConcurrencyManager({ lagThresholdMs: 1, sampleLag: () => lag, httpInFlight: () => inFlight });
    const f = manager.forFunction('consumer', 16);
    const held = [await f.acquire()];
    const waiting = Array.from({ length: 20 }, () => f.acquire());
    manager.adjust(); // lagging, but no API request waits: 1 -> 2
    manager.adjust(); // 2 -> 4
    expect(f.limit).toBe(4);
    inFlight = 2;
    manager.adjust(); // lagging while serving: back to one
    expect(f.limit).toBe(1);
    lag = 0;
    manager.adjust(); // serving but on time: one more
    expect(f.limit).toBe(2);
    held.forEach((r) => r());
    inFlight = 0;
    for (let i = 0; i < 4; i++) manager.adjust();
    expect(f.limit).toBe(16);
    for (const w of waiting) (await w)();
    expect([f.running, f.waiting]).toEqual([0, 0]);
  });
});
