/**
 * Every action type and failure path the engine interprets: retries with DTFx backoff,
 * sub-orchestrations, events that arrive early, long timers, continue-as-new dropping unwaited events,
 * failures with failure details, and nondeterminism detection.
 */
import * as df from 'durable-functions';
import { startTestHub, type TestHub } from './harness';

const SECOND = 1000;
const DAY = 24 * 3600_000;

// --- retries
const failuresLeft = new Map<string, number>();
const attemptsSeen = new Map<string, number>();
df.app.activity('flakyCharge', {
  handler: (key: string) => {
    attemptsSeen.set(key, (attemptsSeen.get(key) ?? 0) + 1);
    const left = failuresLeft.get(key) ?? 0;
    if (left > 0) {
      failuresLeft.set(key, left - 1);
      throw new Error(`card declined for ${key}`);
    }
    return `charged ${key}`;
  },
});
const backoff = new df.RetryOptions(1 * SECOND, 4);
backoff.backoffCoefficient = 2;
df.app.orchestration('chargeWithRetry', function* (context) {
  return yield context.df.callActivityWithRetry('flakyCharge', backoff, context.df.getInput());
});
df.app.orchestration('chargeOrReport', function* (context) {
  try {
    return yield context.df.callActivityWithRetry('flakyCharge', new df.RetryOptions(SECOND, 2), context.df.getInput());
  } catch (err) {
    return { caught: (err as Error).message };
  }
});

const capped = new df.RetryOptions(SECOND, 3);
capped.backoffCoefficient = 2;
capped.maxRetryIntervalInMilliseconds = 3 * SECOND;
df.app.orchestration('chargeOrReportWhen', function* (context) {
  const started = context.df.currentUtcDateTime.getTime();
  try {
    return yield context.df.callActivityWithRetry('flakyCharge', capped, context.df.getInput());
  } catch (err) {
    return { caughtAfterMs: context.df.currentUtcDateTime.getTime() - started, error: (err as Error).message };
  }
});

const bounded = new df.RetryOptions(SECOND, 10);
bounded.retryTimeoutInMilliseconds = 2500;
df.app.orchestration('chargeWithinTimeout', function* (context) {
  try {
    return yield context.df.callActivityWithRetry('flakyCharge', bounded, context.df.getInput());
  } catch (err) {
    return { gaveUpAt: context.df.currentUtcDateTime.toISOString(), error: (err as Error).message };
  }
});

// --- sub-orchestrations
df.app.orchestration('childDoubler', function* (context) {
  const n = context.df.getInput<number>();
  if (n < 0) throw new Error(`negative input ${n}`);
  return { n: n * 2, parent: context.df.parentInstanceId, self: context.df.instanceId };
});
df.app.orchestration('parentOfChildren', function* (context) {
  const named = yield context.df.callSubOrchestrator('childDoubler', 21, `${context.df.instanceId}-child`);
  const anonymous = yield context.df.callSubOrchestrator('childDoubler', 1);
  return { named, anonymous };
});
const childFailuresLeft = { n: 0 };
df.app.orchestration('flakyChild', function* () {
  if (childFailuresLeft.n > 0) {
    childFailuresLeft.n--;
    throw new Error('child not ready');
  }
  return 'child ok';
});
df.app.orchestration('parentWithChildRetry', function* (context) {
  return yield context.df.callSubOrchestratorWithRetry('flakyChild', new df.RetryOptions(5 * SECOND, 3));
});
df.app.orchestration('parentOfFailingChild', function* (context) {
  try {
    yield context.df.callSubOrchestrator('childDoubler', -1);
    return 'unexpected';
  } catch (err) {
    return { caught: (err as Error).message };
  }
});

// --- task numbering under load: retries, long timers and plain tasks completing in any order
const flakyLeft = new Map<string, number>();
df.app.activity('flakyEcho', {
  handler: (key: string) => {
    const left = flakyLeft.get(key) ?? 0;
    if (left > 0) {
      flakyLeft.set(key, left - 1);
      throw new Error(`transient ${key}`);
    }
    return `echo ${key}`;
  },
});
df.app.activity('plainEcho', { handler: (key: string) => `plain ${key}` });
df.app.orchestration('mixedParallel', function* (context) {
  const retry = new df.RetryOptions(2 * SECOND, 4);
  const results: unknown[] = yield context.df.Task.all([
    context.df.callActivityWithRetry('flakyEcho', retry, 'r1'),
    context.df.callActivity('plainEcho', 'p1'),
    context.df.callActivityWithRetry('flakyEcho', retry, 'r2'),
    context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 7 * DAY)),
    context.df.callActivityWithRetry('flakyEcho', retry, 'r3'),
    context.df.callActivity('plainEcho', 'p2'),
  ]);
  const race = yield context.df.Task.any([
    context.df.callActivity('plainEcho', 'fast'),
    context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + DAY)),
  ]);
  const after: string = yield context.df.callActivity('plainEcho', 'after');
  // Timer results are not strings (a long timer yields its segments' results).
  return { results: results.filter((r) => typeof r === 'string'), race: race.result, after };
});
df.app.orchestration('childWithFixedId', function* (context) {
  return yield context.df.callSubOrchestratorWithRetry('flakyChild', new df.RetryOptions(SECOND, 3), null, 'fixed-child');
});

