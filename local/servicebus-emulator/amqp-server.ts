/**
 * The AMQP 1.0 side: accepts connections (SASL ANONYMOUS, as the SDK uses with SAS), answers
 * `$cbs` put-token and `$management` requests, and turns attached links into senders to a topic or
 * queue and consumers of a subscription, queue or dead-letter queue.
 *
 * Every handler is guarded: a bad frame or request closes that link or connection with an AMQP
 * error; it never reaches the process.
 */
import * as net from 'net';
import rhea from 'rhea';
import type { Namespace, ResolvedEntity } from './entities';
import { handleManagementRequest } from './management';
import { SettlementError, type Consumer, type MessageQueue, type StoredMessage } from './message-queue';
import { audiencePath, checkSasToken, type SasKey } from './sas';
import { messagesInTransfer, type LockToken } from './wire';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Link = any;
type Delivery = any;
type Connection = any;
const message: any = (rhea as any).message;

const MAX_MESSAGE_SIZE = 256 * 1024;
const MANAGEMENT_SUFFIX = '/$management';
const CBS = '$cbs';
/**
 * Transfers arrive with this format instead of 0 so rhea hands over the bytes undecoded: the
 * broker keeps them as sent, and a malformed message is rejected instead of failing the socket.
 */
const RAW_FORMAT = 0x00ff_fe01;

interface ConnectionState {
  /** Authorized entity path prefixes (lower-case) and when each token expires. */
  tokens: Map<string, number>;
  /** Reply links by link name and by target address (`reply_to` names one of them). */
  replyLinks: Map<string, Link>;
  consumers: Set<LinkConsumer>;
}

function errorOf(condition: string, description: string) {
  return { condition, description };
}

class LinkConsumer implements Consumer {
  readonly receiveAndDelete: boolean;
  /** Deliveries handed to rhea, counted like the link's delivery-count. */
  private sent = 0;
  private drainPending = false;

  constructor(readonly link: Link, readonly queue: MessageQueue) {
    this.receiveAndDelete = link.local.attach.snd_settle_mode === 1;
    // Answer a drain with a flow that consumes the remaining credit, once every queued transfer
    // has gone out (rhea only drains when credit is left, which the SDK may not see as such).
    link._get_drain = () => {
      if (!this.drainPending) return false;
      if (this.sent !== link.delivery_count) {
        // Transfers still queued (peer's session window full): answer once they are out.
        setTimeout(() => this.afterDispatch(), 5).unref();
        return false;
      }
      link.delivery_count += link.credit;
      this.sent = link.delivery_count;
      link.credit = 0;
      link._draining = false;
      this.drainPending = false;
      return true;
    };
  }

  credit(): number {
    const link = this.link;
    if (!link.is_open()) return 0;
    const byCredit = link.delivery_count + link.credit - this.sent;
    return Math.min(byCredit, link.session.outgoing.deliveries.available());
  }

  deliver(_m: StoredMessage, bytes: Buffer, lock: LockToken | undefined): void {
    const d = this.link.send(bytes, lock ? lock.tag : nextTag(), 0);
    this.sent++;
    if (lock) d.lockKey = lock.key;
  }

  afterDispatch(): void {
    const link = this.link;
    if (link._draining && link.is_open()) {
      this.drainPending = true;
      link.issue_flow = true;
      link.connection._register();
    }
  }
}

let tagCounter = 0n;
function nextTag(): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(++tagCounter, 8);
  return b;
}

export interface AmqpServerOptions {
  namespace: Namespace;
  sas: SasKey;
  log: (msg: string) => void;
}

export class AmqpServer {
  /** Settlement answers written in the current turn, per session (see `answer`). */
  private readonly answerTurns = new WeakMap<object, { kind: string; later: (() => void)[] }>();
  readonly container: any;
  private readonly states = new WeakMap<Connection, ConnectionState>();
  private readonly connections = new Set<Connection>();
  private readonly sockets = new Set<net.Socket>();
  private server?: net.Server;

