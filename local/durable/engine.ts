/**
 * The durable task engine: owns the task hub store, dispatches orchestration episodes (one at a
 * time per instance, a bounded number in parallel) and activities (bounded), fires timers from the
 * clock, and offers the operations behind the client API.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { clientApiPrefixes, handleClientRequest } from './client-api';
import { SystemClock, VirtualClock, type EngineClock } from './clock';
import { asError, ClientRequestError, EngineStateError } from './errors';
import {
  eventMessage,
  newInstanceRow,
  runEpisode,
  startMessage,
  type EpisodePlan,
  type ExecutionRuntime,
  type NewActivity,
  type NewMessage,
} from './episode';
import { failureDetailsOf, historyEvent, HistoryEventType, toJsonText, type HistoryEvent } from './history';
import { isTerminal, TaskHubStore, type InstanceQuery, type InstanceRow, type ListPage, type MessageKind } from './store';

export interface DurableInvoker {
  /** Runs the registered orchestrationTrigger function with the trigger payload; resolves with the OrchestratorState or rejects with what it threw. */
  invokeOrchestrator(name: string, payload: unknown): Promise<unknown>;
  invokeActivity(name: string, input: unknown, instanceId: string): Promise<unknown>;
  hasOrchestrator(name: string): boolean;
  hasActivity(name: string): boolean;
}

export type DurableLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, props?: object) => void;

export interface DurableEngineOptions {
  dataDir: string;
  hubName: string;
  invoker: DurableInvoker;
  /** http://127.0.0.1:<port> of the host serving handleHttp: the management webhooks' base. */
  baseUrl: string;
  /**
   * Where the client API (`/durabletask/`) is served when that is not the host's port, as the
   * extension serves it on a local port of its own; default `<baseUrl>/durabletask/`.
   */
  rpcBaseUrl?: string;
  virtualClock?: boolean;
  maxConcurrentOrchestrations?: number;
  maxConcurrentActivities?: number;
  retention?: { completedMaxAgeMs: number; sweepIntervalMs?: number };
  /** Bound on the history events kept in memory across instances (HISTORY_CACHE_EVENTS by default; 0 keeps none). */
  historyCacheEvents?: number;
  log?: DurableLog;
}

/**
 * Bound on cached history events across instances (a few hundred bytes each, ~8 MB in all).
 * Enough for the instances a steady load keeps active (a completed order's monitor has eight);
 * beyond that an episode reads its history from SQLite (one indexed query), which is cheaper than
 * the memory a backlog of orders would otherwise hold: the host ended a burst of 10,000 orders
 * about 20 MB smaller with this bound than with 50,000, at no CPU per order measurable.
 */
