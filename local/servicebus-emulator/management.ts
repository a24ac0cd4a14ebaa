/** `<entity>/$management` request/response operations (renew-lock, peek, deferred, schedule, ...). */
import type { ResolvedEntity } from './entities';
import { SettlementError, type MessageQueue } from './message-queue';
import { amqp, lockTokenKey, parseMessage } from './wire';

export interface ManagementResponse {
  statusCode: number;
  statusDescription?: string;
  errorCondition?: string;
  body?: unknown;
}

class RequestError extends Error {
  constructor(readonly statusCode: number, readonly condition: string, message: string) {
    super(message);
  }
}

/** Longs arrive as numbers, 8-byte big-endian buffers, or Long-like objects. */
function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v) && v.length === 8) return Number(v.readBigInt64BE(0));
  if (v && typeof v === 'object' && 'high' in v && 'low' in v) {
    const l = v as { high: number; low: number };
    return l.high * 0x100000000 + (l.low >>> 0);
  }
  const n = Number(v);
  if (!Number.isFinite(n)) throw new RequestError(400, 'amqp:invalid-field', `not a number: ${String(v)}`);
  return n;
}

function list(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (v === undefined || v === null) return [];
  return [v];
}

function lockKeys(body: Record<string, unknown>): string[] {
  return list(body['lock-tokens']).map((t) => {
    if (!Buffer.isBuffer(t) || t.length !== 16) throw new RequestError(400, 'amqp:invalid-field', 'lock-tokens must be uuids');
    return lockTokenKey(t);
  });
}

function receivable(entity: ResolvedEntity): MessageQueue {
  if (entity.kind === 'topic') throw new RequestError(400, 'amqp:not-allowed', `'${entity.path}' is a topic: it cannot be received from`);
  return entity.queue;
}

function settle(queue: MessageQueue, key: string, body: Record<string, unknown>): void {
  const status = String(body['disposition-status'] ?? '');
  const props = (body['properties-to-modify'] ?? undefined) as Record<string, unknown> | undefined;
  switch (status) {
    case 'completed':
      return queue.complete(key);
    case 'abandoned':
      return queue.abandon(key, props);
    case 'defered':
    case 'deferred':
      return queue.defer(key, props);
    case 'suspended':
      return queue.deadLetter(key, body['deadletter-reason'] as string | undefined, body['deadletter-description'] as string | undefined, props);
    default:
      throw new RequestError(400, 'amqp:invalid-field', `unknown disposition-status '${status}'`);
  }
}

function handle(entity: ResolvedEntity, operation: string, body: Record<string, unknown>): ManagementResponse {
  switch (operation) {
    case 'com.microsoft:renew-lock': {
      const queue = receivable(entity);
      const expirations = lockKeys(body).map((k) => new Date(queue.renewLock(k)));
      return { statusCode: 200, body: { expirations } };
    }
    case 'com.microsoft:peek-message': {
      const queue = receivable(entity);
      const from = toNumber(body['from-sequence-number'] ?? 0);
      const count = toNumber(body['message-count'] ?? 1);
      // The SDK's `omitMessageBody`: everything but the body.
      const messages = queue.peek(from, count, body['omit-message-body'] === true).map((message) => ({ message }));
      if (messages.length === 0) return { statusCode: 204, statusDescription: 'No messages' };
      return { statusCode: 200, body: { messages } };
    }
    case 'com.microsoft:receive-by-sequence-number': {
      const queue = receivable(entity);
      const seqs = list(body['sequence-numbers']).map(toNumber);
      const peekLock = toNumber(body['receiver-settle-mode'] ?? 1) === 1;
      const messages = queue.receiveDeferred(seqs, peekLock).map((d) => {
        const entry: Record<string, unknown> = { message: d.bytes };
        if (d.lock) entry['lock-token'] = amqp.types.wrap_uuid(d.lock.bytes);
        return entry;
      });
      return { statusCode: 200, body: { messages } };
    }
    case 'com.microsoft:update-disposition': {
      const queue = receivable(entity);
      for (const key of lockKeys(body)) settle(queue, key, body);
      return { statusCode: 200 };
    }
    case 'com.microsoft:schedule-message': {
      if (entity.kind !== 'topic' && entity.kind !== 'queue') throw new RequestError(400, 'amqp:not-allowed', `cannot send to '${entity.path}'`);
      const items = list(body.messages).map((entry) => {
        const raw = (entry as Record<string, unknown>).message;
        if (!Buffer.isBuffer(raw)) throw new RequestError(400, 'amqp:invalid-field', 'schedule-message entries need a message');
        const content = parseMessage(raw);
        const when = content.annotations['x-opt-scheduled-enqueue-time'];
        const at = when instanceof Date ? when.getTime() : typeof when === 'number' ? when : Date.now();
        return { content, at };
      });
      const seqs = entity.target.schedule(items);
      return { statusCode: 200, body: { 'sequence-numbers': seqs } };
    }
    case 'com.microsoft:cancel-scheduled-message': {
      if (entity.kind !== 'topic' && entity.kind !== 'queue') throw new RequestError(400, 'amqp:not-allowed', `cannot send to '${entity.path}'`);
      entity.target.cancelScheduled(list(body['sequence-numbers']).map(toNumber));
      return { statusCode: 200 };
    }
    default:
      throw new RequestError(501, 'amqp:not-implemented', `operation '${operation}' is not supported by the emulator`);
  }
}

/** Runs one management request; errors become status codes, never exceptions. */
export function handleManagementRequest(entity: ResolvedEntity, operation: string, body: unknown): ManagementResponse {
  try {
    const map = body && typeof body === 'object' && !Buffer.isBuffer(body) ? (body as Record<string, unknown>) : {};
    return handle(entity, operation, map);
  } catch (err) {
    if (err instanceof SettlementError || err instanceof RequestError) {
      const condition = err instanceof SettlementError ? err.condition : err.condition;
      return { statusCode: err.statusCode, statusDescription: err.message, errorCondition: condition };
    }
    return { statusCode: 500, statusDescription: err instanceof Error ? err.message : String(err), errorCondition: 'amqp:internal-error' };
  }
}
