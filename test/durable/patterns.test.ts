/**
 * The documented durable-functions patterns, written against the public API only, run unchanged on
 * the local engine: chaining, fan-out/fan-in, monitor, human interaction, eternal orchestration.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, OrchestrationHandler } from 'durable-functions';
import { startTestHub, type TestHub } from './harness';

const HOUR = 3600_000;

// --- chaining
const sayHello = df.app.activity('sayHello', { handler: (city: string) => `Hello ${city}!` });
const chaining: OrchestrationHandler = function* (context: OrchestrationContext) {
  const greeting = context.df.getInput<{ prefix: string }>();
  const outputs: string[] = [];
  for (const city of ['Tokyo', 'Seattle', 'Cairo']) outputs.push(`${greeting.prefix}${yield sayHello(city)}`);
  return outputs;
};
df.app.orchestration('helloSequence', chaining);

// --- fan-out / fan-in
df.app.activity('getWorkItems', { handler: (n: number) => Array.from({ length: n }, (_, i) => i + 1) });
df.app.activity('square', { handler: async (x: number) => x * x });
df.app.orchestration('fanOutFanIn', function* (context) {
  const items: number[] = yield context.df.callActivity('getWorkItems', context.df.getInput());
  const squares: number[] = yield context.df.Task.all(items.map((x) => context.df.callActivity('square', x)));
  return squares.reduce((a, b) => a + b, 0);
});

// --- monitor: poll a job every hour until it is done or 12 hours have passed
const jobDoneAfterPolls = new Map<string, number>();
const pollCounts = new Map<string, number>();
df.app.activity('checkJob', {
  handler: (jobId: string) => {
    const n = (pollCounts.get(jobId) ?? 0) + 1;
    pollCounts.set(jobId, n);
    return n >= (jobDoneAfterPolls.get(jobId) ?? Infinity) ? 'done' : 'running';
  },
});
df.app.orchestration('jobMonitor', function* (context) {
  const jobId = context.df.getInput<string>();
  const expiry = new Date(context.df.currentUtcDateTime.getTime() + 12 * HOUR);
  const checkedAt: string[] = [];
  while (context.df.currentUtcDateTime < expiry) {
    checkedAt.push(context.df.currentUtcDateTime.toISOString());
    const state: string = yield context.df.callActivity('checkJob', jobId);
    if (state === 'done') return { state, checkedAt };
    context.df.setCustomStatus({ polls: checkedAt.length });
    yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + HOUR));
  }
  return { state: 'expired', checkedAt };
});

// --- human interaction with a timeout
df.app.activity('escalate', { handler: (id: string) => `escalated ${id}` });
df.app.orchestration('approvalWorkflow', function* (context) {
  const deadline = new Date(context.df.currentUtcDateTime.getTime() + 24 * HOUR);
  const timeout = context.df.createTimer(deadline);
  const approval = context.df.waitForExternalEvent('Approval');
  const winner = yield context.df.Task.any([approval, timeout]);
  if (winner === approval) {
    timeout.cancel();
    return { approved: approval.result };
  }
  return { escalation: yield context.df.callActivity('escalate', context.df.instanceId) };
});

// --- eternal orchestration
df.app.activity('cleanUp', { handler: (n: number) => n + 1 });
df.app.orchestration('periodicCleanup', function* (context) {
  const runs = context.df.getInput<number>() ?? 0;
  const next: number = yield context.df.callActivity('cleanUp', runs);
  if (next >= 5) return next;
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + HOUR));
  context.df.continueAsNew(next);
  return undefined;
});

// Every pattern runs twice: with the engine's history cache, and with none, so that every episode
// reads its history back from SQLite (what an instance evicted from the cache does).
describe.each([
  ['with histories cached', {}],
  ['with every history read from the store', { historyCacheEvents: 0 }],
] as const)('%s', (variant, options) => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub(options);
  });
  afterAll(() => hub.stop());

  describe('function chaining', () => {
    it('passes each activity result on and returns them in order', async () => {
      const id = await hub.client.startNew('helloSequence', { input: { prefix: '> ' } });
      const status = await hub.status(id);
      expect(status.runtimeStatus).toBe('Completed');
      expect(status.output).toEqual(['> Hello Tokyo!', '> Hello Seattle!', '> Hello Cairo!']);
      expect(status.input).toEqual({ prefix: '> ' });
    });

    it('uses the instance id given to startNew', async () => {
      const id = await hub.client.startNew('helloSequence', { instanceId: 'order-42', input: { prefix: '' } });
      expect(id).toBe('order-42');
      expect((await hub.status('order-42')).output).toEqual(['Hello Tokyo!', 'Hello Seattle!', 'Hello Cairo!']);
    });

    it('shows the steps in the status history when asked', async () => {
      const id = await hub.client.startNew('helloSequence', { input: { prefix: '' } });
      const status = await hub.status(id, { showHistory: true, showHistoryOutput: true });
      const history = status.history as Array<Record<string, unknown>>;
      expect(history.map((e) => e.EventType)).toEqual([
        'ExecutionStarted',
        'TaskCompleted',
        'TaskCompleted',
        'TaskCompleted',
        'ExecutionCompleted',
      ]);
      expect(history[2]).toMatchObject({ FunctionName: 'sayHello', Result: 'Hello Seattle!' });
    });
  });

  describe('fan-out/fan-in', () => {
    it('runs the parallel activities and aggregates their results', async () => {
      const id = await hub.client.startNew('fanOutFanIn', { input: 10 });
      const status = await hub.status(id);
      expect(status.runtimeStatus).toBe('Completed');
      expect(status.output).toBe(385);
    });
  });

  describe('monitor', () => {
    it('polls on durable timers, one hour apart in orchestration time, until the job is done', async () => {
      jobDoneAfterPolls.set(`job-1 ${variant}`, 4);
      const id = await hub.client.startNew('jobMonitor', { input: `job-1 ${variant}` });
      await hub.idle();
      const waiting = await hub.status(id);
      expect(waiting.runtimeStatus).toBe('Running');
      expect(waiting.customStatus).toEqual({ polls: 1 });
      await hub.advance(10 * HOUR);
      const status = await hub.status(id);
      expect(status.runtimeStatus).toBe('Completed');
      const out = status.output as { state: string; checkedAt: string[] };
      expect(out.state).toBe('done');
      const times = out.checkedAt.map((t) => Date.parse(t));
      expect(times).toHaveLength(4);
      expect(times.slice(1).map((t, i) => t - times[i])).toEqual([HOUR, HOUR, HOUR]);
    });

    it('gives up when the expiry passes', async () => {
      const id = await hub.client.startNew('jobMonitor', { input: 'job-never' });
      await hub.advance(13 * HOUR);
      const status = await hub.status(id);
      expect(status.output).toMatchObject({ state: 'expired' });
      expect((status.output as { checkedAt: string[] }).checkedAt).toHaveLength(12);
    });
  });

  describe('human interaction', () => {
    it('takes the approval when it arrives before the deadline', async () => {
      const id = await hub.client.startNew('approvalWorkflow');
      await hub.advance(2 * HOUR);
      await hub.client.raiseEvent(id, 'Approval', { by: 'alice' });
      const status = await hub.status(id);
      expect(status.runtimeStatus).toBe('Completed');
      expect(status.output).toEqual({ approved: { by: 'alice' } });
    });

    it('escalates when the deadline passes first', async () => {
      const id = await hub.client.startNew('approvalWorkflow');
      await hub.advance(24 * HOUR - 1);
      expect((await hub.status(id)).runtimeStatus).toBe('Running');
      await hub.advance(1);
      const status = await hub.status(id);
      expect(status.output).toEqual({ escalation: `escalated ${id}` });
      // A late approval reaches a finished instance: the client returns quietly (410), nothing changes.
      await hub.client.raiseEvent(id, 'Approval', { by: 'late' });
      expect((await hub.status(id)).output).toEqual({ escalation: `escalated ${id}` });
    });
  });

  describe('eternal orchestration', () => {
    it('continues as new with fresh history until it decides to stop', async () => {
      const id = await hub.client.startNew('periodicCleanup', { input: 0 });
      await hub.advance(3 * HOUR);
      const midway = await hub.status(id, { showHistory: true });
      expect(midway.runtimeStatus).toBe('Running');
      expect(midway.input).toBe(3);
      // Only the current generation's history is kept.
      const started = (midway.history as Array<{ EventType: string }>).filter((e) => e.EventType === 'ExecutionStarted');
      expect(started).toHaveLength(1);
      await hub.advance(10 * HOUR);
      const status = await hub.status(id);
      expect(status.runtimeStatus).toBe('Completed');
      expect(status.output).toBe(5);
    });
  });
});
