/**
 * One running system per test file, with a Service Bus client on its emulator for tests that put
 * messages on the topic or read dead-letter queues: started before the file's tests, stopped after.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import Long from 'long';
import { startSystem, type RunningSystem } from './system';

export interface SystemWithServiceBus {
  readonly system: RunningSystem;
  readonly serviceBus: ServiceBusClient;
}

/** `env`: app settings for the host on top of the system's own. */
export function systemWithServiceBus(env: Record<string, string> = {}): SystemWithServiceBus {
  const running = {} as { system: RunningSystem; serviceBus: ServiceBusClient };
  beforeAll(async () => {
    running.system = await startSystem({ env });
    running.serviceBus = new ServiceBusClient(running.system.serviceBusConnectionString);
  });
  afterAll(async () => {
    await running.serviceBus?.close();
    await running.system?.stop();
  });
  return running;
}

/**
 * Up to `max` messages of an entity (a dead-letter queue, say), peeked from its head: nothing is
 * taken or locked. From the head every time: without it the SDK goes on after the last message
 * it peeked on that entity.
 */
export async function peekFromHead(serviceBus: ServiceBusClient, entity: string, max = 500): Promise<ServiceBusReceivedMessage[]> {
  const receiver = serviceBus.createReceiver(entity);
  try {
    return await receiver.peekMessages(max, { fromSequenceNumber: Long.ZERO });
  } finally {
    await receiver.close();
  }
}