// --- events
df.app.orchestration('eventsAfterAWhile', function* (context) {
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 60 * SECOND));
  const first = yield context.df.waitForExternalEvent('Ping');
  const second = yield context.df.waitForExternalEvent('Ping');
  const both = yield context.df.Task.all([
    context.df.waitForExternalEvent('A'),
    context.df.waitForExternalEvent('B'),
  ]);
  return { first, second, both };
});
df.app.orchestration('counterEternal', function* (context) {
  const carried = context.df.getInput<{ first: number }>();
  if (!carried) {
    // First execution: a pause while events arrive, then one of them, then continue-as-new.
    yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 10 * SECOND));
    const first: number = yield context.df.waitForExternalEvent('Add');
    context.df.continueAsNew({ first });
    return undefined;
  }
  const add = context.df.waitForExternalEvent('Add');
  const timeout = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 60 * SECOND));
  const winner = yield context.df.Task.any([add, timeout]);
  const leftOver = winner === add ? add.result : 'none';
  if (winner === add) timeout.cancel();
  const after: number = yield context.df.waitForExternalEvent('Add');
  return { ...carried, leftOver, after };
});

// --- long timers (longer than the 6-day maximum short timer: the SDK splits them)
df.app.orchestration('tenDaySleep', function* (context) {
  const start = context.df.currentUtcDateTime.getTime();
  yield context.df.createTimer(new Date(start + 10 * DAY));
  return (context.df.currentUtcDateTime.getTime() - start) / DAY;
});

// --- failures
df.app.activity('rejectOrder', {
  handler: () => {
    throw new TypeError('order 7 has no items');
  },
});
df.app.orchestration('statusOfLength', function* (context) {
  context.df.setCustomStatus('x'.repeat(context.df.getInput<number>()));
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + SECOND));
  return 'done';
});
df.app.orchestration('failingOrder', function* (context) {
  context.df.setCustomStatus('validating');
  yield context.df.callActivity('rejectOrder', 7);
  return 'unreachable';
});
df.app.orchestration('throwsDirectly', function* () {
  throw new Error('orchestrator gave up');
});
df.app.orchestration('callsMissingActivity', function* (context) {
  return yield context.df.callActivity('noSuchActivity');
});

// --- nondeterminism: the orchestrator's choice depends on something outside its history
const routing = { useNewPath: false };
df.app.activity('oldPath', { handler: () => 'old' });
df.app.activity('newPath', { handler: () => 'new' });
df.app.orchestration('driftingOrchestration', function* (context) {
  const first = yield context.df.callActivity(routing.useNewPath ? 'newPath' : 'oldPath');
  yield context.df.waitForExternalEvent('Continue');
  return first;
});

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(() => hub.stop());

describe('activity retries', () => {
  it('retries with DTFx backoff (1s, 2s, 4s...) in orchestration time and returns the eventual result', async () => {
    failuresLeft.set('order-a', 2);
    const id = await hub.client.startNew('chargeWithRetry', { input: 'order-a' });
    await hub.idle();
    expect(attemptsSeen.get('order-a')).toBe(1);
    await hub.advance(SECOND - 1);
    expect(attemptsSeen.get('order-a')).toBe(1);
    await hub.advance(1);
    expect(attemptsSeen.get('order-a')).toBe(2);
    await hub.advance(2 * SECOND - 1);
    expect(attemptsSeen.get('order-a')).toBe(2);
    await hub.advance(1);
    const status = await hub.status(id);
    expect(attemptsSeen.get('order-a')).toBe(3);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toBe('charged order-a');
  });

  it('surfaces the last failure to the orchestrator once attempts are exhausted', async () => {
    failuresLeft.set('order-b', 5);
    const id = await hub.client.startNew('chargeOrReport', { input: 'order-b' });
    await hub.advance(10 * SECOND);
    const status = await hub.status(id);
    expect(attemptsSeen.get('order-b')).toBe(2);
    expect(status.output).toEqual({ caught: 'Error: card declined for order-b' });
  });

  it('surfaces the last failure one more capped backoff after the last attempt, as DTFx RetryInterceptor does', async () => {
    failuresLeft.set('order-f', 5);
    const id = await hub.client.startNew('chargeOrReportWhen', { input: 'order-f' });
    // Attempts at 0s, 1s and 3s; DTFx then waits min(1s * 2^2, 3s) before throwing.
    await hub.advance(5 * SECOND);
    expect(attemptsSeen.get('order-f')).toBe(3);
    expect((await hub.status(id)).runtimeStatus).toBe('Running');
    await hub.advance(SECOND);
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual({ caughtAfterMs: 6 * SECOND, error: 'Error: card declined for order-f' });
    expect(attemptsSeen.get('order-f')).toBe(3);
  });
});

