/**
 * SQLite persistence of the task hub (better-sqlite3, WAL): instances, their current execution's
 * history, the inbox of each instance (events, task results, timers as delayed messages, control
 * requests) and the activity work queue. Every state change of an episode or an activity result is
 * one transaction, so a kill -9 at any point leaves either the old or the new state.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

export type RuntimeStatus =
  | 'Pending'
  | 'Running'
  | 'Completed'
  | 'ContinuedAsNew'
  | 'Failed'
  | 'Canceled'
  | 'Terminated'
  | 'Suspended';

export const TERMINAL_STATUSES: readonly RuntimeStatus[] = ['Completed', 'Failed', 'Terminated', 'Canceled'];
export const isTerminal = (s: RuntimeStatus): boolean => TERMINAL_STATUSES.includes(s);
/** The same, as a condition on the instances table. */
const TERMINAL_STATUS_SQL = `status IN (${TERMINAL_STATUSES.map((s) => `'${s}'`).join(',')})`;

export interface InstanceRow {
  instance_id: string;
  name: string;
  execution_id: string;
  status: RuntimeStatus;
  /** JSON text of the input; null when started without one. */
  input: string | null;
  output: string | null;
  custom_status: string | null;
  /** JSON FailureDetails when Failed. */
  failure: string | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
  parent_instance_id: string | null;
  parent_execution_id: string | null;
  parent_task_id: number | null;
  /** JSON of the engine's bookkeeping for the current execution (see episode.ts ExecutionRuntime). */
  runtime: string;
}

/**
 * Inbox message kinds. `start` begins an execution; `event` is a raised external event (bound to
 * no execution, so it survives continue-as-new); `task` is a task result or a fired timer (bound to
 * the execution that scheduled it); the rest are management requests handled between episodes.
 */
export type MessageKind = 'start' | 'event' | 'task' | 'terminate' | 'suspend' | 'resume' | 'wake';

export interface MessageRow {
  id: number;
  instance_id: string;
  execution_id: string | null;
  kind: MessageKind;
  task_id: number | null;
  /** JSON of the history event this message becomes, or of the request's fields. */
  payload: string;
  visible_at: number;
  created_at: number;
}

export interface ActivityRow {
  id: number;
  instance_id: string;
  execution_id: string;
  task_id: number;
  name: string;
  /** JSON text of the activity input. */
  input: string | null;
  created_at: number;
}

export interface InstanceQuery {
  runtimeStatus?: RuntimeStatus[];
  createdTimeFrom?: number;
  createdTimeTo?: number;
  instanceIdPrefix?: string;
}

