/**
 * One running system per test file, with a Service Bus client on its emulator for tests that put
 * messages on the topic or read dead-letter queues: started before the file's tests, stopped after.
 */
import { ServiceBusClient } from '@azure/service-bus';
import { startSystem, type RunningSystem } from './system';

export interface SystemWithServiceBus {
  readonly system: RunningSystem;
  readonly serviceBus: ServiceBusClient;
}

export function systemWithServiceBus(): SystemWithServiceBus {
  const running = {} as { system: RunningSystem; serviceBus: ServiceBusClient };
  beforeAll(async () => {
    running.system = await startSystem();
    running.serviceBus = new ServiceBusClient(running.system.serviceBusConnectionString);
  });
  afterAll(async () => {
    await running.serviceBus?.close();
    await running.system?.stop();
  });
  return running;
}
