/** Publishes to the `orders` topic through the process's one long-lived sender. */
import type { ServiceBusSender } from '@azure/service-bus';
import type { EventPublisher, OutgoingMessage } from '../services/ports';
import { ordersTopicSender } from './clients';

export class ServiceBusEventPublisher implements EventPublisher {
  constructor(private readonly sender: () => ServiceBusSender = ordersTopicSender) {}

  async publish(message: OutgoingMessage): Promise<void> {
    await this.sender().sendMessages({
      messageId: message.messageId,
      body: message.body,
      contentType: message.contentType,
      correlationId: message.correlationId,
      ...(message.subject !== undefined ? { subject: message.subject } : {}),
      applicationProperties: message.applicationProperties,
    });
  }
}