describe('retry timeout', () => {
  it('stops retrying once retryTimeout has passed since the first attempt, as DTFx does', async () => {
    failuresLeft.set('order-c', 100);
    const id = await hub.client.startNew('chargeWithinTimeout', { input: 'order-c' });
    const started = hub.engine.clock.now();
    await hub.advance(60 * SECOND);
    const status = await hub.status(id);
    // Attempts at 0s, 1s, 2s and 3s: the failure at 3s is past the 2.5s timeout.
    expect(attemptsSeen.get('order-c')).toBe(4);
    const out = status.output as { gaveUpAt: string; error: string };
    expect(out.error).toBe('Error: card declined for order-c');
    expect(Date.parse(out.gaveUpAt) - started).toBe(3 * SECOND);
  });
});

describe('sub-orchestrations', () => {
  it('runs children with a given and with a generated instance id, and returns their outputs', async () => {
    const id = await hub.client.startNew('parentOfChildren', { instanceId: 'parent-1' });
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    const out = status.output as { named: { n: number; parent: string; self: string }; anonymous: { self: string } };
    expect(out.named).toEqual({ n: 42, parent: 'parent-1', self: 'parent-1-child' });
    expect(out.anonymous.self).toMatch(/^parent-1:/);
    expect((await hub.status('parent-1-child')).runtimeStatus).toBe('Completed');
  });

  it('retries a failing sub-orchestration', async () => {
    childFailuresLeft.n = 2;
    const id = await hub.client.startNew('parentWithChildRetry');
    await hub.idle();
    expect((await hub.status(id)).runtimeStatus).toBe('Running');
    await hub.advance(20 * SECOND);
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toBe('child ok');
  });

  it('hands a child failure to the parent as a catchable error', async () => {
    const id = await hub.client.startNew('parentOfFailingChild');
    const status = await hub.status(id);
    expect(status.output).toEqual({ caught: expect.stringContaining('negative input -1') });
  });
});

describe('task numbering', () => {
  it('matches every completion to its task when retries, long timers and plain tasks interleave', async () => {
    flakyLeft.set('r1', 1);
    flakyLeft.set('r2', 3);
    flakyLeft.set('r3', 2);
    const id = await hub.client.startNew('mixedParallel');
    await hub.advance(8 * DAY);
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual({
      results: ['echo r1', 'plain p1', 'echo r2', 'echo r3', 'plain p2'],
      race: 'plain fast',
      after: 'plain after',
    });
  });

  it('retries a sub-orchestration under the same instance id', async () => {
    childFailuresLeft.n = 2;
    const id = await hub.client.startNew('childWithFixedId');
    await hub.advance(10 * SECOND);
    expect((await hub.status(id)).output).toBe('child ok');
    expect((await hub.status('fixed-child')).runtimeStatus).toBe('Completed');
  });
});

describe('external events', () => {
  it('keeps events that arrive before the orchestrator waits for them, in order', async () => {
    const id = await hub.client.startNew('eventsAfterAWhile');
    await hub.idle();
    await hub.client.raiseEvent(id, 'Ping', 1);
    await hub.client.raiseEvent(id, 'B', 'b');
    await hub.client.raiseEvent(id, 'Ping', 2);
    await hub.idle();
    expect((await hub.status(id)).runtimeStatus).toBe('Running');
    await hub.client.raiseEvent(id, 'A', 'a');
    await hub.advance(60 * SECOND);
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual({ first: 1, second: 2, both: ['a', 'b'] });
  });

  it('drops events an execution never waited for at continue-as-new, as the extension does for durable-functions; later events reach the new execution', async () => {
    const id = await hub.client.startNew('counterEternal');
    await hub.idle();
    // Two events while the first execution pauses: it takes one, then continues as new.
    await hub.client.raiseEvent(id, 'Add', 3);
    await hub.client.raiseEvent(id, 'Add', 4);
    await hub.advance(10 * SECOND);
    // The second is gone with the first execution: the new one waits out its minute.
    await hub.advance(60 * SECOND);
    expect((await hub.status(id)).runtimeStatus).toBe('Running');
    await hub.client.raiseEvent(id, 'Add', 5);
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toEqual({ first: 3, leftOver: 'none', after: 5 });
  });
});

