/**
 * Service Bus triggers and output bindings through the real @azure/service-bus SDK, so the same
 * host runs against the local emulator or a real namespace. Behaves like the Functions Service Bus
 * extension: peek-lock receivers, complete on success, abandon on failure (Service Bus counts the
 * delivery and dead-letters after maxDeliveryCount), lock renewal, cardinality one and many, and
 * the PascalCase trigger metadata the library camel-cases.
 */
import {
  RetryMode,
  ServiceBusClient,
  type ServiceBusClientOptions,
  type ServiceBusMessage,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
  type ServiceBusSender,
} from '@azure/service-bus';
import type { ConcurrencyManager } from './concurrency';
import type { RegisteredFunction } from './core-module';
import type { RpcBindingInfo, RpcInvocationResponse, RpcTypedData } from './core-types';
import type { HostJson } from './function-app';
import type { HostLog } from './host-log';
import { type FunctionInvoker, HostConfigurationError } from './invoker';
import { MissingSettingError, resolveSettingExpression } from './settings';
import { parseTimeSpan } from './timer-triggers';

const DEFAULT_CONNECTION = 'AzureWebJobsServiceBus';
const DEAD_LETTER_SUFFIX = /\/\$DeadLetterQueue$/i;

export interface ServiceBusSettings {
  maxConcurrentCalls: number;
  autoCompleteMessages: boolean;
  maxAutoLockRenewalDurationMs: number;
  maxMessageBatchSize: number;
  maxWaitTimeMs: number;
}

export function serviceBusSettings(hostJson: HostJson): ServiceBusSettings {
  const sb = hostJson.extensions?.serviceBus ?? {};
  return {
    maxConcurrentCalls: sb.maxConcurrentCalls ?? 16,
    autoCompleteMessages: sb.autoCompleteMessages ?? true,
    maxAutoLockRenewalDurationMs: parseTimeSpan(sb.maxAutoLockRenewalDuration ?? '00:05:00') ?? 300_000,
    maxMessageBatchSize: sb.maxMessageBatchSize ?? 1000,
    maxWaitTimeMs: parseTimeSpan(sb.maxWaitTime ?? '00:00:01') ?? 1000,
  };
}

function isServiceBusTrigger(fn: RegisteredFunction): boolean {
  return fn.trigger.type?.toLowerCase() === 'servicebustrigger';
}

function isServiceBusOutput(b: RpcBindingInfo): boolean {
  return b.direction === 'out' && b.type?.toLowerCase() === 'servicebus';
}

/**
 * The Functions extension's (.NET SDK) retry defaults: exponential from 0.8 s. The JS SDK's own
 * default waits a fixed 30 s, which leaves triggers deaf for half a minute after a broker restart.
 */
const CLIENT_OPTIONS: ServiceBusClientOptions = {
  retryOptions: { mode: RetryMode.Exponential, retryDelayInMs: 800, maxRetryDelayInMs: 10_000, maxRetries: 3 },
};

function connectionName(connection: unknown): string {
  return typeof connection === 'string' && connection !== '' ? connection : DEFAULT_CONNECTION;
}

/** Creates one SDK client per connection setting: a connection string, else managed identity. */
export class ServiceBusConnections {
  readonly #clients = new Map<string, ServiceBusClient>();

  get(connection: unknown): ServiceBusClient {
    const name = connectionName(connection);
    let client = this.#clients.get(name);
    if (client) return client;
    const connectionString = process.env[name];
    const namespace = process.env[`${name}__fullyQualifiedNamespace`];
    if (connectionString) client = new ServiceBusClient(connectionString, CLIENT_OPTIONS);
    else if (namespace) {
      // Loaded only for an identity-based connection: it is the heaviest module the host could
      // load (MSAL), and connection strings never need it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const identity = require('@azure/identity') as typeof import('@azure/identity');
      client = new ServiceBusClient(namespace, new identity.DefaultAzureCredential(), CLIENT_OPTIONS);
    } else {
      throw new MissingSettingError(
        `Service Bus connection "${name}": set ${name} (a connection string) or ${name}__fullyQualifiedNamespace`,
      );
    }
    this.#clients.set(name, client);
    return client;
  }

