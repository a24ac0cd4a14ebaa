/**
 * A broker outage does not take the host down: receivers report the error, keep retrying, and
 * pick up messages again soon after the broker is back on the same address.
 */
import { ServiceBusClient } from '@azure/service-bus';
import { startServiceBusEmulator, type RunningServiceBusEmulator } from '../../local/servicebus-emulator';
import type { ServiceBusTopology } from '../../src/topology';
import { eventually, startHost, testQueue, type HostUnderTest } from './host-process';

const subscription = (name: string) => ({
  name,
  maxDeliveryCount: 2,
  lockDuration: 'PT30S',
  defaultMessageTimeToLive: 'P1D',
  deadLetteringOnMessageExpiration: false,
  rules: [],
});
const topology: ServiceBusTopology = {
  queues: ['work', 'poison', 'batch', 'raw', 'observed', 'slow', 'manual'].map((name) => testQueue(name)),
  topics: [
    {
      name: 'events',
      requiresDuplicateDetection: false,
      duplicateDetectionHistoryTimeWindow: 'PT10M',
      defaultMessageTimeToLive: 'P1D',
      subscriptions: [subscription('audit'), subscription('flaky')],
    },
  ],
};

describe('Service Bus outage', () => {
  let emulator: RunningServiceBusEmulator | undefined;
  let host: HostUnderTest | undefined;

  afterAll(async () => {
    await host?.stop();
    await emulator?.stop();
  });

  it('keeps the host running and resumes receiving after the broker comes back', async () => {
    emulator = await startServiceBusEmulator({ port: 0, topology });
    const port = emulator.port;
    host = await startHost('servicebus-app', { ServiceBusConnection: emulator.connectionString });
    await new Promise((r) => setTimeout(r, 500));

    await emulator.stop();
    await eventually(async () => (/WARNING Service Bus receiver for workQueue/.test(host!.service.output()) ? true : undefined), 10_000, 'the receiver to report the outage');
    await new Promise((r) => setTimeout(r, 1500));
    // Still serving HTTP while the broker is away.
    expect((await fetch(`${host.url}/admin/host/status`)).status).toBe(200);

    emulator = await startServiceBusEmulator({ port, topology });
    const client = new ServiceBusClient(emulator.connectionString);
    try {
      const sender = client.createSender('work');
      await sender.sendMessages({ body: { after: 'restart' }, messageId: 'r-1' });
      await sender.close();
      const receiver = client.createReceiver('observed', { receiveMode: 'receiveAndDelete' });
      const started = Date.now();
      const [seen] = await eventually(async () => {
        const got = await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 });
        return got.length > 0 ? got : undefined;
      }, 15_000, 'the message sent after the restart');
      await receiver.close();
      expect((seen!.body as { message: unknown }).message).toEqual({ after: 'restart' });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await client.close();
    }
  });
});
