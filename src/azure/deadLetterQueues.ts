/**
 * A consumer's dead-letter queue read through `@azure/service-bus`: peeked page by page (nothing is
 * locked; bodies only when asked for), and messages taken out by receiving in peek-lock mode from
 * the head, completing the wanted ones, deferring kept ones enqueued long ago (so that a pile of
 * them cannot hide what lies behind), and abandoning the rest (in a dead-letter queue an abandon
 * only puts the message back). A deferred message is taken by its sequence number.
 */
import type { PeekMessagesOptions, ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import Long from 'long';
import type { DeadLetterQueue, PeekedDeadLetter, RemovalLimits, RemovalTarget } from '../support/deadLetterSweep';
import { SUBSCRIPTIONS, type ServiceName } from '../topology';
import { serviceBusCall, withSubscriptionReceiver, type ServiceBusCall } from './clients';

/** The SDK's largest peek per call. */
const PEEK_CHUNK = 100;
const RECEIVE_CHUNK = 50;
/** How long a receive waits for the first message: the queue was just peeked, so they are there. */
const RECEIVE_WAIT_MS = 2_000;

/**
 * The SDK's `omitMessageBody` peek option: implemented and tested against the service (Azure SDK for
 * JS pull request 21002), but kept out of the public types of 7.9.5.
 */
const omitBody = (omit: boolean): PeekMessagesOptions => ({ omitMessageBody: omit }) as PeekMessagesOptions;

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/** Bytes that are UTF-8 text read as that text (how they were most likely sent); other bytes stay bytes. */
function bodyAsArrived(body: unknown): unknown {
  if (!Buffer.isBuffer(body)) return body;
  const asText = body.toString('utf8');
  return Buffer.from(asText, 'utf8').equals(body) ? asText : body;
}

function sequenceOf(message: ServiceBusReceivedMessage): bigint {
  if (!message.sequenceNumber) throw new Error(`dead-lettered message ${String(message.messageId)} has no sequence number`);
  return BigInt(message.sequenceNumber.toString());
}

function peekedDeadLetter(message: ServiceBusReceivedMessage): PeekedDeadLetter {
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
    ...(message.state === 'deferred' ? { deferred: true } : {}),
  };
}

export class ServiceBusDeadLetterQueue implements DeadLetterQueue {
  constructor(
    private readonly service: ServiceName,
    private readonly call: ServiceBusCall = serviceBusCall,
  ) {}

  async peek(from: bigint, max: number, { bodies }: { bodies: boolean }): Promise<PeekedDeadLetter[]> {
    return this.#with(async (receiver) => {
      const out: PeekedDeadLetter[] = [];
      let next = from;
      while (out.length < max) {
        const chunk = await receiver.peekMessages(Math.min(PEEK_CHUNK, max - out.length), {
          fromSequenceNumber: Long.fromString(next.toString()),
          ...omitBody(!bodies),
        });
        if (chunk.length === 0) break;
        for (const message of chunk) out.push(peekedDeadLetter(message));
        next = out.at(-1)!.sequence + 1n;
      }
      return out;
    });
  }

  async remove(targets: RemovalTarget[], { maxLocks, deferEnqueuedBefore }: RemovalLimits): Promise<bigint[]> {
    const removed: bigint[] = [];
    return this.#with(async (receiver) => {
      // Set aside earlier: taken by sequence number, one at a time. One that cannot be taken (gone
      // meanwhile: MessageNotFound, or on Azure a 500 "one or more sequence numbers missing") is left
      // for the next run and holds up nothing else.
      for (const { sequence } of targets.filter((t) => t.deferred)) {
        try {
          const [message] = await receiver.receiveDeferredMessages(Long.fromString(sequence.toString()));
          if (!message) continue;
          await receiver.completeMessage(message);
          removed.push(sequence);
        } catch {
          continue;
        }
      }
      const wanted = new Set(targets.filter((t) => !t.deferred).map((t) => t.sequence));
      // Every message locked and not yet settled: put back at the end, whatever happens meanwhile.
      const held = new Set<ServiceBusReceivedMessage>();
      let locked = 0;
      try {
        while (wanted.size > 0 && locked < maxLocks) {
          const batch = await receiver.receiveMessages(Math.min(RECEIVE_CHUNK, maxLocks - locked), { maxWaitTimeInMs: RECEIVE_WAIT_MS });
          if (batch.length === 0) break;
          locked += batch.length;
          for (const message of batch) held.add(message);
          for (const message of batch) {
            const sequence = sequenceOf(message);
            if (wanted.delete(sequence)) {
              await receiver.completeMessage(message);
              held.delete(message);
              removed.push(sequence);
            } else if (message.enqueuedTimeUtc && message.enqueuedTimeUtc < deferEnqueuedBefore) {
              // Enqueued long ago: set aside, so what comes after it can be reached. It stays in the
              // queue, and a peek still shows it.
              await receiver.deferMessage(message);
              held.delete(message);
            }
          }
        }
      } finally {
        // Put back everything else at once; a lock that cannot be released expires by itself.
        await Promise.all([...held].map((message) => receiver.abandonMessage(message).catch(() => undefined)));
      }
      return removed;
    });
  }

  #with<T>(use: (receiver: ServiceBusReceiver) => Promise<T>): Promise<T> {
    const options = { subQueueType: 'deadLetter', receiveMode: 'peekLock', skipParsingBodyAsJson: true } as const;
    return withSubscriptionReceiver(this.call, SUBSCRIPTIONS[this.service], options, use);
  }
}
