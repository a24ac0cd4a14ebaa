/**
 * What still waits in a consumer's subscription, read through `@azure/service-bus` with a peek:
 * nothing is locked or received. A peek of a subscription shows its active, locked (being
 * delivered) and deferred messages, and may show expired ones until Service Bus cleans them up
 * (Service Bus docs, "Message browsing"); dead-lettered ones are in its dead-letter queue.
 */
import Long from 'long';
import { SUBSCRIPTIONS, type ServiceName } from '../topology';
import { serviceBusCall, withSubscriptionReceiver, type ServiceBusCall } from './clients';

/**
 * When the oldest message still in the service's subscription was enqueued (the broker's clock);
 * undefined when the subscription holds none. Its dead-letter queue is not looked at.
 */
export async function oldestWaitingMessage(service: ServiceName, call: ServiceBusCall = serviceBusCall): Promise<Date | undefined> {
  return withSubscriptionReceiver(call, SUBSCRIPTIONS[service], { receiveMode: 'peekLock', skipParsingBodyAsJson: true }, async (receiver) => {
    // From the first sequence number: a receiver's peeks otherwise go on from where its last one stopped.
    const [oldest] = await receiver.peekMessages(1, { fromSequenceNumber: Long.ZERO });
    return oldest?.enqueuedTimeUtc;
  });
}
