/**
 * rhea (under @azure/service-bus) merges the settlements of one turn into ranges and, for a range
 * that starts with two deliveries, takes the first one's outcome for both: a complete and an
 * abandon of consecutive deliveries settled together both become completes. The host's triggers
 * settle through `SettlementOrder`, which keeps the two kinds apart.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver } from '@azure/service-bus';
import { SettlementOrder } from '../../local/functions-host/service-bus-triggers';
import { startServiceBusEmulator, type RunningServiceBusEmulator } from '../../local/servicebus-emulator';
import { testQueue } from './host-process';

let emulator: RunningServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startServiceBusEmulator({ port: 0, topology: { queues: [testQueue('plain'), testQueue('ordered')], topics: [] } });
  client = new ServiceBusClient(emulator.connectionString);
});

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

/** Sends a, b, c, d and receives them on one link, in that order (consecutive delivery ids). */
async function fourDeliveries(queue: string): Promise<{ receiver: ServiceBusReceiver; messages: ServiceBusReceivedMessage[] }> {
  const sender = client.createSender(queue);
  await sender.sendMessages(['a', 'b', 'c', 'd'].map((id) => ({ body: id, messageId: id })));
  await sender.close();
  const receiver = client.createReceiver(queue);
  const messages: ServiceBusReceivedMessage[] = [];
  while (messages.length < 4) messages.push(...(await receiver.receiveMessages(4 - messages.length, { maxWaitTimeInMs: 1000 })));
  expect(messages.map((m) => m.messageId)).toEqual(['a', 'b', 'c', 'd']);
  return { receiver, messages };
}

const left = async (receiver: ServiceBusReceiver) => (await receiver.peekMessages(10)).map((m) => `${m.messageId} ${m.deliveryCount}`);

it('without it, rhea turns an abandon settled right after a complete into a complete (when this fails, rhea was fixed: SettlementOrder can go)', async () => {
  const { receiver, messages } = await fourDeliveries('plain');
  const [a, b, c, d] = messages as [ServiceBusReceivedMessage, ServiceBusReceivedMessage, ServiceBusReceivedMessage, ServiceBusReceivedMessage];
  await Promise.all([receiver.completeMessage(a), receiver.abandonMessage(b), receiver.abandonMessage(c), receiver.completeMessage(d)]);
  // b was abandoned, but went out as a complete with a: it is gone.
  expect(await left(receiver)).toEqual(['c 1']);
  await receiver.close();
});

it('with it, each message gets the outcome it was settled with, in the same turn', async () => {
  const { receiver, messages } = await fourDeliveries('ordered');
  const [a, b, c, d] = messages as [ServiceBusReceivedMessage, ServiceBusReceivedMessage, ServiceBusReceivedMessage, ServiceBusReceivedMessage];
  const order = new SettlementOrder();
  await Promise.all([
    order.run('complete', () => receiver.completeMessage(a)),
    order.run('abandon', () => receiver.abandonMessage(b)),
    order.run('abandon', () => receiver.abandonMessage(c)),
    order.run('complete', () => receiver.completeMessage(d)),
  ]);
  expect(await left(receiver)).toEqual(['b 1', 'c 1']);
  await receiver.close();
});

it('lets settlements of one kind go out together and runs the other kind once they are answered', async () => {
  const order = new SettlementOrder();
  const events: string[] = [];
  const answer: Record<string, () => void> = {};
  const settle = (kind: string, id: string) =>
    order.run(kind, () => {
      events.push(`start ${id}`);
      return new Promise<void>((resolve) => (answer[id] = () => (events.push(`end ${id}`), resolve())));
    });
  const all = [settle('complete', 'a'), settle('complete', 'b'), settle('abandon', 'c'), settle('complete', 'd')];
  await new Promise((r) => setImmediate(r));
  expect(events).toEqual(['start a', 'start b']);
  answer['a']!();
  await new Promise((r) => setImmediate(r));
  expect(events).toEqual(['start a', 'start b', 'end a']);
  answer['b']!();
  await new Promise((r) => setImmediate(r));
  // c waited for both completes; d, a complete, waits for c.
  expect(events).toEqual(['start a', 'start b', 'end a', 'end b', 'start c']);
  answer['c']!();
  await new Promise((r) => setImmediate(r));
  answer['d']!();
  await Promise.all(all);
  expect(events).toEqual(['start a', 'start b', 'end a', 'end b', 'start c', 'end c', 'start d', 'end d']);
});
