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
  // Copy out of the (possibly large, shared) transfer buffer so it can be collected.
  return {
    header,
    annotations,
    properties,
    applicationProperties,
    propertiesBytes: Buffer.from(propertiesBytes),
    applicationPropertiesBytes: Buffer.from(applicationPropertiesBytes),
    bodyBytes: Buffer.from(bodyBytes),
    size: buf.length,
  };
}

/** The messages in one transfer: one for format 0, each Data section's message for a batch. */
export function messagesInTransfer(payload: Buffer | Record<string, unknown>, format: number | undefined): MessageContent[] {
  if (!Buffer.isBuffer(payload)) {
    // rhea already decoded a format-0 transfer; re-encode it so every path keeps exact sections.
    return [parseMessage(message.encode(payload))];
  }
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

/** The bytes a receiver gets: header with the delivery count, annotations, then the bare message. */
export function encodeForReceiver(content: MessageContent, deliveryCount: number, a: DeliveryAnnotations, ttl?: number): Buffer {
  const w = new types.Writer();
  w.write(
    message
      .header({
        durable: content.header.durable,
        priority: content.header.priority,
        ttl: ttl ?? content.header.ttl,
        delivery_count: deliveryCount,
      })
      .described(),
  );
  const annotations: Record<string, unknown> = { ...content.annotations };
  annotations['x-opt-sequence-number'] = types.wrap_long(a.sequenceNumber);
  annotations['x-opt-enqueue-sequence-number'] = types.wrap_long(a.sequenceNumber);
  annotations['x-opt-enqueued-time'] = types.wrap_timestamp(a.enqueuedTime);
  if (a.lockedUntil !== undefined) annotations['x-opt-locked-until'] = types.wrap_timestamp(a.lockedUntil);
  if (a.deadLetterSource !== undefined) annotations['x-opt-deadletter-source'] = a.deadLetterSource;
  if (a.state !== undefined) annotations['x-opt-message-state'] = types.wrap_int(a.state);
  if (a.scheduledEnqueueTime !== undefined) annotations['x-opt-scheduled-enqueue-time'] = types.wrap_timestamp(a.scheduledEnqueueTime);
  w.write(types.described_nc(types.wrap_ulong(MESSAGE_ANNOTATIONS), types.wrap_symbolic_map(annotations)));
  const head: Buffer = w.toBuffer();
  return Buffer.concat([head, content.propertiesBytes, content.applicationPropertiesBytes, content.bodyBytes]);
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

export function newLockToken(): LockToken {
  const bytes = randomBytes(16);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return { key: lockTokenKey(bytes), bytes, tag: reorderGuidBytes(bytes) };
}

export const amqp = { types, message };
