/**
 * AMQP message bytes: split what a sender transfers into the parts the broker needs (properties to
 * filter on, the rest kept byte-for-byte), and build what a receiver gets (fresh header and
 * annotations in front of the untouched bare message).
 */
import { randomBytes, randomUUID } from 'crypto';
import rhea from 'rhea';

// rhea's codec is untyped in its typings; these are the few pieces used here.
/* eslint-disable @typescript-eslint/no-explicit-any */
const types: any = (rhea as any).types;
const message: any = (rhea as any).message;

/** The batch message format the SDK uses for `sendMessages([...])` and batches. */
export const BATCH_FORMAT = 0x80013700;

const HEADER = 0x70;
const DELIVERY_ANNOTATIONS = 0x71;
const MESSAGE_ANNOTATIONS = 0x72;
const PROPERTIES = 0x73;
const APPLICATION_PROPERTIES = 0x74;
const DATA = 0x75;

export interface MessageHeader {
  durable?: boolean;
  priority?: number;
  /** Milliseconds. */
  ttl?: number;
}

/** AMQP `properties` section, as rhea decodes it. */
export interface MessageProperties {
  message_id?: unknown;
  user_id?: Buffer;
  to?: string;
  subject?: string;
  reply_to?: string;
  correlation_id?: unknown;
  content_type?: string;
  content_encoding?: string;
  absolute_expiry_time?: Date;
  creation_time?: Date;
  group_id?: string;
  group_sequence?: number;
  reply_to_group_id?: string;
}

/** One message as sent, immutable once stored; fan-out copies share it. */
export interface MessageContent {
  header: MessageHeader;
  /** Message annotations the sender set (e.g. `x-opt-partition-key`, `x-opt-scheduled-enqueue-time`). */
  annotations: Record<string, unknown>;
  properties: MessageProperties;
  applicationProperties: Record<string, unknown> | undefined;
  propertiesBytes: Buffer;
  applicationPropertiesBytes: Buffer;
  /** Body and footer sections, exactly as sent. */
  bodyBytes: Buffer;
  size: number;
}

function descriptorCode(section: any): number | undefined {
  const d = section?.descriptor?.value;
  if (typeof d === 'number') return d;
  if (typeof d === 'string') {
    const names: Record<string, number> = {
      'amqp:header:list': HEADER,
      'amqp:delivery-annotations:map': DELIVERY_ANNOTATIONS,
      'amqp:message-annotations:map': MESSAGE_ANNOTATIONS,
      'amqp:properties:list': PROPERTIES,
      'amqp:application-properties:map': APPLICATION_PROPERTIES,
      'amqp:data:binary': DATA,
    };
    return names[d] ?? 0x77;
  }
  return undefined;
}

/** Splits one encoded AMQP message. Throws on bytes that are not a message. */
export function parseMessage(buf: Buffer): MessageContent {
  const reader = new types.Reader(buf);
  let header: MessageHeader = {};
  let annotations: Record<string, unknown> = {};
  let properties: MessageProperties = {};
  let applicationProperties: Record<string, unknown> | undefined;
  let propertiesBytes: Buffer = Buffer.alloc(0);
  let applicationPropertiesBytes: Buffer = Buffer.alloc(0);
  let bodyStart = -1;
  while (reader.remaining() > 0) {
    const start: number = reader.position;
    const section = reader.read();
    const end: number = reader.position;
    const code = descriptorCode(section);
    if (code === undefined) throw new Error('message section is not a described type');
    if (code >= DATA) {
      if (bodyStart < 0) bodyStart = start;
      continue;
    }
    if (bodyStart >= 0) throw new Error('message section out of order');
    const bytes = buf.subarray(start, end);
    const decoded = message.decode(bytes);
    if (code === HEADER) {
      header = { durable: decoded.durable, priority: decoded.priority, ttl: decoded.ttl };
    } else if (code === MESSAGE_ANNOTATIONS) {
      annotations = decoded.message_annotations ?? {};
    } else if (code === PROPERTIES) {
      properties = decoded;
      propertiesBytes = bytes;
    } else if (code === APPLICATION_PROPERTIES) {
      applicationProperties = decoded.application_properties ?? {};
      applicationPropertiesBytes = bytes;
    }
    // delivery annotations are for the next hop only: dropped.
  }
  if (properties.message_id === undefined || properties.message_id === null) {
    // Service Bus assigns a MessageId when the sender set none (the SDK's lock renewer needs one).
    properties = { ...properties, message_id: randomUUID().replace(/-/g, '') };
    const w = new types.Writer();
    w.write(message.properties(properties).described());
    propertiesBytes = w.toBuffer();
  }
  const bodyBytes = bodyStart >= 0 ? buf.subarray(bodyStart) : Buffer.alloc(0);
  // Sections stay views into the transfer's buffer (copied once per transfer by the caller).
  return { header, annotations, properties, applicationProperties, propertiesBytes, applicationPropertiesBytes, bodyBytes, size: buf.length };
}