  /** Drops the connection's client (closed in the background): the next `get` builds a new one. */
  renew(connection: unknown): void {
    const name = connectionName(connection);
    const client = this.#clients.get(name);
    this.#clients.delete(name);
    void withinTime(client?.close(), CLOSE_WAIT_MS);
  }

  async close(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.allSettled(clients.map((c) => withinTime(c.close(), CLOSE_WAIT_MS)));
  }
}

interface EntityPath {
  topic?: string;
  subscription?: string;
  queue?: string;
  deadLetter: boolean;
  display: string;
}

export function triggerEntity(binding: RpcBindingInfo): EntityPath {
  const read = (key: string): string | undefined =>
    typeof binding[key] === 'string' ? resolveSettingExpression(binding[key] as string) : undefined;
  const topicName = read('topicName');
  const subscriptionName = read('subscriptionName');
  const queueName = read('queueName');
  if (topicName && subscriptionName) {
    const deadLetter = DEAD_LETTER_SUFFIX.test(subscriptionName);
    const subscription = subscriptionName.replace(DEAD_LETTER_SUFFIX, '');
    return {
      topic: topicName,
      subscription,
      deadLetter,
      display: `${topicName}/Subscriptions/${subscription}${deadLetter ? '/$DeadLetterQueue' : ''}`,
    };
  }
  if (queueName) {
    const deadLetter = DEAD_LETTER_SUFFIX.test(queueName);
    const path = queueName.replace(DEAD_LETTER_SUFFIX, '');
    const m = /^([^/]+)\/Subscriptions\/([^/]+)$/i.exec(path);
    if (m) return { topic: m[1], subscription: m[2], deadLetter, display: queueName };
    return { queue: path, deadLetter, display: queueName };
  }
  throw new HostConfigurationError('a Service Bus trigger needs queueName, or topicName and subscriptionName');
}

