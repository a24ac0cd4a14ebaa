/**
 * Engine behaviour beyond the client API: bounded concurrency, the real clock, cascading failures
 * from terminated children, rewinding exhausted retries, unsupported APIs.
 */
import * as df from 'durable-functions';
import { startTestHub, type TestHub } from './harness';

const SECOND = 1000;

let running = 0;
let maxRunning = 0;
df.app.activity('measuredWork', {
  handler: async (n: number) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    running--;
    return n;
  },
});
df.app.orchestration('wideFanOut', function* (context) {
  const results: number[] = yield context.df.Task.all(
    Array.from({ length: 12 }, (_, i) => context.df.callActivity('measuredWork', i)),
  );
  return results.length;
});

df.app.orchestration('shortNap', function* (context) {
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 50));
  return 'rested';
});

df.app.orchestration('slowNap', function* (context) {
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 30));
  return 'rested';
});

df.app.orchestration('ticker', function* (context) {
  for (let i = 0; i < 60; i++) yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 5));
  return 'ticked';
});

df.app.orchestration('sleepyChild', function* (context) {
  yield context.df.waitForExternalEvent('never');
  return 'woke';
});
df.app.orchestration('parentOfSleepy', function* (context) {
  try {
    return yield context.df.callSubOrchestrator('sleepyChild', undefined, `${context.df.instanceId}-child`);
  } catch (err) {
    return { childFailed: (err as Error).message };
  }
});

const printer = { jammed: true, calls: 0 };
df.app.activity('printLabel', {
  handler: () => {
    printer.calls++;
    if (printer.jammed) throw new Error('printer jammed');
    return 'label printed';
  },
});
df.app.orchestration('labelWithRetry', function* (context) {
  return yield context.df.callActivityWithRetry('printLabel', new df.RetryOptions(SECOND, 3), null);
});

df.app.orchestration('usesEntities', function* (context) {
  return yield context.df.callEntity(new df.EntityId('counter', 'k'), 'add', 1);
});

describe('bounded concurrency', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({ maxConcurrentActivities: 3 });
  });
  afterAll(() => hub.stop());

  it('never runs more activities at once than configured', async () => {
    maxRunning = 0;
    const ids = await Promise.all([hub.client.startNew('wideFanOut'), hub.client.startNew('wideFanOut')]);
    for (const id of ids) expect((await hub.status(id)).output).toBe(12);
    expect(maxRunning).toBe(3);
  });
});

describe('real clock', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({ virtualClock: false });
  });
  afterAll(() => hub.stop());

  it('fires durable timers on wall-clock time', async () => {
    const id = await hub.client.startNew('shortNap');
    const deadline = Date.now() + 5000;
    let status = await hub.client.getStatus(id);
    while (status.runtimeStatus !== 'Completed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      status = await hub.client.getStatus(id);
    }
    expect(status.output).toBe('rested');
  });

  it('fires a timer whose time had passed, before its episode committed, while other timers fired', async () => {
    // The first episode of `slowNap` takes 150 ms; meanwhile `ticker`'s timers fire every 5 ms, so
    // the engine scans past the time `slowNap`'s timer is set for before that timer is stored.
    // Before, the scan never came back for it: the orchestration waited for good.
    const slow = await startTestHub({
      virtualClock: false,
      wrapInvoker: (inner) => {
        let delayed = false;
        return {
          ...inner,
          hasOrchestrator: (name) => inner.hasOrchestrator(name),
          hasActivity: (name) => inner.hasActivity(name),
          invokeActivity: (name, input, id) => inner.invokeActivity(name, input, id),
          invokeOrchestrator: async (name, payload) => {
            if (name === 'slowNap' && !delayed) {
              delayed = true;
              await new Promise((r) => setTimeout(r, 150));
            }
            return inner.invokeOrchestrator(name, payload);
          },
        };
      },
    });
    try {
      const ticker = await slow.client.startNew('ticker');
      await new Promise((r) => setTimeout(r, 20));
      const id = await slow.client.startNew('slowNap');
      const finished = async (instance: string) => {
        const deadline = Date.now() + 3000;
        let status = await slow.client.getStatus(instance);
        while (status.runtimeStatus !== 'Completed' && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
          status = await slow.client.getStatus(instance);
        }
        return status.output;
      };
      expect(await finished(id)).toBe('rested');
      expect(await finished(ticker)).toBe('ticked');
    } finally {
      await slow.stop();
    }
  });

  it('has no time controls without a virtual clock', async () => {
    expect((await fetch(`${hub.baseUrl}/admin/durable/advance?ms=1`, { method: 'POST' })).status).toBe(404);
  });
});

describe('failures that cross instances', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(() => hub.stop());

  it('fails the parent task when its sub-orchestration is terminated', async () => {
    const id = await hub.client.startNew('parentOfSleepy', { instanceId: 'p-sleepy' });
    await hub.idle();
    expect((await hub.status('p-sleepy-child')).runtimeStatus).toBe('Running');
    await hub.client.terminate('p-sleepy-child', 'stuck');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual({ childFailed: expect.stringContaining('stuck') });
  });

  it('rewinds an instance whose retries were exhausted by running the last attempt again', async () => {
    printer.jammed = true;
    printer.calls = 0;
    const id = await hub.client.startNew('labelWithRetry');
    await hub.advance(10 * SECOND);
    const failed = await hub.status(id);
    expect(failed.runtimeStatus).toBe('Failed');
    expect(printer.calls).toBe(3);
    printer.jammed = false;
    await hub.client.rewind(id, 'printer fixed');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toBe('label printed');
    expect(printer.calls).toBe(4);
  });

  it('fails an orchestration that uses an API the engine does not run, saying which', async () => {
    const id = await hub.client.startNew('usesEntities');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Failed');
    expect(status.output).toContain('does not support durable entities');
  });
});