/** The messages in one transfer: one for format 0, each Data section's message for a batch. */
export function messagesInTransfer(received: Buffer | Record<string, unknown>, format: number | undefined): MessageContent[] {
  // rhea may hand over a decoded message (format 0); re-encode it so every path keeps exact sections.
  // Otherwise copy once: messages keep views into this buffer, not into rhea's frame buffers.
  const payload = Buffer.isBuffer(received) ? Buffer.from(received) : (message.encode(received) as Buffer);
  if (format === BATCH_FORMAT) {
    const reader = new types.Reader(payload);
    const out: MessageContent[] = [];
    while (reader.remaining() > 0) {
      const section = reader.read();
      if (descriptorCode(section) === DATA) out.push(parseMessage(section.value as Buffer));
    }
    return out;
  }
  return [parseMessage(payload)];
}

/** Replaces application properties (dead-letter reason, properties to modify). */
export function withApplicationProperties(content: MessageContent, changes: Record<string, unknown>): MessageContent {
  const applicationProperties = { ...(content.applicationProperties ?? {}) };
  for (const [k, v] of Object.entries(changes)) if (v !== undefined) applicationProperties[k] = v;
  const w = new types.Writer();
  w.write(types.described_nc(types.wrap_ulong(APPLICATION_PROPERTIES), types.wrap_map(applicationProperties)));
  const applicationPropertiesBytes: Buffer = w.toBuffer();
  return {
    ...content,
    applicationProperties,
    applicationPropertiesBytes,
    size: content.size - content.applicationPropertiesBytes.length + applicationPropertiesBytes.length,
  };
}

export interface DeliveryAnnotations {
  sequenceNumber: number;
  enqueuedTime: number;
  lockedUntil?: number;
  deadLetterSource?: string;
  /** 0 active, 1 deferred, 2 scheduled. */
  state?: number;
  scheduledEnqueueTime?: number;
}

const OWN_ANNOTATIONS = new Set([
  'x-opt-sequence-number',
  'x-opt-enqueue-sequence-number',
  'x-opt-enqueued-time',
  'x-opt-locked-until',
  'x-opt-deadletter-source',
  'x-opt-message-state',
]);

interface EncodedPairs {
  bytes: Buffer;
  /** Keys plus values. */
  count: number;
}

const senderPairsCache = new WeakMap<MessageContent, EncodedPairs>();

/** The sender's own message annotations as encoded map pairs (once per stored message). */
function senderPairs(content: MessageContent): EncodedPairs {
  let cached = senderPairsCache.get(content);
  if (cached) return cached;
  const kept: Record<string, unknown> = {};
  let any = false;
  for (const [k, v] of Object.entries(content.annotations)) {
    if (!OWN_ANNOTATIONS.has(k)) {
      kept[k] = v;
      any = true;
    }
  }
  if (!any) {
    cached = { bytes: Buffer.alloc(0), count: 0 };
  } else {
    const w = new types.Writer();
    w.write(types.wrap_symbolic_map(kept));
    const b: Buffer = w.toBuffer();
    cached = b[0] === 0xc1 ? { bytes: b.subarray(3), count: b[2] } : { bytes: b.subarray(9), count: b.readUInt32BE(5) };
  }
  senderPairsCache.set(content, cached);
  return cached;
}

function symbolBytes(name: string): Buffer {
  return Buffer.concat([Buffer.from([0xa3, name.length]), Buffer.from(name, 'ascii')]);
}
const K_SEQUENCE = symbolBytes('x-opt-sequence-number');
const K_ENQUEUE_SEQUENCE = symbolBytes('x-opt-enqueue-sequence-number');
const K_ENQUEUED = symbolBytes('x-opt-enqueued-time');
const K_LOCKED_UNTIL = symbolBytes('x-opt-locked-until');
const K_DEADLETTER_SOURCE = symbolBytes('x-opt-deadletter-source');
const K_STATE = symbolBytes('x-opt-message-state');
const K_SCHEDULED = symbolBytes('x-opt-scheduled-enqueue-time');

/**
 * The bytes a receiver gets: header with the delivery count, annotations, then the bare message
 * as sent. Hand-encoded into one buffer: this runs once per delivery.
 */