describe('long timers', () => {
  it('fires a 10-day timer after exactly 10 days, not at the first 3-day segment', async () => {
    const id = await hub.client.startNew('tenDaySleep');
    await hub.advance(9 * DAY);
    expect((await hub.status(id)).runtimeStatus).toBe('Running');
    await hub.advance(DAY);
    const status = await hub.status(id, { showHistory: true });
    expect(status.runtimeStatus).toBe('Completed');
    expect(status.output).toBe(10);
    const fired = (status.history as Array<{ EventType: string; FireAt: string }>).filter((e) => e.EventType === 'TimerFired');
    // Segments of 3 days while more than 6 days remain, then the rest: days 3, 6, 10.
    const created = Date.parse((await hub.status(id)).createdTime.toISOString());
    expect(fired.map((e) => Math.round((Date.parse(e.FireAt) - created) / DAY))).toEqual([3, 6, 10]);
  });
});

describe('failures', () => {
  it('fails the instance whose custom status is over 16 KB in UTF-16, as the extension refuses it', async () => {
    // 8,192 characters and two quotes: 16 KB once rounded down, still allowed.
    const fits = await hub.client.startNew('statusOfLength', { input: 8192 });
    const tooBig = await hub.client.startNew('statusOfLength', { input: 8704 });
    await hub.advance(SECOND);
    expect((await hub.status(fits)).runtimeStatus).toBe('Completed');
    const status = await hub.status(tooBig);
    expect(status.runtimeStatus).toBe('Failed');
    expect(status.output).toBe(
      "Orchestrator function 'statusOfLength' failed: The UTF-16 size of the JSON-serialized payload must not exceed 16 KB. The current payload size is 17 KB.",
    );
  });

  it('fails the instance with Azure-like output and failure details when an activity error is not caught', async () => {
    const id = await hub.client.startNew('failingOrder');
    const status = await hub.status(id, { showHistory: true });
    expect(status.runtimeStatus).toBe('Failed');
    expect(status.output).toBe("Orchestrator function 'failingOrder' failed: TypeError: order 7 has no items");
    expect(status.customStatus).toBe('validating');
    const completed = (status.history as Array<Record<string, unknown>>).find((e) => e.EventType === 'ExecutionCompleted');
    expect(completed).toMatchObject({
      OrchestrationStatus: 'Failed',
      FailureDetails: { ErrorType: 'TypeError', ErrorMessage: 'order 7 has no items' },
    });
    const taskFailed = (status.history as Array<Record<string, unknown>>).find((e) => e.EventType === 'TaskFailed');
    expect(taskFailed).toMatchObject({ FunctionName: 'rejectOrder', Reason: "Activity function 'rejectOrder' failed: order 7 has no items" });
  });

  it('fails the instance when the orchestrator throws', async () => {
    const id = await hub.client.startNew('throwsDirectly');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Failed');
    expect(status.output).toBe("Orchestrator function 'throwsDirectly' failed: orchestrator gave up");
  });

  it('fails the task when the activity is not registered', async () => {
    const id = await hub.client.startNew('callsMissingActivity');
    const status = await hub.status(id);
    expect(status.runtimeStatus).toBe('Failed');
    expect(status.output).toContain("The function 'noSuchActivity' doesn't exist");
  });
});

describe('nondeterminism', () => {
  it('fails the instance naming the recorded and the replayed step', async () => {
    routing.useNewPath = false;
    const id = await hub.client.startNew('driftingOrchestration');
    await hub.idle();
    expect((await hub.status(id)).runtimeStatus).toBe('Running');
    routing.useNewPath = true; // a deployment changed the code under a running instance
    await hub.client.raiseEvent(id, 'Continue', null);
    const status = await hub.status(id);
    routing.useNewPath = false;
    expect(status.runtimeStatus).toBe('Failed');
    expect(status.output).toContain("step 0 was recorded as CallActivity 'oldPath' but the replay produced CallActivity 'newPath'");
  });
});