function bodyBytes(body: unknown): Buffer | undefined {
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

/**
 * The message body as the trigger input: a string (the library parses JSON), or bytes for
 * `dataType: 'binary'`. Bytes that are not UTF-8 are a string too, each bad sequence a U+FFFD: a
 * trigger without a dataType binds to string on Azure, and the extension's MessageToStringConverter
 * falls back to `Body.ToString()` (azure-functions-nodejs-worker#684: binary bodies arrive as
 * strings with replacement characters).
 */
export function bodyTypedData(body: unknown, binary: boolean): RpcTypedData {
  const bytes = bodyBytes(body);
  if (bytes) return binary ? { bytes } : { string: bytes.toString('utf8') };
  if (typeof body === 'string') return binary ? { bytes: Buffer.from(body) } : { string: body };
  if (typeof body === 'number') return Number.isInteger(body) ? { int: body } : { double: body };
  if (body === undefined || body === null) return { string: '' };
  return { json: JSON.stringify(body) };
}

function bodyText(body: unknown): string {
  const bytes = bodyBytes(body);
  if (bytes) return bytes.toString('utf8');
  if (typeof body === 'string') return body;
  return JSON.stringify(body ?? '');
}

function iso(d: Date | undefined): string | undefined {
  return d instanceof Date && !Number.isNaN(d.getTime()) ? d.toISOString() : undefined;
}

function longToNumber(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return v;
  const asLong = v as { toNumber?: () => number };
  return typeof asLong.toNumber === 'function' ? asLong.toNumber() : Number(v);
}

/** Trigger metadata of one message, keyed as the real extension keys it (PascalCase). */
export function messageMetadata(m: ServiceBusReceivedMessage): Record<string, unknown> {
  const props = { ...(m.applicationProperties ?? {}) } as Record<string, unknown>;
  for (const [k, v] of Object.entries(props)) if (v instanceof Date) props[k] = v.toISOString();
  return {
    DeliveryCount: (m.deliveryCount ?? 0) + 1,
    DeadLetterSource: m.deadLetterSource,
    DeadLetterReason: m.deadLetterReason,
    DeadLetterErrorDescription: m.deadLetterErrorDescription,
    LockToken: m.lockToken,
    ExpiresAtUtc: iso(m.expiresAtUtc),
    EnqueuedTimeUtc: iso(m.enqueuedTimeUtc),
    LockedUntilUtc: iso(m.lockedUntilUtc),
    MessageId: m.messageId === undefined ? undefined : String(m.messageId),
    ContentType: m.contentType,
    ReplyTo: m.replyTo,
    SequenceNumber: longToNumber(m.sequenceNumber),
    EnqueuedSequenceNumber: longToNumber(m.enqueuedSequenceNumber),
    To: m.to,
    Label: m.subject,
    Subject: m.subject,
    CorrelationId: m.correlationId === undefined ? undefined : String(m.correlationId),
    SessionId: m.sessionId,
    ReplyToSessionId: m.replyToSessionId,
    PartitionKey: m.partitionKey,
    TimeToLive: m.timeToLive,
    ApplicationProperties: props,
    UserProperties: props,
  };
}

const JSON_NUMBER = /^[ \t\n\r]*-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?[ \t\n\r]*$/;
const JSON_LITERAL = /^[ \t\n\r]*(?:true|false|null)[ \t\n\r]*$/;

/**
 * True when JSON.parse would surely throw on this string. The library converts `string` typed
 * data with a try/catch JSON.parse; a string it cannot parse (lock tokens, dates, ids) costs it a
 * thrown exception. Those are sent as `json` holding the string, which converts to the same value.
 */
export function cannotBeJson(text: string): boolean {
  const first = /[^ \t\n\r]/.exec(text)?.[0];
  if (first === undefined) return true;
  if (first === '{' || first === '[' || first === '"') return false;
  if (first === '-' || (first >= '0' && first <= '9')) return !JSON_NUMBER.test(text);
  if (first === 't' || first === 'f' || first === 'n') return !JSON_LITERAL.test(text);
  return true;
}

function valueTypedData(v: unknown): RpcTypedData | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return cannotBeJson(v) ? { json: JSON.stringify(v) } : { string: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { int: v } : { double: v };
  return { json: JSON.stringify(v) };
}

export function singleMetadata(m: ServiceBusReceivedMessage): Record<string, RpcTypedData> {
  const out: Record<string, RpcTypedData> = {};
  for (const [k, v] of Object.entries(messageMetadata(m))) {
    const t = valueTypedData(v);
    if (t) out[k] = t;
  }
  return out;
}

/** Cardinality many: every key gets an `Array` suffix and holds one entry per message. */
export function batchMetadata(messages: ServiceBusReceivedMessage[]): Record<string, RpcTypedData> {
  const each = messages.map(messageMetadata);
  const keys = new Set(each.flatMap((e) => Object.keys(e)));
  const out: Record<string, RpcTypedData> = {};
  for (const k of keys) {
    const values = each.map((e) => e[k] ?? null);
    if (values.every((v) => v === null)) continue;
    out[`${k}Array`] = { json: JSON.stringify(values) };
  }
  return out;
}

function batchBody(messages: ServiceBusReceivedMessage[], binary: boolean): RpcTypedData {
  if (binary) return { collectionBytes: { bytes: messages.map((m) => bodyBytes(m.body) ?? Buffer.from(bodyText(m.body))) } };
  return { collectionString: { string: messages.map((m) => bodyText(m.body)) } };
}

/** An output binding value as messages: an array sends one message per item. */
export function outputMessages(data: RpcTypedData): ServiceBusMessage[] {
  let values: unknown[];
  if (data.json !== undefined && data.json !== null) {
    const parsed: unknown = JSON.parse(data.json);
    values = Array.isArray(parsed) ? parsed : [parsed];
  } else if (data.string !== undefined && data.string !== null) values = [data.string];
  else if (data.bytes) values = [Buffer.from(data.bytes)];
  else if (data.int !== undefined && data.int !== null) values = [String(data.int)];
  else if (data.double !== undefined && data.double !== null) values = [String(data.double)];
  else if (data.collectionString?.string) values = data.collectionString.string;
  else if (data.collectionBytes?.bytes) values = data.collectionBytes.bytes.map((b) => Buffer.from(b));
  else values = [];
  return values.map((v): ServiceBusMessage => {
    if (Buffer.isBuffer(v)) return { body: v };
    if (typeof v === 'string') return { body: Buffer.from(v, 'utf8') };
    return { body: Buffer.from(JSON.stringify(v), 'utf8'), contentType: 'application/json' };
  });
}

/** Sends what a function put in its serviceBus output bindings (return value or extraOutputs). */
export class ServiceBusOutputs {
  readonly #senders = new Map<string, ServiceBusSender>();

  constructor(private readonly connections: ServiceBusConnections) {}

  static hasOutputs(fn: RegisteredFunction): boolean {
    return Object.values(fn.metadata.bindings).some(isServiceBusOutput);
  }

  async send(fn: RegisteredFunction, response: RpcInvocationResponse): Promise<void> {
    for (const [name, binding] of Object.entries(fn.metadata.bindings)) {
      if (!isServiceBusOutput(binding)) continue;
      const data = name === '$return' ? response.returnValue : response.outputData?.find((o) => o.name === name)?.data;
      if (!data) continue;
      const messages = outputMessages(data);
      if (messages.length === 0) continue;
      await this.#sender(binding).sendMessages(messages);
    }
  }

  #sender(binding: RpcBindingInfo): ServiceBusSender {
    const entityRaw = (binding['queueName'] ?? binding['topicName']) as string | undefined;
    if (!entityRaw) throw new HostConfigurationError('a serviceBus output binding needs queueName or topicName');
    const entity = resolveSettingExpression(entityRaw);
    const connection = binding['connection'];
    const key = `${String(connection)}|${entity}`;
    let sender = this.#senders.get(key);
    if (!sender) {
      sender = this.connections.get(connection).createSender(entity);
      this.#senders.set(key, sender);
    }
    return sender;
  }

  async close(): Promise<void> {
    const senders = [...this.#senders.values()];
    this.#senders.clear();
    await Promise.allSettled(senders.map((s) => withinTime(s.close(), CLOSE_WAIT_MS)));
  }
}

/**
 * Keeps settlements of different kinds on one receiver out of the same event-loop turn.
 *
 * rhea (the AMQP library under @azure/service-bus; 3.0.5 here) writes the settlements a link
 * made in one turn as ranges of consecutive delivery ids, one outcome per range, and when a range
 * holds only its first delivery it adds the next one without comparing their outcomes
 * (`write_dispositions` in rhea/lib/session.js). A complete of delivery n and an abandon of
 * delivery n + 1 in the same turn then both reach Service Bus as completes: a failed message is
 * removed instead of coming back. Invocations that end together do that, and a fault-injection run
 * lost about one poison message in ten to it. The SDK's settle call resolves once Service Bus has
 * answered, so its disposition is on the wire by then: a settlement of another kind waits until
 * the ones in flight are answered; settlements of the same kind still go out together.
 */
export class SettlementOrder {
  /** Runs of one kind, in arrival order; the first is settling, the others wait their turn. */
  readonly #runs: { kind: string; unfinished: number; begin: () => void; begun: Promise<void> }[] = [];

  async run<T>(kind: string, settle: () => Promise<T>): Promise<T> {
    // Join the newest run when it is of this kind; otherwise queue a new one behind it, so a
    // stream of completes cannot keep an abandon waiting.
    let run = this.#runs.at(-1);
    if (!run || run.kind !== kind) {
      let begin = (): void => undefined;
      const begun = new Promise<void>((resolve) => (begin = resolve));
      run = { kind, unfinished: 0, begin, begun };
      this.#runs.push(run);
      if (this.#runs.length === 1) run.begin();
    }
    run.unfinished++;
    await run.begun;
    try {
      return await settle();
    } finally {
      if (--run.unfinished === 0) {
        this.#runs.shift();
        this.#runs[0]?.begin();
      }
    }
  }
}

interface TriggerListener {
  fn: RegisteredFunction;
  entity: EntityPath;
  receiver?: ServiceBusReceiver;
  close?: () => Promise<void>;
  inFlight: Set<Promise<void>>;
  /** The SDK retries a failing link quickly; say the same thing at most every REPEAT_LOG_MS. */
  lastError?: { text: string; at: number; repeats: number };
  /** When the receiver's errors began, none received since (see RENEW_AFTER_MS). */
  failingSince?: number;
}

/**
 * How long a connection's receivers may keep failing, with nothing received, before its client is
 * built afresh. The SDK (7.9, over rhea) can leave a connection unusable for minutes after the
 * broker took connections and did not answer: with the local broker stalled for 300 s, the
 * triggers received nothing for 4 more minutes after it answered again. The extension's receivers
 * on Azure recover on their own; renewing the client brings the local ones back as soon.
 */
export const RENEW_AFTER_MS = 60_000;

const REPEAT_LOG_MS = 30_000;
const CLOSE_WAIT_MS = 2000;

/** Waits for `work` but no longer than `ms`; its outcome does not matter to the caller. */
export async function withinTime(work: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.catch(() => undefined),
    new Promise((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export class ServiceBusTriggers {
  readonly #listeners: TriggerListener[] = [];
  /**
   * One order of settlements per receiver, the link they go out on: a settlement a replaced
   * receiver never gets answered (#renew) must not hold up its successor's.
   */
  readonly #settlements = new WeakMap<ServiceBusReceiver, SettlementOrder>();
  #stopping = false;

  constructor(
    functions: RegisteredFunction[],
    private readonly invoker: FunctionInvoker,
    private readonly connections: ServiceBusConnections,
    private readonly settings: ServiceBusSettings,
    private readonly log: HostLog,
    /** Dynamic concurrency; without it each trigger runs up to maxConcurrentCalls at once. */
    private readonly concurrency?: ConcurrencyManager,
  ) {
    for (const fn of functions) {
      if (!isServiceBusTrigger(fn)) continue;
      if (fn.trigger['isSessionsEnabled'] === true) {
        throw new HostConfigurationError(`${fn.name}: session-enabled Service Bus triggers are not supported by this host`);
      }
      this.#listeners.push({ fn, entity: triggerEntity(fn.trigger), inFlight: new Set() });
    }
  }

  describe(name: string): string | undefined {
    const l = this.#listeners.find((x) => x.fn.name === name);
    if (!l) return undefined;
    const many = l.fn.trigger['cardinality'] === 'many';
    return `serviceBusTrigger ${l.entity.display}${many ? ' (cardinality many)' : ''}`;
  }

  start(): void {
    for (const listener of this.#listeners) this.#open(listener);
  }

  #open(listener: TriggerListener): void {
    const client = this.connections.get(listener.fn.trigger['connection']);
    const options = {
      receiveMode: 'peekLock' as const,
      subQueueType: listener.entity.deadLetter ? ('deadLetter' as const) : undefined,
      // The host renews locks itself, only while the function runs (see #renewLocksWhile).
      maxAutoLockRenewalDurationInMs: 0,
      skipParsingBodyAsJson: true,
    };
    const receiver = listener.entity.queue
      ? client.createReceiver(listener.entity.queue, options)
      : client.createReceiver(listener.entity.topic!, listener.entity.subscription!, options);
    listener.receiver = receiver;
    if (listener.fn.trigger['cardinality'] === 'many') this.#startBatchLoop(listener, receiver);
    else this.#subscribe(listener, receiver);
  }

  #track(listener: TriggerListener, work: Promise<void>): Promise<void> {
    listener.inFlight.add(work);
    return work.finally(() => listener.inFlight.delete(work));
  }

  #subscribe(listener: TriggerListener, receiver: ServiceBusReceiver): void {
    const { fn } = listener;
    const binary = fn.trigger['dataType'] === 'binary';
    const subscription = receiver.subscribe(
      {
        processMessage: (message) => {
          listener.failingSince = undefined;
          return this.#track(
            listener,
            this.#process(listener, receiver, [message], {
              inputData: [{ name: fn.triggerName, data: bodyTypedData(message.body, binary) }],
              triggerMetadata: singleMetadata(message),
            }),
          );
        },
        processError: async (args) => {
          // A receiver replaced by a renewal (#renew) may still report while it closes.
          if (this.#stopping || listener.receiver !== receiver) return;
          this.#receiverError(listener, args.error);
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: this.settings.maxConcurrentCalls },
    );
    listener.close = () => subscription.close();
  }

  #startBatchLoop(listener: TriggerListener, receiver: ServiceBusReceiver): void {
    const { fn } = listener;
    const binary = fn.trigger['dataType'] === 'binary';
    const abort = new AbortController();
    let backoffMs = 500;
    const loop = async (): Promise<void> => {
      while (!this.#stopping) {
        let messages: ServiceBusReceivedMessage[];
        try {
          messages = await receiver.receiveMessages(this.settings.maxMessageBatchSize, {
            maxWaitTimeInMs: this.settings.maxWaitTimeMs,
            abortSignal: abort.signal,
          });
          backoffMs = 500;
          listener.failingSince = undefined;
        } catch (err) {
          if (this.#stopping || listener.receiver !== receiver) return;
          this.#receiverError(listener, err);
          await new Promise((r) => setTimeout(r, backoffMs));
          backoffMs = Math.min(backoffMs * 2, 30_000);
          continue;
        }
        if (messages.length === 0) continue;
        await this.#track(
          listener,
          this.#process(listener, receiver, messages, {
            inputData: [{ name: fn.triggerName, data: batchBody(messages, binary) }],
            triggerMetadata: batchMetadata(messages),
          }),
        );
      }
    };
    const running = loop();
    listener.close = async () => {
      abort.abort();
      await running;
    };
  }

  /**
   * Keeps the messages' locks while `work` runs, up to maxAutoLockRenewalDuration, and stops when
   * it ends, like the extension: a message the function leaves unsettled (autoCompleteMessages
   * off) is redelivered when its lock runs out. The SDK's own renewal would go on after the
   * function returned, so it is off.
   */
  async #renewLocksWhile<T>(
    fn: RegisteredFunction,
    receiver: ServiceBusReceiver,
    messages: ServiceBusReceivedMessage[],
    work: () => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + this.settings.maxAutoLockRenewalDurationMs;
    const timers = new Set<NodeJS.Timeout>();
    let running = true;
    const schedule = (message: ServiceBusReceivedMessage): void => {
      const lockedUntil = message.lockedUntilUtc?.getTime();
      if (!running || lockedUntil === undefined) return;
      // Renew halfway through what is left of the lock, so even a 1 s lock is kept.
      const delay = Math.max(50, (lockedUntil - Date.now()) / 2);
      if (Date.now() + delay > deadline) return;
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!running) return;
        receiver.renewMessageLock(message).then(
          () => schedule(message),
          (err: unknown) => {
            if (running) this.log.host('warning', `${fn.name}: could not renew the lock of message ${String(message.messageId)}: ${errorMessage(err)}`);
          },
        );
      }, delay);
      timers.add(timer);
    };
    if (this.settings.maxAutoLockRenewalDurationMs > 0) messages.forEach(schedule);
    try {
      return await work();
    } finally {
      running = false;
      timers.forEach(clearTimeout);
    }
  }

  #receiverError(listener: TriggerListener, err: unknown): void {
    const text = errorMessage(err);
    const now = Date.now();
    listener.failingSince ??= now;
    if (now - listener.failingSince >= RENEW_AFTER_MS) this.#renew(listener.fn.trigger['connection']);
    const last = listener.lastError;
    if (last && last.text === text && now - last.at < REPEAT_LOG_MS) {
      last.repeats++;
      return;
    }
    const repeated = last && last.repeats > 0 ? ` (previous error repeated ${last.repeats} more times)` : '';
    listener.lastError = { text, at: now, repeats: 0 };
    this.log.host('warning', `Service Bus receiver for ${listener.fn.name} (${listener.entity.display}): ${text}${repeated}; retrying`);
  }

  async #process(
    listener: TriggerListener,
    receiver: ServiceBusReceiver,
    messages: ServiceBusReceivedMessage[],
    request: { inputData: { name: string; data: RpcTypedData }[]; triggerMetadata: Record<string, RpcTypedData> },
  ): Promise<void> {
    const { fn } = listener;
    let ok = true;
    const slots = this.concurrency?.forFunction(fn.name, this.settings.maxConcurrentCalls);
    try {
      // Locks are renewed while a message waits for a slot, too.
      await this.#renewLocksWhile(fn, receiver, messages, async () => {
        const release = await slots?.acquire();
        try {
          return await this.invoker.invoke(fn, {
            ...request,
            reason: `New ServiceBus message detected on '${listener.entity.display}'`,
          });
        } finally {
          release?.();
        }
      });
    } catch {
      ok = false;
    }
    // The trigger's own autoCompleteMessages wins over host.json, as in the extension.
    const own = fn.trigger['autoCompleteMessages'];
    if (!(typeof own === 'boolean' ? own : this.settings.autoCompleteMessages)) return;
    for (const message of messages) {
      try {
        if (ok) await this.#settlementsOf(receiver).run('complete', () => receiver.completeMessage(message));
        else await this.#settlementsOf(receiver).run('abandon', () => receiver.abandonMessage(message));
      } catch (err) {
        this.log.host(
          'warning',
          `${fn.name}: could not ${ok ? 'complete' : 'abandon'} message ${String(message.messageId)}: ${errorMessage(err)}`,
        );
      }
    }
  }

  #settlementsOf(receiver: ServiceBusReceiver): SettlementOrder {
    let order = this.#settlements.get(receiver);
    if (!order) this.#settlements.set(receiver, (order = new SettlementOrder()));
    return order;
  }

  /**
   * Builds the connection's client afresh and opens its triggers' receivers on it. Invocations
   * still running settle through the old receivers; if those are gone, their messages come back
   * when their locks run out, as after any lost connection.
   */
  #renew(connection: unknown): void {
    if (this.#stopping) return;
    const name = connectionName(connection);
    const listeners = this.#listeners.filter((l) => connectionName(l.fn.trigger['connection']) === name);
    this.log.host('warning', `Service Bus connection ${name}: nothing received for ${RENEW_AFTER_MS / 1000} s while its receivers kept failing; connecting afresh`);
    for (const listener of listeners) {
      const { close, receiver } = listener;
      listener.close = undefined;
      listener.receiver = undefined;
      listener.failingSince = undefined;
      void withinTime(close?.(), CLOSE_WAIT_MS).then(() => withinTime(receiver?.close(), CLOSE_WAIT_MS));
    }
    this.connections.renew(name);
    for (const listener of listeners) this.#open(listener);
  }

  /** Stops receiving, lets running invocations settle their messages (bounded), closes receivers. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    // A receiver still retrying a missing entity never finishes closing: do not wait on it forever.
    await Promise.allSettled(this.#listeners.map((l) => withinTime(l.close?.(), CLOSE_WAIT_MS)));
    const inFlight = this.#listeners.flatMap((l) => [...l.inFlight]);
    await withinTime(Promise.allSettled(inFlight), graceMs);
    await Promise.allSettled(this.#listeners.map((l) => withinTime(l.receiver?.close(), CLOSE_WAIT_MS)));
  }
}