export function encodeForReceiver(content: MessageContent, deliveryCount: number, a: DeliveryAnnotations, ttl?: number): Buffer {
  const h = content.header;
  const timeToLive = ttl ?? h.ttl;
  const hasPriority = h.priority !== undefined && h.priority !== null;
  const hasTtl = timeToLive !== undefined && timeToLive !== null;
  // header: described list8 of durable, priority, ttl, first-acquirer, delivery-count
  const headerFields = 1 + (hasPriority ? 2 : 1) + (hasTtl ? 5 : 1) + 1 + 5;
  const headerLen = 3 + 3 + headerFields;

  const sender = senderPairs(content);
  const source = a.deadLetterSource !== undefined ? Buffer.from(a.deadLetterSource, 'utf8') : undefined;
  let pairsLen = sender.bytes.length;
  let count = sender.count;
  pairsLen += K_SEQUENCE.length + 9 + K_ENQUEUE_SEQUENCE.length + 9 + K_ENQUEUED.length + 9;
  count += 6;
  if (a.lockedUntil !== undefined) {
    pairsLen += K_LOCKED_UNTIL.length + 9;
    count += 2;
  }
  if (source) {
    pairsLen += K_DEADLETTER_SOURCE.length + (source.length <= 255 ? 2 : 5) + source.length;
    count += 2;
  }
  if (a.state !== undefined) {
    pairsLen += K_STATE.length + 5;
    count += 2;
  }
  if (a.scheduledEnqueueTime !== undefined) {
    pairsLen += K_SCHEDULED.length + 9;
    count += 2;
  }
  const annotationsLen = 3 + 1 + 8 + pairsLen;
  const total = headerLen + annotationsLen + content.propertiesBytes.length + content.applicationPropertiesBytes.length + content.bodyBytes.length;
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  out[o++] = 0x00;
  out[o++] = 0x53;
  out[o++] = 0x70;
  out[o++] = 0xc0;
  out[o++] = headerFields;
  out[o++] = 5;
  out[o++] = h.durable ? 0x41 : 0x42;
  if (hasPriority) {
    out[o++] = 0x50;
    out[o++] = h.priority! & 0xff;
  } else out[o++] = 0x40;
  if (hasTtl) {
    out[o++] = 0x70;
    o = out.writeUInt32BE(Math.min(Math.max(0, Math.floor(timeToLive!)), 0xffffffff), o);
  } else out[o++] = 0x40;
  out[o++] = 0x42;
  out[o++] = 0x70;
  o = out.writeUInt32BE(deliveryCount >>> 0, o);

  out[o++] = 0x00;
  out[o++] = 0x53;
  out[o++] = 0x72;
  out[o++] = 0xd1;
  o = out.writeUInt32BE(4 + pairsLen, o);
  o = out.writeUInt32BE(count, o);
  o += sender.bytes.copy(out, o);
  const long = (key: Buffer, code: number, v: number) => {
    o += key.copy(out, o);
    out[o++] = code;
    o = out.writeBigInt64BE(BigInt(Math.trunc(v)), o);
  };
  long(K_SEQUENCE, 0x81, a.sequenceNumber);
  long(K_ENQUEUE_SEQUENCE, 0x81, a.sequenceNumber);
  long(K_ENQUEUED, 0x83, a.enqueuedTime);
  if (a.lockedUntil !== undefined) long(K_LOCKED_UNTIL, 0x83, a.lockedUntil);
  if (source) {
    o += K_DEADLETTER_SOURCE.copy(out, o);
    if (source.length <= 255) {
      out[o++] = 0xa1;
      out[o++] = source.length;
    } else {
      out[o++] = 0xb1;
      o = out.writeUInt32BE(source.length, o);
    }
    o += source.copy(out, o);
  }
  if (a.state !== undefined) {
    o += K_STATE.copy(out, o);
    out[o++] = 0x71;
    o = out.writeInt32BE(a.state, o);
  }
  if (a.scheduledEnqueueTime !== undefined) long(K_SCHEDULED, 0x83, a.scheduledEnqueueTime);
  o += content.propertiesBytes.copy(out, o);
  o += content.applicationPropertiesBytes.copy(out, o);
  o += content.bodyBytes.copy(out, o);
  return out;
}

/**
 * A lock token: its 16 bytes as the management API carries them, its GUID string, and the
 * delivery tag (the SDK reads a link delivery's tag with .NET GUID byte order, so the tag is the
 * byte-swapped form).
 */
export interface LockToken {
  key: string;
  bytes: Buffer;
  tag: Buffer;
}

/** .NET GUID byte order swap (an involution). */
export function reorderGuidBytes(b: Buffer): Buffer {
  return Buffer.from([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8, 16)]);
}

export function lockTokenKey(bytes: Buffer): string {
  return bytes.toString('hex');
}

// Lock tokens only need to be unique: a random per-process prefix and a counter (no CSPRNG call
// per delivery).
const lockPrefix = randomBytes(8);
let lockCounter = 0n;

export function newLockToken(): LockToken {
  const bytes = Buffer.allocUnsafe(16);
  lockPrefix.copy(bytes, 0);
  bytes.writeBigUInt64BE(++lockCounter, 8);
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant
  return { key: lockTokenKey(bytes), bytes, tag: reorderGuidBytes(bytes) };
}

export const amqp = { types, message };