const HISTORY_CACHE_EVENTS = 20_000;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class DurableEngine {
  readonly clock: EngineClock;
  private readonly invoker: DurableInvoker;
  private readonly log: DurableLog;
  private readonly maxEpisodes: number;
  private readonly maxActivities: number;
  private store?: TaskHubStore;
  private running = false;

  /** Instances that may have due messages, in arrival order. */
  private readonly ready = new Set<string>();
  /** Per-instance lock: the tail of the chain of work on that instance. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly busy = new Set<string>();
  private episodesInFlight = 0;
  private readonly activityQueue: number[] = [];
  private readonly activitiesInFlight = new Set<number>();
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Current execution's history texts for recently active instances. */
  private readonly historyCache = new Map<string, { executionId: string; events: string[] }>();
  private cachedEvents = 0;
  private readonly historyCacheEvents: number;

  private timersScannedUpTo = 0;
  private nextTimerAt: number | undefined;
  private nextSweepAt: number | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  private idleWaiters: Array<() => void> = [];
  /** Writes waiting for the next group commit (one transaction for all that finished in the same turn). */
  private commitQueue: Array<{ write: () => void; after: () => void; done: (err?: unknown) => void }> = [];
  private commitScheduled = false;
  private lastError: Error | undefined;

  constructor(private readonly options: DurableEngineOptions) {
    this.invoker = options.invoker;
    this.log = options.log ?? (() => undefined);
    this.maxEpisodes = Math.max(1, options.maxConcurrentOrchestrations ?? 16);
    this.maxActivities = Math.max(1, options.maxConcurrentActivities ?? 16);
    this.historyCacheEvents = Math.max(0, options.historyCacheEvents ?? HISTORY_CACHE_EVENTS);
    if (options.virtualClock) {
      const clock = new VirtualClock();
      clock.stepper = (target) => this.runUntil(target);
      this.clock = clock;
    } else {
      this.clock = new SystemClock();
    }
  }

  get hubName(): string {
    return this.options.hubName;
  }

  get databaseFile(): string {
    return path.join(this.options.dataDir, `${this.options.hubName}.db`);
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    if (this.running) return;
    this.store = new TaskHubStore(this.databaseFile);
    this.ready.clear();
    this.activityQueue.length = 0;
    this.historyCache.clear();
    this.cachedEvents = 0;
    if (this.clock instanceof VirtualClock) this.resumeVirtualTime(this.clock, this.store);
    // What a run on the real clock writes is stamped with the real time, which the kept virtual
    // time knows nothing of: the next run on a virtual clock falls back on the later of the real
    // time and the last instance update, as for a hub that never kept one.
    else this.store.forgetVirtualTime();
    const now = this.clock.now();
    for (const id of this.store.readyInstances(this.clock.now())) this.ready.add(id);
    for (const id of this.store.activityIds()) this.activityQueue.push(id);
    this.timersScannedUpTo = this.clock.now();
    this.nextTimerAt = this.store.nextVisibleAfter(this.timersScannedUpTo);
    if (this.options.retention) this.nextSweepAt = now;
    this.running = true;
    this.log('info', 'durable engine started', {
      hub: this.hubName,
      file: this.databaseFile,
      resumedInstances: this.ready.size,
      resumedActivities: this.activityQueue.length,
    });
    this.pump();
  }

  /**
   * Virtual time goes on from where the previous run on this hub left it, exactly: not from the
   * last instance update (an advance that fired nothing, and events raised after it, would be
   * taken back: those events would wait for time to pass again), nor from the real time (which
   * would move it on by however long the restart took). Hubs written before the time was kept,
   * or last run on the real clock, fall back on the last instance update.
   */
  private resumeVirtualTime(clock: VirtualClock, store: TaskHubStore): void {
    const stored = store.virtualTime();
    if (stored !== undefined) {
      clock.resume(stored);
    } else {
      const row = store.db.prepare('SELECT MAX(updated_at) AS t FROM instances').get() as { t: number | null };
      if (row.t) clock.set(row.t);
      store.saveVirtualTime(clock.now());
    }
    clock.onMove = (ms) => {
      if (this.running && this.store === store) store.saveVirtualTime(ms);
    };
  }

  /** Stops dispatching, waits briefly for in-flight work, and closes the store. Unfinished work stays queued. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    const pending = Promise.allSettled([...this.inFlight]);
    await Promise.race([pending, new Promise((r) => setTimeout(r, graceMs).unref())]);
    const store = this.store;
    this.store = undefined;
    await store?.close();
    this.historyCache.clear();
    this.cachedEvents = 0;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private get db(): TaskHubStore {
    if (!this.store) throw new EngineStateError('The durable engine is not started.');
    return this.store;
  }

  /** Resolves once nothing is due: no episode or activity running or queued (future timers do not count). */
  whenIdle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.pump();
    });
  }

  /** The last unexpected engine error (not orchestration failures), for tests and diagnostics. */
  get lastEngineError(): Error | undefined {
    return this.lastError;
  }

  /** Virtual clock: step from due timer to due timer up to `target`, running everything in between. */
  private async runUntil(target: number): Promise<void> {
    const clock = this.clock as VirtualClock;
    for (;;) {
      await this.whenIdle();
      if (!this.running) return;
      const next = this.db.nextVisibleAfter(clock.now());
      if (next === undefined || next > target) break;
      clock.set(next);
    }
    clock.set(target);
    await this.whenIdle();
  }

  // ------------------------------------------------------------------ dispatch

  private pump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      try {
        this.dispatch();
      } catch (err) {
        this.recordError('dispatch failed', err);
      }
    });
  }

  private dispatch(): void {
    if (!this.running) {
      this.resolveIdle();
      return;
    }
    const now = this.clock.now();
    this.scanTimers(now);
    if (this.nextSweepAt !== undefined && now >= this.nextSweepAt) this.sweepRetention(now);
    for (const id of this.ready) {
      if (this.episodesInFlight >= this.maxEpisodes) break;
      if (this.busy.has(id)) continue;
      this.ready.delete(id);
      this.startEpisode(id);
    }
    while (this.activitiesInFlight.size < this.maxActivities && this.activityQueue.length > 0) {
      this.startActivity(this.activityQueue.shift() as number);
    }
    this.armWakeTimer(now);
    this.resolveIdle();
  }

  private resolveIdle(): void {
    const idle =
      !this.running ||
      (this.episodesInFlight === 0 &&
        this.activitiesInFlight.size === 0 &&
        this.activityQueue.length === 0 &&
        this.ready.size === 0 &&
        this.busy.size === 0);
    if (idle) for (const w of this.idleWaiters.splice(0)) w();
  }

  private scanTimers(now: number): void {
    if (this.nextTimerAt === undefined || this.nextTimerAt > now) return;
    for (const id of this.db.instancesDueBetween(this.timersScannedUpTo, now)) this.ready.add(id);
    this.timersScannedUpTo = now;
    this.nextTimerAt = this.db.nextVisibleAfter(now);
  }

  private armWakeTimer(now: number): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    if (this.clock instanceof VirtualClock) return;
    const next = Math.min(this.nextTimerAt ?? Infinity, this.nextSweepAt ?? Infinity);
    if (next === Infinity) return;
    this.wakeTimer = setTimeout(() => this.pump(), Math.min(MAX_TIMEOUT_MS, Math.max(0, next - now + 1)));
    this.wakeTimer.unref();
  }

  private noteMessage(m: NewMessage, now: number): void {
    // An episode commits with the time it began: the timer scan may have passed its message's time
    // meanwhile (other work ran while its orchestrator did), and would never come back for it.
    if (m.visible_at <= now || m.visible_at <= this.timersScannedUpTo) this.ready.add(m.instance_id);
    else if (this.nextTimerAt === undefined || m.visible_at < this.nextTimerAt) this.nextTimerAt = m.visible_at;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  /** Runs `fn` when no other work holds the instance: episodes and client mutations never overlap. */
  private withInstance<T>(id: string, fn: () => Promise<T> | T): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(async () => {
      this.busy.add(id);
      try {
        return await fn();
      } finally {
        this.busy.delete(id);
      }
    });
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return run;
  }

  private startEpisode(id: string): void {
    this.episodesInFlight++;
    this.busy.add(id);
    const work = this.withInstance(id, () => this.episode(id))
      .catch((err) => this.recordError(`episode of '${id}' failed`, err))
      .finally(() => {
        this.episodesInFlight--;
        this.pump();
      });
    this.track(work);
  }

  private async episode(id: string): Promise<void> {
    if (!this.running) return;
    const store = this.db;
    const now = this.clock.now();
    const instance = store.getInstance(id);
    const messages = store.dueMessages(id, now);
    if (messages.length === 0) return;
    const began = performance.now();
    if (!instance) {
      // Messages for a purged instance.
      store.transaction(() => messages.forEach((m) => store.deleteMessage(m.id)));
      return;
    }
    const history = this.history(instance);
    const plan = await runEpisode({
      instance,
      history,
      messages,
      now,
      runner: this.invoker,
      getInstance: (other) => store.getInstance(other),
    });
    // Stopped while the orchestrator ran: leave everything queued; the next start redoes the episode.
    if (!this.running || !this.store) return;
    await this.commit(plan, now, history.length);
    if (plan.orchestratorRan) {
      this.log('debug', 'episode', {
        instanceId: id,
        status: plan.instance.status,
        historyLength: (plan.resetHistory ? 0 : history.length) + plan.events.length,
        ms: performance.now() - began,
      });
    }
  }

  private history(instance: InstanceRow): string[] {
    const cached = this.historyCache.get(instance.instance_id);
    if (cached && cached.executionId === instance.execution_id) {
      // Refresh recency for the LRU.
      this.historyCache.delete(instance.instance_id);
      this.historyCache.set(instance.instance_id, cached);
      return cached.events;
    }
    const events = this.db.history(instance.instance_id);
    this.cacheHistory(instance.instance_id, instance.execution_id, events);
    return events;
  }

  private cacheHistory(id: string, executionId: string, events: string[]): void {
    this.forgetHistory(id);
    if (this.historyCacheEvents === 0) return;
    this.historyCache.set(id, { executionId, events });
    this.cachedEvents += events.length;
    this.trimHistoryCache(id);
  }

  private forgetHistory(id: string): void {
    const cached = this.historyCache.get(id);
    if (!cached) return;
    this.cachedEvents -= cached.events.length;
    this.historyCache.delete(id);
  }

  /** Evicts least recently used histories (never `keep`) until the cache is within bounds. */
  private trimHistoryCache(keep: string): void {
    for (const id of this.historyCache.keys()) {
      if (this.cachedEvents <= this.historyCacheEvents) return;
      if (id !== keep) this.forgetHistory(id);
    }
  }

  /**
   * Group commit: writes that finish in the same turn of the event loop share one SQLite
   * transaction, and their in-memory effects (queues, caches) apply only after it committed.
   * If the shared transaction fails, each write is retried alone so one bad write fails only itself.
   */
  private enqueueCommit(write: () => void, after: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.commitQueue.push({ write, after, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (this.commitScheduled) return;
      this.commitScheduled = true;
      setImmediate(() => this.flushCommits());
    });
  }

  private flushCommits(): void {
    this.commitScheduled = false;
    const batch = this.commitQueue.splice(0);
    if (batch.length === 0) return;
    const store = this.store;
    if (!store) {
      for (const b of batch) b.done(new EngineStateError('The durable engine stopped before the write was committed.'));
      return;
    }
    try {
      store.transaction(() => batch.forEach((b) => b.write()));
    } catch {
      for (const b of batch) {
        try {
          store.transaction(b.write);
          b.after();
          b.done();
        } catch (err) {
          b.done(err);
        }
      }
      return;
    }
    for (const b of batch) {
      try {
        b.after();
        b.done();
      } catch (err) {
        b.done(err);
      }
    }
  }

  /** Writes an episode's outcome in one transaction: history, instance, consumed and new work. */
  private commit(plan: EpisodePlan, now: number, storedHistoryLength: number): Promise<void> {
    const store = this.db;
    const inst = plan.instance;
    const texts = plan.events.map((e) => JSON.stringify(e));
    const activityIds: number[] = [];
    const activities: NewActivity[] = plan.activities.filter((a) => a.execution_id !== plan.endedExecution);
    const write = (): void => {
      activityIds.length = 0;
      for (const m of plan.consumed) store.deleteMessage(m);
      if (!plan.instanceChanged) return;
      if (plan.resetHistory) {
        store.clearHistory(inst.instance_id);
        store.appendHistory(inst.instance_id, 0, texts);
      } else if (texts.length > 0) {
        store.appendHistory(inst.instance_id, storedHistoryLength, texts);
      }
      store.putInstance(inst);
      for (const child of plan.children) {
        store.purgeInstance(child.instance_id);
        store.putInstance(child);
      }
      if (plan.endedExecution) store.deleteExecutionTaskMessages(inst.instance_id, plan.endedExecution);
      for (const m of plan.messages) {
        if (m.execution_id === plan.endedExecution && m.instance_id === inst.instance_id && m.kind === 'task') continue;
        store.insertMessage(m);
      }
      for (const a of activities) activityIds.push(store.insertActivity(a));
    };
    const after = (): void => {
      if (!plan.instanceChanged) return;
      // Keep the in-memory history in step with what was just written.
      const cached = this.historyCache.get(inst.instance_id);
      if (isTerminal(inst.status)) this.forgetHistory(inst.instance_id);
      else if (plan.resetHistory) this.cacheHistory(inst.instance_id, inst.execution_id, texts);
      else if (cached && cached.executionId === inst.execution_id) {
        cached.events.push(...texts);
        this.cachedEvents += texts.length;
        this.trimHistoryCache(inst.instance_id);
      }
      for (const child of plan.children) this.forgetHistory(child.instance_id);
      for (const m of plan.messages) this.noteMessage(m, now);
      this.activityQueue.push(...activityIds);
      if (plan.moreWork) this.ready.add(inst.instance_id);
    };
    return this.enqueueCommit(write, after);
  }

  private startActivity(activityId: number): void {
    this.activitiesInFlight.add(activityId);
    const work = this.activity(activityId)
      .catch((err) => this.recordError(`activity ${activityId} failed to record`, err))
      .finally(() => {
        this.activitiesInFlight.delete(activityId);
        this.pump();
      });
    this.track(work);
  }

  private async activity(activityId: number): Promise<void> {
    const row = this.db.getActivity(activityId);
    if (!row) return;
    let event: HistoryEvent;
    const startedAt = this.clock.now();
    try {
      const input = row.input === null ? undefined : JSON.parse(row.input);
      const result = await this.invoker.invokeActivity(row.name, input, row.instance_id);
      event = historyEvent(HistoryEventType.TaskCompleted, this.clock.now(), {
        TaskScheduledId: row.task_id,
        Result: toJsonText(result) ?? 'null',
      });
    } catch (thrown) {
      const err = asError(thrown);
      const details = failureDetailsOf(err);
      event = historyEvent(HistoryEventType.TaskFailed, this.clock.now(), {
        TaskScheduledId: row.task_id,
        Reason: `Activity function '${row.name}' failed: ${details.ErrorMessage}`,
        Details: err.stack,
        FailureDetails: details,
      });
    }
    // Stopped meanwhile: the work item stays and runs again after restart (at-least-once).
    if (!this.running || !this.store) return;
    const store = this.store;
    const now = this.clock.now();
    const message: NewMessage = {
      instance_id: row.instance_id,
      execution_id: row.execution_id,
      kind: 'task',
      task_id: row.task_id,
      payload: JSON.stringify(event),
      visible_at: now,
      created_at: now,
    };
    let recorded = false;
    await this.enqueueCommit(
      () => {
        // The work item may be gone (instance terminated or purged): then the result goes nowhere.
        recorded = store.deleteActivity(activityId);
        if (recorded) store.insertMessage(message);
      },
      () => {
        if (recorded) this.noteMessage(message, now);
      },
    );
    this.log('debug', 'activity', { instanceId: row.instance_id, name: row.name, ms: now - startedAt });
  }

  private recordError(what: string, err: unknown): void {
    this.lastError = asError(err);
    this.log('error', what, { error: this.lastError.message, stack: this.lastError.stack });
  }

  // ------------------------------------------------------------------ retention

  /** Purges finished instances older than the retention age; returns how many. */
  sweepRetention(now = this.clock.now()): number {
    const retention = this.options.retention;
    if (!retention) return 0;
    this.nextSweepAt = now + (retention.sweepIntervalMs ?? 60_000);
    const ids = this.db.terminalInstanceIds({}, now - retention.completedMaxAgeMs);
    for (const id of ids) if (!this.busy.has(id)) this.purgeNow(id);
    if (ids.length > 0) this.log('info', 'retention purged instances', { count: ids.length });
    return ids.length;
  }

  private purgeNow(id: string): boolean {
    this.forgetHistory(id);
    return this.db.transaction(() => this.db.purgeInstance(id));
  }

  // ------------------------------------------------------------------ client operations

  /** Starts an orchestration; an id whose instance is still active is a conflict (409), as on Azure. */
  async startOrchestration(name: string, instanceId: string | undefined, inputJson: string | null): Promise<string> {
    if (!this.invoker.hasOrchestrator(name)) {
      throw new ClientRequestError(400, `The function '${name}' doesn't exist, is disabled, or is not an orchestrator function.`);
    }
    const id = instanceId && instanceId.length > 0 ? instanceId : randomUUID().replace(/-/g, '');
    return this.withInstance(id, async () => {
      const store = this.db;
      const now = this.clock.now();
      const existing = store.getInstance(id);
      if (existing && !isTerminal(existing.status)) {
        throw new ClientRequestError(409, `An Orchestration instance with the status ${existing.status} already exists.`);
      }
      const executionId = randomUUID();
      const message = startMessage(id, executionId, name, inputJson, now);
      // Group commit: starts arriving together share one transaction; the caller's answer still
      // waits for it, so an acknowledged start survives a crash.
      await this.enqueueCommit(
        () => {
          // Starting over a finished instance replaces it, history and leftovers included.
          if (existing) store.purgeInstance(id);
          store.putInstance(newInstanceRow(id, name, executionId, inputJson, now));
          store.insertMessage(message);
        },
        () => {
          this.forgetHistory(id);
          this.noteMessage(message, now);
          this.pump();
        },
      );
      return id;
    });
  }

  getInstance(id: string): InstanceRow | undefined {
    return this.db.getInstance(id);
  }

  historyOf(id: string): HistoryEvent[] {
    return this.db.history(id).map((t) => JSON.parse(t) as HistoryEvent);
  }

  listInstances(q: InstanceQuery, pageSize: number, token?: string): ListPage {
    return this.db.listInstances(q, pageSize, token);
  }

  /**
   * 404 when unknown, 410 when finished, else queues the event (delivered even before the
   * orchestrator waits). Resolves once the event is committed (group commit, as for starts).
   */
  async raiseEvent(id: string, name: string, inputJson: string | undefined): Promise<void> {
    const inst = this.requireActive(id);
    const now = this.clock.now();
    const message = eventMessage(inst.instance_id, name, inputJson, now);
    const store = this.db;
    await this.enqueueCommit(
      () => store.insertMessage(message),
      () => {
        this.noteMessage(message, now);
        this.pump();
      },
    );
  }

  /** Terminate, suspend and resume are queued for the instance's next episode, as on Azure. */
  control(id: string, kind: Extract<MessageKind, 'terminate' | 'suspend' | 'resume'>, reason: string | undefined): void {
    const inst = this.requireActive(id);
    const now = this.clock.now();
    const message: NewMessage = {
      instance_id: inst.instance_id,
      execution_id: null,
      kind,
      task_id: null,
      payload: JSON.stringify({ reason }),
      visible_at: now,
      created_at: now,
    };
    this.db.insertMessage(message);
    this.noteMessage(message, now);
    this.pump();
  }

  private requireActive(id: string): InstanceRow {
    const inst = this.db.getInstance(id);
    if (!inst) throw new ClientRequestError(404, `No instance with ID '${id}' found.`);
    if (isTerminal(inst.status)) throw new ClientRequestError(410, `Instance '${id}' has already finished (${inst.status}).`);
    return inst;
  }

  /**
   * Rewinds a Failed instance: removes the failures from its history and runs the failed tasks
   * again (the last attempt of a retried task; failed sub-orchestrations are rewound too).
   */
  async rewind(id: string, reason: string | undefined): Promise<void> {
    await this.withInstance(id, () => {
      const inst = this.db.getInstance(id);
      if (!inst) throw new ClientRequestError(404, `No orchestration with instance ID "${id}" found.`);
      if (inst.status !== 'Failed') {
        throw new ClientRequestError(
          412,
          `This orchestration has status ${inst.status}, but only orchestrations in the "Failed" state can be rewound.`,
        );
      }
      this.rewindNow(inst, reason);
    });
    this.pump();
  }

  private rewindNow(inst: InstanceRow, reason: string | undefined): void {
    const store = this.db;
    const now = this.clock.now();
    const runtime = JSON.parse(inst.runtime) as ExecutionRuntime;
    const events = this.historyOf(inst.instance_id);
    const scheduledBy = new Map<number, HistoryEvent>();
    for (const e of events) {
      if (e.EventType === HistoryEventType.TaskScheduled || e.EventType === HistoryEventType.SubOrchestrationInstanceCreated) {
        scheduledBy.set(e.EventId, e);
      }
    }
    const drop = new Set<HistoryEvent>();
    const rerun = new Set<number>();
    const groupOfAttempt = new Map<number, number>();
    for (const [gid, g] of Object.entries(runtime.groups)) for (const a of g.attemptIds) groupOfAttempt.set(a, Number(gid));
    for (const [gid, g] of Object.entries(runtime.groups)) {
      if (g.finalTimerId === undefined) continue;
      const last = g.attemptIds[g.attemptIds.length - 1];
      for (const e of events) {
        if (e.TaskScheduledId === last && isFailure(e)) drop.add(e);
        if (e.EventType === HistoryEventType.TimerCreated && e.EventId === g.finalTimerId) drop.add(e);
        if (e.EventType === HistoryEventType.TimerFired && e.TimerId === g.finalTimerId) drop.add(e);
      }
      // The SDK numbers the final retry timer while processing the failure; without it the counter is one lower.
      if (runtime.nextSeq === g.finalTimerId + 1) runtime.nextSeq = g.finalTimerId;
      delete runtime.tasks[g.finalTimerId];
      g.finalTimerId = undefined;
      runtime.tasks[last] = { kind: 'attempt', group: Number(gid) };
      rerun.add(last);
    }
    for (const e of events) {
      if (isFailure(e) && e.TaskScheduledId !== undefined && !groupOfAttempt.has(e.TaskScheduledId)) {
        drop.add(e);
        rerun.add(e.TaskScheduledId);
      }
      if (e.EventType === HistoryEventType.ExecutionCompleted) drop.add(e);
    }
    const kept = events.filter((e) => !drop.has(e));
    kept.push({ ...historyEvent(HistoryEventType.GenericEvent, now, { Input: toJsonText(`rewound: ${reason ?? ''}`) }), IsPlayed: true });
    const activities: NewActivity[] = [];
    const childRewinds: InstanceRow[] = [];
    const messages: NewMessage[] = [];
    for (const taskId of rerun) {
      const s = scheduledBy.get(taskId);
      if (!s) continue;
      if (s.EventType === HistoryEventType.TaskScheduled) {
        activities.push({
          instance_id: inst.instance_id,
          execution_id: inst.execution_id,
          task_id: taskId,
          name: s.Name as string,
          input: s.Input ?? null,
          created_at: now,
        });
      } else {
        const child = store.getInstance(s.InstanceId as string);
        if (child && child.status === 'Failed') childRewinds.push(child);
        else {
          const executionId = randomUUID();
          const row = newInstanceRow(s.InstanceId as string, s.Name as string, executionId, s.Input ?? null, now);
          row.parent_instance_id = inst.instance_id;
          row.parent_execution_id = inst.execution_id;
          row.parent_task_id = taskId;
          childRewinds.push(row);
          messages.push(startMessage(row.instance_id, executionId, row.name, row.input, now, inst.instance_id, taskId));
        }
      }
    }
    messages.push({
      instance_id: inst.instance_id,
      execution_id: null,
      kind: 'wake',
      task_id: null,
      payload: JSON.stringify({ reason }),
      visible_at: now,
      created_at: now,
    });
    const updated: InstanceRow = {
      ...inst,
      status: 'Running',
      output: null,
      failure: null,
      completed_at: null,
      updated_at: now,
      runtime: JSON.stringify(runtime),
    };
    const activityIds: number[] = [];
    store.transaction(() => {
      store.clearHistory(inst.instance_id);
      store.appendHistory(inst.instance_id, 0, kept.map((e) => JSON.stringify(e)));
      store.putInstance(updated);
      for (const c of childRewinds) {
        if (c.status !== 'Pending') continue;
        store.purgeInstance(c.instance_id);
        store.putInstance(c);
      }
      for (const m of messages) store.insertMessage(m);
      for (const a of activities) activityIds.push(store.insertActivity(a));
    });
    this.forgetHistory(inst.instance_id);
    for (const m of messages) this.noteMessage(m, now);
    this.activityQueue.push(...activityIds);
    for (const c of childRewinds) if (c.status === 'Failed') this.rewindNow(c, reason);
  }

  /** 404 unknown, 412 still active, else deletes everything about the instance. */
  async purge(id: string): Promise<number> {
    return this.withInstance(id, () => {
      const inst = this.db.getInstance(id);
      if (!inst) throw new ClientRequestError(404, `No instance with ID '${id}' found.`);
      if (!isTerminal(inst.status)) {
        throw new ClientRequestError(
          412,
          `Only orchestrations in a terminal state can be purged, but the orchestration with instance ID ${id} has status ${inst.status}`,
        );
      }
      return this.purgeNow(id) ? 1 : 0;
    });
  }

  /**
   * Purges finished instances matching the filter; returns how many. Each is checked against the
   * whole filter again when its turn comes: meanwhile it may have been started again (the monitor
   * sweeper does), and even finished, as a new instance that the filter's times leave out.
   */
  async purgeWhere(q: InstanceQuery): Promise<number> {
    const ids = this.db.terminalInstanceIds(q);
    let n = 0;
    for (const id of ids) {
      n += await this.withInstance(id, () => (this.db.terminalInstanceMatches(id, q) && this.purgeNow(id) ? 1 : 0));
    }
    return n;
  }

  // ------------------------------------------------------------------ HTTP surface

  /** The JSON the durableClient input binding carries (what df.getClient reads). */
  clientBindingData(): Record<string, unknown> {
    const base = this.options.baseUrl.replace(/\/+$/, '');
    const webhooks = `${base}/runtime/webhooks/durabletask`;
    const query = `taskHub=${encodeURIComponent(this.hubName)}&connection=Storage`;
    const instance = `${webhooks}/instances/INSTANCEID`;
    return {
      taskHubName: this.hubName,
      creationUrls: {
        createNewInstancePostUri: `${webhooks}/orchestrators/{functionName}[/{instanceId}]?${query}`,
        createAndWaitOnNewInstancePostUri: `${webhooks}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${query}`,
      },
      managementUrls: {
        id: 'INSTANCEID',
        statusQueryGetUri: `${instance}?${query}`,
        sendEventPostUri: `${instance}/raiseEvent/{eventName}?${query}`,
        terminatePostUri: `${instance}/terminate?reason={text}&${query}`,
        rewindPostUri: `${instance}/rewind?reason={text}&${query}`,
        purgeHistoryDeleteUri: `${instance}?${query}`,
        restartPostUri: `${instance}/restart?${query}`,
        suspendPostUri: `${instance}/suspend?reason={text}&${query}`,
        resumePostUri: `${instance}/resume?reason={text}&${query}`,
      },
      baseUrl: webhooks,
      requiredQueryStringParameters: query,
      rpcBaseUrl: this.options.rpcBaseUrl ?? `${base}/durabletask/`,
      httpBaseUrl: webhooks,
      maxGrpcMessageSizeInBytes: 0,
      grpcHttpClientTimeout: '00:01:40',
    };
  }

  /** The path prefixes handleHttp serves, for a server that passes requests on to it. */
  httpPrefixes(): string[] {
    return clientApiPrefixes(this.usesVirtualClock);
  }

  /** Serves /durabletask/ (rpcBaseUrl), /runtime/webhooks/durabletask/ and, on a virtual clock, /admin/durable/. */
  handleHttp(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean> {
    return handleClientRequest(this, req, res, pathname);
  }

  get usesVirtualClock(): boolean {
    return this.clock instanceof VirtualClock;
  }

  /** Figures for benchmarks and tests. */
  storeCounts(): { instances: number; history: number; messages: number; activities: number } {
    return this.db.counts();
  }
}

function isFailure(e: HistoryEvent): boolean {
  return e.EventType === HistoryEventType.TaskFailed || e.EventType === HistoryEventType.SubOrchestrationInstanceFailed;
}
