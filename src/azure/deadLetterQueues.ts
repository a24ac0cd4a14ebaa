/**
 * A consumer's dead-letter queue read through `@azure/service-bus`: peeked page by page (nothing is
 * locked), and messages taken out by receiving in peek-lock mode, completing the wanted ones and
 * abandoning the rest (in a dead-letter queue an abandon only puts the message back).
 */
import type { ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import Long from 'long';
import type { DeadLetterQueue, PeekedDeadLetter } from '../support/deadLetterSweep';
import { ORDERS_TOPIC, SUBSCRIPTIONS, type ServiceName } from '../topology';
import { serviceBusClient } from './clients';

/** The SDK's largest peek per call. */
const PEEK_CHUNK = 100;
const RECEIVE_CHUNK = 50;
/** How long a receive waits for the first message: the queue was just peeked, so they are there. */
const RECEIVE_WAIT_MS = 2_000;

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/** Bytes that are UTF-8 text read as that text (how they were most likely sent); other bytes stay bytes. */
export function bodyAsArrived(body: unknown): unknown {
  if (!Buffer.isBuffer(body)) return body;
  const asText = body.toString('utf8');
  return Buffer.from(asText, 'utf8').equals(body) ? asText : body;
}

function sequenceOf(message: ServiceBusReceivedMessage): bigint {
  if (!message.sequenceNumber) throw new Error(`dead-lettered message ${String(message.messageId)} has no sequence number`);
  return BigInt(message.sequenceNumber.toString());
}

export function peekedDeadLetter(message: ServiceBusReceivedMessage): PeekedDeadLetter {
  const props = message.applicationProperties ?? {};
  return {
    sequence: sequenceOf(message),
    body: bodyAsArrived(message.body),
    messageId: message.messageId === undefined ? undefined : String(message.messageId),
    deliveryCount: message.deliveryCount,
    deadLetterReason: text(message.deadLetterReason),
    deadLetterDescription: text(message.deadLetterErrorDescription),
    orderId: text(props.order_id),
    correlationId: text(props.correlation_id) ?? text(message.correlationId),
  };
}

export class ServiceBusDeadLetterQueue implements DeadLetterQueue {
  constructor(
    private readonly service: ServiceName,
    private readonly client: ServiceBusClient = serviceBusClient(),
  ) {}

  async peek(from: bigint, max: number): Promise<PeekedDeadLetter[]> {
    return this.#with(async (receiver) => {
      const out: PeekedDeadLetter[] = [];
      let next = from;
      while (out.length < max) {
        const chunk = await receiver.peekMessages(Math.min(PEEK_CHUNK, max - out.length), { fromSequenceNumber: Long.fromString(next.toString()) });
        if (chunk.length === 0) break;
        for (const message of chunk) out.push(peekedDeadLetter(message));
        next = out.at(-1)!.sequence + 1n;
      }
      return out;
    });
  }

  async remove(sequences: bigint[], maxLocks: number): Promise<bigint[]> {
    const wanted = new Set(sequences);
    const removed: bigint[] = [];
    return this.#with(async (receiver) => {
      const held: ServiceBusReceivedMessage[] = [];
      try {
        while (wanted.size > 0 && held.length + removed.length < maxLocks) {
          const batch = await receiver.receiveMessages(Math.min(RECEIVE_CHUNK, maxLocks - held.length - removed.length), { maxWaitTimeInMs: RECEIVE_WAIT_MS });
          if (batch.length === 0) break;
          for (const message of batch) {
            const sequence = sequenceOf(message);
            if (wanted.delete(sequence)) {
              await receiver.completeMessage(message);
              removed.push(sequence);
            } else {
              held.push(message);
            }
          }
        }
      } finally {
        // Put back everything else at once; a lock that cannot be released expires by itself.
        await Promise.all(held.map((message) => receiver.abandonMessage(message).catch(() => undefined)));
      }
      return removed;
    });
  }

  async #with<T>(use: (receiver: ServiceBusReceiver) => Promise<T>): Promise<T> {
    const receiver = this.client.createReceiver(ORDERS_TOPIC, SUBSCRIPTIONS[this.service], {
      subQueueType: 'deadLetter',
      receiveMode: 'peekLock',
      skipParsingBodyAsJson: true,
    });
    try {
      return await use(receiver);
    } finally {
      await receiver.close().catch(() => undefined);
    }
  }
}