export interface ListPage {
  rows: InstanceRow[];
  continuationToken?: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS instances (
  instance_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  execution_id TEXT NOT NULL,
  status TEXT NOT NULL,
  input TEXT,
  output TEXT,
  custom_status TEXT,
  failure TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  completed_at INTEGER,
  parent_instance_id TEXT,
  parent_execution_id TEXT,
  parent_task_id INTEGER,
  runtime TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_at, instance_id);
CREATE INDEX IF NOT EXISTS instances_completed ON instances(completed_at) WHERE completed_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS history (
  instance_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  event TEXT NOT NULL,
  PRIMARY KEY (instance_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  instance_id TEXT NOT NULL,
  execution_id TEXT,
  kind TEXT NOT NULL,
  task_id INTEGER,
  payload TEXT NOT NULL,
  visible_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_instance ON messages(instance_id, id);
CREATE INDEX IF NOT EXISTS messages_visible ON messages(visible_at);
CREATE TABLE IF NOT EXISTS activities (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  instance_id TEXT NOT NULL,
  execution_id TEXT NOT NULL,
  task_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  input TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_instance ON activities(instance_id);
CREATE TABLE IF NOT EXISTS virtual_clock (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  now INTEGER NOT NULL
);
`;

/** WAL size (4 KB pages) at which a commit checkpoints itself: only when the checkpoint thread lags far behind. */
const BACKSTOP_CHECKPOINT_PAGES = 40_000;
/** After the WAL restarts, its file is cut back to this size. */
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
const CHECKPOINT_INTERVAL_MS = 100;

/**
 * The checkpoint thread: its own connection runs a PASSIVE checkpoint every CHECKPOINT_INTERVAL_MS
 * (it never waits for, nor blocks, the writer). Once the WAL is fully copied, the next commit
 * starts it over from the beginning. Ends on any message. It does not keep the process alive
 * while the store is open; close() waits for it to end.
 */
const CHECKPOINTER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('synchronous = NORMAL');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or closing: the next round tries again.
  }
}, workerData.intervalMs);
parentPort.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

interface Checkpointer {
  worker: Worker;
  /** Settles once the thread has ended, whether it stopped when asked or failed. */
  exited: Promise<void>;
}

function startCheckpointer(file: string): Checkpointer {
  const worker = new Worker(CHECKPOINTER_SOURCE, {
    eval: true,
    workerData: { file, driver: require.resolve('better-sqlite3'), intervalMs: CHECKPOINT_INTERVAL_MS },
    // A few MB: it holds one connection and a timer.
    resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
  });
  worker.unref();
  // A failed checkpoint thread leaves checkpoints to the backstop: the store keeps working.
  worker.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return { worker, exited };
}

export class TaskHubStore {
  readonly db: Database.Database;
  private readonly stmts: ReturnType<TaskHubStore['prepare']>;
  private checkpointer: Checkpointer | undefined;
  /** Settles once close() has ended the checkpoint thread. */
  private closed: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode survives a process crash (kill -9); only an OS crash may lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.stmts = this.prepare();
    // Checkpoints (copying the WAL into the database file, then syncing it) block the thread that
    // runs them for tens of ms, so a thread of their own runs them. Commits here only append to
    // the WAL; this connection checkpoints only if that thread falls far behind.
    this.db.pragma(`wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
    this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    this.checkpointer = startCheckpointer(file);
  }

  private prepare() {
    const db = this.db;
    return {
      getInstance: db.prepare<[string], InstanceRow>('SELECT * FROM instances WHERE instance_id = ?'),
      insertInstance: db.prepare(
        `INSERT OR REPLACE INTO instances (instance_id, name, execution_id, status, input, output, custom_status, failure,
           created_at, updated_at, completed_at, parent_instance_id, parent_execution_id, parent_task_id, runtime)
         VALUES (@instance_id, @name, @execution_id, @status, @input, @output, @custom_status, @failure,
           @created_at, @updated_at, @completed_at, @parent_instance_id, @parent_execution_id, @parent_task_id, @runtime)`,
      ),
      dueMessages: db.prepare<[string, number], MessageRow>(
        'SELECT * FROM messages WHERE instance_id = ? AND visible_at <= ? ORDER BY id',
      ),
      insertMessage: db.prepare(
        `INSERT INTO messages (instance_id, execution_id, kind, task_id, payload, visible_at, created_at)
         VALUES (@instance_id, @execution_id, @kind, @task_id, @payload, @visible_at, @created_at)`,
      ),
      deleteMessage: db.prepare<[number]>('DELETE FROM messages WHERE id = ?'),
      deleteInstanceMessages: db.prepare<[string]>('DELETE FROM messages WHERE instance_id = ?'),
      deleteExecutionTaskMessages: db.prepare<[string, string]>(
        "DELETE FROM messages WHERE instance_id = ? AND execution_id = ? AND kind = 'task'",
      ),
      insertActivity: db.prepare(
        `INSERT INTO activities (instance_id, execution_id, task_id, name, input, created_at)
         VALUES (@instance_id, @execution_id, @task_id, @name, @input, @created_at)`,
      ),
      getActivity: db.prepare<[number], ActivityRow>('SELECT * FROM activities WHERE id = ?'),
      deleteActivity: db.prepare<[number]>('DELETE FROM activities WHERE id = ?'),
      deleteInstanceActivities: db.prepare<[string]>('DELETE FROM activities WHERE instance_id = ?'),
      allActivityIds: db.prepare<[], { id: number }>('SELECT id FROM activities ORDER BY id'),
      history: db.prepare<[string], { event: string }>('SELECT event FROM history WHERE instance_id = ? ORDER BY idx'),
      historyCount: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM history WHERE instance_id = ?'),
      appendHistory: db.prepare<[string, number, string]>('INSERT INTO history (instance_id, idx, event) VALUES (?, ?, ?)'),
      clearHistory: db.prepare<[string]>('DELETE FROM history WHERE instance_id = ?'),
      deleteInstance: db.prepare<[string]>('DELETE FROM instances WHERE instance_id = ?'),
      readyInstances: db.prepare<[number], { instance_id: string }>(
        'SELECT instance_id FROM messages WHERE visible_at <= ? GROUP BY instance_id ORDER BY MIN(id)',
      ),
      dueBetween: db.prepare<[number, number], { instance_id: string }>(
        'SELECT DISTINCT instance_id FROM messages WHERE visible_at > ? AND visible_at <= ?',
      ),
      nextVisibleAfter: db.prepare<[number], { t: number | null }>(
        'SELECT MIN(visible_at) AS t FROM messages WHERE visible_at > ?',
      ),
      virtualTime: db.prepare<[], { now: number }>('SELECT now FROM virtual_clock WHERE id = 0'),
      saveVirtualTime: db.prepare<[number]>('INSERT OR REPLACE INTO virtual_clock (id, now) VALUES (0, ?)'),
      forgetVirtualTime: db.prepare<[]>('DELETE FROM virtual_clock'),
    };
  }

  /**
   * Closes the store's connection, then ends the checkpoint thread; resolves once that thread has
   * closed its own connection (the last one to close folds the WAL into the database file) and
   * exited. Until then the thread counts as running work: the process does not end under it. A
   * second call while the first waits resolves with the first.
   */
  close(): Promise<void> {
    // The store's connection closes first, so the thread's is the last and folds the WAL: closed
    // at the same moment, each could find the other still open and leave the WAL for the next open.
    if (this.db.open) this.db.close();
    const checkpointer = this.checkpointer;
    this.checkpointer = undefined;
    if (checkpointer) {
      checkpointer.worker.ref();
      checkpointer.worker.postMessage('stop');
      this.closed = checkpointer.exited;
    }
    return this.closed;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  getInstance(id: string): InstanceRow | undefined {
    return this.stmts.getInstance.get(id);
  }

  putInstance(row: InstanceRow): void {
    this.stmts.insertInstance.run(row);
  }

  dueMessages(id: string, now: number): MessageRow[] {
    return this.stmts.dueMessages.all(id, now);
  }

  insertMessage(m: Omit<MessageRow, 'id'>): number {
    return Number(this.stmts.insertMessage.run(m).lastInsertRowid);
  }

  deleteMessage(id: number): void {
    this.stmts.deleteMessage.run(id);
  }

  /** Drops results and timers still addressed to an execution that has ended. */
  deleteExecutionTaskMessages(instanceId: string, executionId: string): void {
    this.stmts.deleteExecutionTaskMessages.run(instanceId, executionId);
  }

  insertActivity(a: Omit<ActivityRow, 'id'>): number {
    return Number(this.stmts.insertActivity.run(a).lastInsertRowid);
  }

  getActivity(id: number): ActivityRow | undefined {
    return this.stmts.getActivity.get(id);
  }

  deleteActivity(id: number): boolean {
    return this.stmts.deleteActivity.run(id).changes > 0;
  }

  deleteInstanceActivities(instanceId: string): void {
    this.stmts.deleteInstanceActivities.run(instanceId);
  }

  activityIds(): number[] {
    return this.stmts.allActivityIds.all().map((r) => r.id);
  }

  history(id: string): string[] {
    return this.stmts.history.all(id).map((r) => r.event);
  }

  historyLength(id: string): number {
    return this.stmts.historyCount.get(id)?.n ?? 0;
  }

  appendHistory(id: string, startIndex: number, events: string[]): void {
    events.forEach((e, i) => this.stmts.appendHistory.run(id, startIndex + i, e));
  }

  clearHistory(id: string): void {
    this.stmts.clearHistory.run(id);
  }

  /** Removes every trace of an instance (purge). */
  purgeInstance(id: string): boolean {
    this.stmts.clearHistory.run(id);
    this.stmts.deleteInstanceMessages.run(id);
    this.stmts.deleteInstanceActivities.run(id);
    return this.stmts.deleteInstance.run(id).changes > 0;
  }

  readyInstances(now: number): string[] {
    return this.stmts.readyInstances.all(now).map((r) => r.instance_id);
  }

  instancesDueBetween(after: number, upTo: number): string[] {
    return this.stmts.dueBetween.all(after, upTo).map((r) => r.instance_id);
  }

  nextVisibleAfter(now: number): number | undefined {
    return this.stmts.nextVisibleAfter.get(now)?.t ?? undefined;
  }

  /** Where a virtual clock on this hub stood when it last moved; undefined on a real clock's hub. */
  virtualTime(): number | undefined {
    return this.stmts.virtualTime.get()?.now;
  }

  saveVirtualTime(ms: number): void {
    this.stmts.saveVirtualTime.run(ms);
  }

  /** Drops the kept virtual time: the hub is run on the real clock. */
  forgetVirtualTime(): void {
    this.stmts.forgetVirtualTime.run();
  }

  private where(q: InstanceQuery): { sql: string; args: unknown[] } {
    const parts: string[] = [];
    const args: unknown[] = [];
    if (q.runtimeStatus && q.runtimeStatus.length > 0) {
      parts.push(`status IN (${q.runtimeStatus.map(() => '?').join(',')})`);
      args.push(...q.runtimeStatus);
    }
    if (q.createdTimeFrom !== undefined) {
      parts.push('created_at >= ?');
      args.push(q.createdTimeFrom);
    }
    if (q.createdTimeTo !== undefined) {
      parts.push('created_at <= ?');
      args.push(q.createdTimeTo);
    }
    if (q.instanceIdPrefix) {
      // A range instead of LIKE: prefixes may contain % or _.
      parts.push('instance_id >= ? AND instance_id < ?');
      args.push(q.instanceIdPrefix, q.instanceIdPrefix + '\uffff');
    }
    return { sql: parts.length ? parts.join(' AND ') : '1=1', args };
  }

  /** One page ordered by creation time then id; the token is the position after the page's last row. */
  listInstances(q: InstanceQuery, pageSize: number, continuationToken?: string): ListPage {
    const w = this.where(q);
    let sql = `SELECT * FROM instances WHERE ${w.sql}`;
    const args = [...w.args];
    if (continuationToken) {
      const [createdAt, id] = decodeToken(continuationToken);
      sql += ' AND (created_at > ? OR (created_at = ? AND instance_id > ?))';
      args.push(createdAt, createdAt, id);
    }
    sql += ' ORDER BY created_at, instance_id LIMIT ?';
    args.push(pageSize + 1);
    const rows = this.db.prepare(sql).all(...args) as InstanceRow[];
    if (rows.length <= pageSize) return { rows };
    rows.length = pageSize;
    const last = rows[rows.length - 1];
    return { rows, continuationToken: encodeToken(last.created_at, last.instance_id) };
  }

  /** Ids of terminal instances matching the filter (purge by filter, retention). */
  terminalInstanceIds(q: InstanceQuery, completedBefore?: number): string[] {
    const w = this.where(q);
    let sql = `SELECT instance_id FROM instances WHERE ${w.sql} AND ${TERMINAL_STATUS_SQL}`;
    const args = [...w.args];
    if (completedBefore !== undefined) {
      sql += ' AND completed_at IS NOT NULL AND completed_at < ?';
      args.push(completedBefore);
    }
    return (this.db.prepare(sql).all(...args) as { instance_id: string }[]).map((r) => r.instance_id);
  }

  /** Whether the instance is terminal and matches the filter now (a purge by filter checks again under the instance's lock). */
  terminalInstanceMatches(id: string, q: InstanceQuery): boolean {
    const w = this.where(q);
    const sql = `SELECT 1 FROM instances WHERE ${w.sql} AND ${TERMINAL_STATUS_SQL} AND instance_id = ?`;
    return this.db.prepare(sql).get(...w.args, id) !== undefined;
  }

  counts(): { instances: number; history: number; messages: number; activities: number } {
    const n = (t: string): number => (this.db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
    return { instances: n('instances'), history: n('history'), messages: n('messages'), activities: n('activities') };
  }
}

function encodeToken(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

function decodeToken(token: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // fall through
  }
  return [Number.MAX_SAFE_INTEGER, ''];
}