  constructor(private readonly opts: AmqpServerOptions) {
    this.container = (rhea as any).create_container({
      id: 'servicebus-emulator',
      autoaccept: false,
      autosettle: false,
      treat_modified_as_released: false,
    });
    const c = this.container;
    const guard = (name: string, fn: (ctx: any) => void) => (ctx: any) => {
      try {
        fn(ctx);
      } catch (err) {
        this.opts.log(`error handling ${name}: ${err instanceof Error ? err.stack : String(err)}`);
        const link = ctx.sender ?? ctx.receiver;
        try {
          if (link && link.is_open()) link.close(errorOf('amqp:internal-error', `emulator error: ${err instanceof Error ? err.message : String(err)}`));
          else ctx.connection?.close(errorOf('amqp:internal-error', 'emulator error'));
        } catch {
          /* closing is best effort */
        }
      }
    };
    c.on('connection_open', guard('connection_open', (ctx) => {
      const conn = ctx.connection;
      const onTransfer = conn.on_transfer;
      conn.on_transfer = function (frame: any) {
        const p = frame.performative;
        if (!p.message_format) p.message_format = RAW_FORMAT;
        return onTransfer.call(this, frame);
      };
      // rhea writes to the socket after every frame; write once per tick instead (a dispatch round
      // of a hundred transfers becomes one write). rhea encodes frames only when writing and
      // clears the close frame's error right after queueing it, so closing writes at once.
      const output = conn.output;
      let outputScheduled = false;
      conn.output = function () {
        if (!conn.is_open()) return output.call(conn);
        if (outputScheduled) return;
        outputScheduled = true;
        process.nextTick(() => {
          outputScheduled = false;
          output.call(conn);
        });
      };
      this.connections.add(ctx.connection);
      this.states.set(ctx.connection, { tokens: new Map(), replyLinks: new Map(), consumers: new Set() });
    }));
    const dropConnection = (ctx: any) => {
      const conn = ctx.connection;
      const state = this.states.get(conn);
      if (state) for (const consumer of state.consumers) consumer.queue.removeConsumer(consumer);
      this.states.delete(conn);
      this.connections.delete(conn);
    };
    c.on('connection_close', guard('connection_close', dropConnection));
    const dropSession = (ctx: any) => {
      const state = this.states.get(ctx.connection);
      if (!state) return;
      for (const consumer of state.consumers) {
        if (consumer.link.session !== ctx.session) continue;
        consumer.queue.removeConsumer(consumer);
        state.consumers.delete(consumer);
      }
    };
    c.on('session_close', guard('session_close', dropSession));
    c.on('session_error', guard('session_error', dropSession));
    c.on('disconnected', guard('disconnected', dropConnection));
    c.on('connection_error', () => undefined);
    c.on('error', (err: unknown) => this.opts.log(`amqp error: ${err instanceof Error ? err.message : String(err)}`));
    c.on('sender_open', guard('attach', (ctx) => this.onConsumerAttach(ctx.connection, ctx.sender)));
    c.on('receiver_open', guard('attach', (ctx) => this.onProducerAttach(ctx.connection, ctx.receiver)));
    const detach = guard('detach', (ctx) => this.onDetach(ctx.connection, ctx.sender ?? ctx.receiver));
    c.on('sender_close', detach);
    c.on('receiver_close', detach);
    c.on('sender_error', () => undefined);
    c.on('receiver_error', () => undefined);
    c.on('message', guard('transfer', (ctx) => this.onMessage(ctx)));
    const flow = guard('flow', (ctx) => ctx.sender?.consumer?.queue.dispatch());
    c.on('sender_flow', flow);
    c.on('sendable', flow);
    c.on('accepted', guard('disposition', (ctx) => this.onOutcome(ctx, 'accepted')));
    c.on('rejected', guard('disposition', (ctx) => this.onOutcome(ctx, 'rejected')));
    c.on('modified', guard('disposition', (ctx) => this.onOutcome(ctx, 'modified')));
    c.on('released', guard('disposition', (ctx) => this.onOutcome(ctx, 'released')));
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const server: net.Server = this.container.listen({
        port,
        host,
        idle_time_out: 120_000,
        // rhea leaves Nagle on for accepted sockets; with delayed ACKs that stalls every round trip.
        tcp_no_delay: true,
        // Unsettled deliveries a receiver link may have outstanding. rhea frees slots in order, so
        // one long-held lock keeps every later slot; a large bound keeps such a link flowing.
        session_buffer_size: { outgoing: 1 << 16 },
      });
      this.server = server;
      server.once('error', reject);
      server.once('listening', () => {
        server.removeListener('error', reject);
        server.on('error', (err) => this.opts.log(`listener error: ${err.message}`));
        resolve((server.address() as net.AddressInfo).port);
      });
      server.on('connection', (socket: net.Socket) => {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        // A socket error (reset by peer, malformed stream) is that connection's problem only.
        socket.on('error', () => undefined);
      });
    });
  }

  /** Closes every connection (a close frame where the connection is open) and the listener. */
  async close(): Promise<void> {
    const server = this.server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const conn of this.connections) {
      try {
        conn.close({ condition: 'amqp:connection:forced', description: 'The Service Bus emulator is stopping.' });
      } catch {
        /* already gone */
      }
    }
    this.connections.clear();
    await new Promise((resolve) => setImmediate(resolve)); // let the close frames go out
    // With an error: rhea clears a connection's heartbeat timers when its socket errors or ends, not
    // when it is only destroyed, and those timers would keep this process alive for minutes.
    const stopping = new Error('The Service Bus emulator is stopping.');
    for (const socket of this.sockets) socket.destroy(stopping);
    this.sockets.clear();
    await closed;
  }

  // ---- attach ----------------------------------------------------------------------------------

  private state(conn: Connection): ConnectionState {
    let s = this.states.get(conn);
    if (!s) {
      s = { tokens: new Map(), replyLinks: new Map(), consumers: new Set() };
      this.states.set(conn, s);
    }
    return s;
  }

  private mirrorTermini(link: Link): void {
    const remote = link.remote.attach;
    if (remote.source) link.set_source(remote.source);
    if (remote.target) link.set_target(remote.target);
    link.local.attach.snd_settle_mode = remote.snd_settle_mode;
    link.local.attach.rcv_settle_mode = remote.rcv_settle_mode;
    link.local.attach.max_message_size = MAX_MESSAGE_SIZE;
  }

  private authorized(conn: Connection, path: string): boolean {
    const now = Date.now();
    const p = path.toLowerCase();
    for (const [prefix, expires] of this.state(conn).tokens) {
      if (expires <= now) continue;
      if (prefix === '' || p === prefix || p.startsWith(prefix + '/')) return true;
    }
    return false;
  }

  /** Resolves an entity path for a link, or closes the link with the reason. */
  private entityFor(conn: Connection, link: Link, path: string, address = path): ResolvedEntity | undefined {
    const entity = this.opts.namespace.resolve(path);
    if (!entity) {
      link.close(errorOf('amqp:not-found', `The messaging entity '${path}' could not be found.`));
      return undefined;
    }
    if (!this.authorized(conn, address)) {
      link.close(errorOf('amqp:unauthorized-access', `Unauthorized access to '${address}': put a valid token on $cbs first.`));
      return undefined;
    }
    return entity;
  }

  /** The peer wants to receive: a reply link for $cbs/$management, or a consumer. */
  private onConsumerAttach(conn: Connection, link: Link): void {
    this.mirrorTermini(link);
    const address: string = link.remote.attach.source?.address ?? '';
    if (address === CBS || address.endsWith(MANAGEMENT_SUFFIX)) {
      const replies = this.state(conn).replyLinks;
      replies.set(link.name, link);
      const target = link.remote.attach.target?.address;
      if (target) replies.set(target, link);
      return;
    }
    const filter = link.remote.attach.source?.filter;
    if (filter && Object.keys(filter).some((k) => k.startsWith('com.microsoft:session-filter'))) {
      link.close(errorOf('amqp:not-implemented', 'Sessions are not supported by the emulator (no entity in the topology requires them).'));
      return;
    }
    const entity = this.entityFor(conn, link, address);
    if (!entity) return;
    if (entity.kind === 'topic') {
      link.close(errorOf('amqp:not-allowed', `'${entity.path}' is a topic: receive from one of its subscriptions.`));
      return;
    }
    const consumer = new LinkConsumer(link, entity.queue);
    link.consumer = consumer;
    this.state(conn).consumers.add(consumer);
    entity.queue.addConsumer(consumer);
  }

  /** The peer wants to send: $cbs or $management requests, or messages to a topic or queue. */
  private onProducerAttach(conn: Connection, link: Link): void {
    this.mirrorTermini(link);
    const address: string = link.remote.attach.target?.address ?? '';
    if (address === CBS) {
      link.role = { kind: 'cbs' };
      return;
    }
    if (address.endsWith(MANAGEMENT_SUFFIX)) {
      const entity = this.entityFor(conn, link, address.slice(0, -MANAGEMENT_SUFFIX.length), address);
      if (entity) link.role = { kind: 'management', entity };
      return;
    }
    const entity = this.entityFor(conn, link, address);
    if (!entity) return;
    if (entity.kind !== 'topic' && entity.kind !== 'queue') {
      link.close(errorOf('amqp:not-allowed', `Cannot send to '${entity.path}': send to its topic.`));
      return;
    }
    link.role = { kind: 'send', entity };
  }

  private onDetach(conn: Connection, link: Link): void {
    if (!link) return;
    const consumer: LinkConsumer | undefined = link.consumer;
    if (consumer) {
      consumer.queue.removeConsumer(consumer);
      this.states.get(conn)?.consumers.delete(consumer);
    }
    const replies = this.states.get(conn)?.replyLinks;
    if (replies) for (const [k, v] of replies) if (v === link) replies.delete(k);
    if (link.is_open()) link.close();
  }

  // ---- transfers -------------------------------------------------------------------------------

  private onMessage(ctx: any): void {
    const link = ctx.receiver;
    const delivery: Delivery = ctx.delivery;
    const role = link.role;
    if (!role) {
      this.refuse(delivery, 'amqp:not-allowed', 'link is not attached to an entity');
      return;
    }
    if (role.kind === 'send') {
      const size = Buffer.isBuffer(ctx.message) ? ctx.message.length : 0;
      if (size > MAX_MESSAGE_SIZE) {
        this.refuse(delivery, 'amqp:link:message-size-exceeded', `The message (${size} bytes) exceeds the limit of ${MAX_MESSAGE_SIZE} bytes.`);
        return;
      }
      let contents;
      try {
        contents = messagesInTransfer(ctx.message, ctx.format ?? delivery.format);
      } catch (err) {
        this.refuse(delivery, 'amqp:decode-error', `malformed message: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      role.entity.target.send(contents);
      this.answer(delivery, message.accepted());
      return;
    }
    let request;
    try {
      request = Buffer.isBuffer(ctx.message) ? message.decode(ctx.message) : ctx.message;
    } catch (err) {
      this.refuse(delivery, 'amqp:decode-error', `malformed request: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.answer(delivery, message.accepted());
    if (role.kind === 'cbs') this.onPutToken(ctx.connection, request);
    else this.onManagement(ctx.connection, role.entity, request);
  }

  private reply(conn: Connection, request: any, applicationProperties: Record<string, unknown>, body?: unknown): void {
    const to = request.reply_to;
    const link = this.state(conn).replyLinks.get(to);
    if (!link) {
      this.opts.log(`no reply link '${to}' for a request`);
      return;
    }
    link.send({ correlation_id: request.message_id, application_properties: applicationProperties, body });
  }

  private onPutToken(conn: Connection, request: any): void {
    const props = request.application_properties ?? {};
    if (props.operation !== 'put-token') {
      this.reply(conn, request, { 'status-code': 400, 'status-description': `unsupported $cbs operation '${props.operation}'` });
      return;
    }
    const check = checkSasToken(String(request.body ?? ''), this.opts.sas);
    if (!check.ok) {
      this.opts.log(`put-token refused: ${check.reason}`);
      this.reply(conn, request, { 'status-code': 401, 'status-description': `Unauthorized: ${check.reason}` });
      return;
    }
    this.state(conn).tokens.set(audiencePath(check.audience), check.expiresAt);
    this.reply(conn, request, { 'status-code': 202, 'status-description': 'Accepted' });
  }

  private onManagement(conn: Connection, entity: ResolvedEntity, request: any): void {
    const operation = String(request.application_properties?.operation ?? '');
    const r = handleManagementRequest(entity, operation, request.body);
    const props: Record<string, unknown> = { statusCode: r.statusCode };
    if (r.statusDescription) props.statusDescription = r.statusDescription;
    if (r.errorCondition) props.errorCondition = r.errorCondition;
    this.reply(conn, request, props, r.body ?? {});
  }

  // ---- settlement ------------------------------------------------------------------------------

  private onOutcome(ctx: any, outcome: 'accepted' | 'rejected' | 'modified' | 'released'): void {
    const delivery: Delivery = ctx.delivery;
    const consumer: LinkConsumer | undefined = ctx.sender?.consumer;
    const key: string | undefined = delivery.lockKey;
    if (!consumer || !key || delivery.settled || delivery.answering) return;
    const state = delivery.remote_state ?? {};
    let reply;
    try {
      const queue = consumer.queue;
      if (outcome === 'accepted') {
        queue.complete(key);
        reply = message.accepted();
      } else if (outcome === 'released') {
        queue.release(key);
        reply = message.released();
      } else if (outcome === 'modified') {
        const props = state.message_annotations as Record<string, unknown> | undefined;
        if (state.undeliverable_here) queue.defer(key, props);
        else queue.abandon(key, props);
        reply = message.modified({});
      } else {
        const info = (state.error?.info ?? {}) as Record<string, unknown>;
        const { DeadLetterReason, DeadLetterErrorDescription, ...rest } = info;
        queue.deadLetter(key, DeadLetterReason as string | undefined, DeadLetterErrorDescription as string | undefined, rest);
        reply = message.rejected({});
      }
    } catch (err) {
      if (!(err instanceof SettlementError)) throw err;
      reply = message.rejected({ error: errorOf(err.condition, err.message) });
    }
    this.answer(delivery, reply);
  }

  /** Rejects a transfer with an AMQP error, through `answer` like every other answer. */
  private refuse(delivery: Delivery, condition: string, description: string): void {
    this.answer(delivery, message.rejected({ error: errorOf(condition, description) }));
  }

  /**
   * Answers a settlement or a transfer, one kind of answer per session and turn. rhea writes a
   * turn's answers as ranges of consecutive deliveries with one outcome each, and when a range
   * holds only its first delivery it adds the next without comparing outcomes
   * (`write_dispositions`, rhea 3.0.5): a completion and a lock lost next to it would both be
   * answered as completed, a good message sent next to an unreadable one would be refused with it.
   * An answer of another kind than those already written this turn waits for the next turn.
   */
  private answer(delivery: Delivery, reply: any): void {
    const session = delivery.link.session;
    const described = reply.described();
    // The outcome's descriptor and its fields (a rejection's error): what rhea would take from the first.
    const kind = `${JSON.stringify(described.descriptor)} ${JSON.stringify(described.value ?? null)}`;
    let turn = this.answerTurns.get(session);
    if (!turn) {
      turn = { kind, later: [] };
      this.answerTurns.set(session, turn);
      // Runs before rhea writes this turn's dispositions (its own tick is queued by the first
      // update below); what waits goes out in a later turn, after that write.
      process.nextTick(() => {
        const ended = this.answerTurns.get(session);
        this.answerTurns.delete(session);
        if (ended?.later.length) setImmediate(() => ended.later.forEach((send) => send()));
      });
    }
    if (turn.kind !== kind || turn.later.length > 0) {
      delivery.answering = true;
      turn.later.push(() => {
        delivery.answering = false;
        if (!delivery.settled && delivery.link.is_open()) this.answer(delivery, reply);
      });
      return;
    }
    delivery.update(true, described);
    // In receiver-settle-mode second the peer settles silently once it sees our settlement; mark
    // it here so rhea can recycle the slot (its outgoing buffer is bounded).
    delivery.remote_settled = true;
  }
}
