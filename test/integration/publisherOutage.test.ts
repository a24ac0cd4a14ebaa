/**
 * The publisher against a Service Bus that stops answering (the emulator's process stopped with
 * SIGSTOP), through the real @azure/service-bus SDK: what the SDK throws once its retries are used
 * up is read as an outage, so a failed batch is not sent again message by message and every caller
 * hears at once. (Short client timeouts keep the test quick; the app's are 10 s and 3 retries.)
 */
import { RetryMode, ServiceBusClient, type ServiceBusSender } from '@azure/service-bus';
import type { RunningService } from '../../local/service-process';
import { spawnService } from '../../local/service-process';
import { serviceBusConnectionString, serviceBusEmulatorProcess } from '../../local/stack';
import { isServiceUnavailable } from '../../src/azure/clients';
import { ServiceBusEventPublisher } from '../../src/azure/orderEventPublisher';
import { ORDERS_TOPIC } from '../../src/topology';
import { whileStopped } from '../support/processes';

let emulator: RunningService;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await spawnService(serviceBusEmulatorProcess());
  client = new ServiceBusClient(serviceBusConnectionString(emulator.match[1]!), {
    retryOptions: { mode: RetryMode.Fixed, maxRetries: 1, retryDelayInMs: 100, timeoutInMs: 1_000 },
  });
}, 30_000);

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

const message = (n: number) => ({
  messageId: `outage-${n}`,
  body: { n },
  contentType: 'application/json',
  correlationId: `corr-${n}`,
  // Matches no subscription's filter: nothing is left for other suites.
  applicationProperties: { target: 'nobody' },
});

it('tells every caller of a batch at once when Service Bus does not answer, and sends again once it does', async () => {
  const sender = client.createSender(ORDERS_TOPIC);
  const sends: number[] = [];
  const counting = {
    sendMessages: (...args: Parameters<ServiceBusSender['sendMessages']>) => {
      sends.push(Array.isArray(args[0]) ? args[0].length : 1);
      return sender.sendMessages(...args);
    },
  } as ServiceBusSender;
  const publisher = new ServiceBusEventPublisher(() => counting);
  await publisher.publish(message(0));

  const outcomes = await whileStopped(emulator.pid, () => Promise.allSettled([1, 2, 3].map((n) => publisher.publish(message(n)))));
  expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
  const reason = (outcomes[0] as PromiseRejectedResult).reason;
  expect(isServiceUnavailable(reason)).toBe(true);
  // The warm-up, then the one batch: no second round of sends, one per message.
  expect(sends).toEqual([1, 3]);

  await Promise.all([1, 2, 3].map((n) => publisher.publish(message(n))));
}, 60_000);
