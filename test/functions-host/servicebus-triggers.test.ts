/**
 * Service Bus triggers and output bindings through the built host against the Service Bus
 * emulator, with the real @azure/service-bus SDK on both sides: completion on success,
 * redelivery then dead-lettering on failure, dead-letter queue triggers, trigger metadata as the
 * library exposes it, cardinality many, and text/bytes bodies.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver } from '@azure/service-bus';
import { startServiceBusEmulator, type RunningServiceBusEmulator } from '../../local/servicebus-emulator';
import type { ServiceBusTopology } from '../../src/topology';
import { eventually, startHost, testQueue, type HostUnderTest, logShows } from './host-process';


const subscription = (name: string, maxDeliveryCount: number) => ({
  name,
  maxDeliveryCount,
  lockDuration: 'PT30S',
  defaultMessageTimeToLive: 'P1D',
  deadLetteringOnMessageExpiration: false,
  rules: [],
});

const topology: ServiceBusTopology = {
  queues: [
    testQueue('work'),
    testQueue('poison', 3),
    testQueue('batch'),
    testQueue('raw'),
    testQueue('observed'),
    { ...testQueue('slow'), lockDuration: 'PT1S' },
    { ...testQueue('manual'), lockDuration: 'PT1S' },
  ],
  topics: [
    {
      name: 'events',
      requiresDuplicateDetection: false,
      duplicateDetectionHistoryTimeWindow: 'PT10M',
      defaultMessageTimeToLive: 'P1D',
      subscriptions: [subscription('audit', 5), subscription('flaky', 2)],
    },
  ],
};

interface Observed {
  fn: string;
  [key: string]: unknown;
}

describe('Service Bus triggers', () => {
  let emulator: RunningServiceBusEmulator;
  let host: HostUnderTest;
  let client: ServiceBusClient;
  let observedReceiver: ServiceBusReceiver;
  const observed: Observed[] = [];

  /** Waits until the `observed` queue has produced what `pick` looks for. */
  async function observe<T>(what: string, pick: (all: Observed[]) => T | undefined, timeoutMs = 15_000): Promise<T> {
    return eventually(
      async () => {
        const messages: ServiceBusReceivedMessage[] = await observedReceiver.receiveMessages(20, { maxWaitTimeInMs: 200 });
        for (const m of messages) observed.push(m.body as Observed);
        return pick(observed);
      },
      timeoutMs,
      what,
    );
  }

  beforeAll(async () => {
    emulator = await startServiceBusEmulator({ port: 0, topology });
    host = await startHost('servicebus-app', { ServiceBusConnection: emulator.connectionString });
    client = new ServiceBusClient(emulator.connectionString);
    observedReceiver = client.createReceiver('observed', { receiveMode: 'receiveAndDelete' });
  });

  afterAll(async () => {
    await observedReceiver?.close();
    await client?.close();
    await host?.stop();
    await emulator?.stop();
  });

  it('runs a queue trigger with the body and metadata, sends its return value, and completes the message', async () => {
    const sender = client.createSender('work');
    await sender.sendMessages({
      body: { orderId: 'o-1', items: 2 },
      messageId: 'm-1',
      correlationId: 'c-1',
      subject: 'OrderCreated',
      contentType: 'application/json',
      applicationProperties: { OrderId: 'o-1', event_type: 'OrderCreated' },
    });
    await sender.close();
    const seen = await observe('workQueue output', (all) => all.find((o) => o.fn === 'workQueue'));
    expect(seen['message']).toEqual({ orderId: 'o-1', items: 2 });
    expect(seen['metadata']).toMatchObject({
      deliveryCount: 1,
      messageId: 'm-1',
      correlationId: 'c-1',
      subject: 'OrderCreated',
      label: 'OrderCreated',
      contentType: 'application/json',
      // The library lower-cases the first letter of every key, recursively.
      applicationProperties: { orderId: 'o-1', event_type: 'OrderCreated' },
      userProperties: { orderId: 'o-1', event_type: 'OrderCreated' },
    });
    const metadata = seen['metadata'] as Record<string, unknown>;
    expect(typeof metadata['sequenceNumber']).toBe('number');
    expect(typeof metadata['lockToken']).toBe('string');
    expect(Number.isNaN(Date.parse(String(metadata['enqueuedTimeUtc'])))).toBe(false);

    // Completed: nothing is left to receive, and the function ran once.
    const peek = client.createReceiver('work');
    expect(await peek.peekMessages(10)).toHaveLength(0);
    await peek.close();
    await logShows(host, /Executed 'workQueue' \(Succeeded/);
    expect(host.service.output().match(/Executed 'workQueue' \(Succeeded/g)).toHaveLength(1);
  });

  it('abandons a failing message until Service Bus dead-letters it, then the DLQ trigger gets it', async () => {
    const sender = client.createSender('poison');
    await sender.sendMessages({ body: 'not an order', messageId: 'p-1', applicationProperties: { reason_code: 7 } });
    await sender.close();
    const dead = await observe('dead-lettered poison message', (all) => all.find((o) => o.fn === 'poisonDeadLetters'));
    expect(dead['message']).toBe('not an order');
    expect(dead['deadLetterReason']).toBe('MaxDeliveryCountExceeded');
    expect(dead['applicationProperties']).toMatchObject({ reason_code: 7 });
    const attempts = (await (await fetch(`${host.url}/api/attempts`)).json()) as { fn: string; deliveryCount: number }[];
    expect(attempts.filter((a) => a.fn === 'poisonQueue').map((a) => a.deliveryCount)).toEqual([1, 2, 3]);
  });

  it('runs topic subscriptions independently: one succeeds with two outputs, a failing one ends in its DLQ', async () => {
    const sender = client.createSender('events');
    await sender.sendMessages({ body: { event: 'e-1' }, subject: 'Audit', messageId: 'e-1' });
    await sender.close();
    const copies = await observe('two audit copies', (all) => {
      const found = all.filter((o) => o.fn === 'audit');
      return found.length === 2 ? found : undefined;
    });
    expect(copies.map((c) => c['copy']).sort()).toEqual([1, 2]);
    expect(copies.every((c) => c['subject'] === 'Audit')).toBe(true);
    expect(copies[0]!['message']).toEqual({ event: 'e-1' });

    const dead = await observe('flaky dead letter', (all) => all.find((o) => o.fn === 'flakyDeadLetters'));
    expect(dead['message']).toEqual({ event: 'e-1' });
    expect(dead['deadLetterReason']).toBe('MaxDeliveryCountExceeded');
    const attempts = (await (await fetch(`${host.url}/api/attempts`)).json()) as { fn: string; deliveryCount: number }[];
    expect(attempts.filter((a) => a.fn === 'flaky').map((a) => a.deliveryCount)).toEqual([1, 2]);
  });

  it('delivers a batch to a cardinality-many trigger with Array-suffixed metadata', async () => {
    const sender = client.createSender('batch');
    const batch = await sender.createMessageBatch();
    for (let i = 1; i <= 3; i++) batch.tryAddMessage({ body: { n: i }, messageId: `b-${i}` });
    await sender.sendMessages(batch);
    await sender.close();
    const runs = await observe('all three batch messages', (all) => {
      const found = all.filter((o) => o.fn === 'batch');
      return found.flatMap((f) => f['messages'] as unknown[]).length >= 3 ? found : undefined;
    });
    const messages = runs.flatMap((r) => r['messages'] as { n: number }[]);
    expect(messages.map((m) => m.n).sort()).toEqual([1, 2, 3]);
    expect(runs.flatMap((r) => r['messageIds'] as string[]).sort()).toEqual(['b-1', 'b-2', 'b-3']);
    expect(runs.flatMap((r) => r['deliveryCounts'] as number[])).toEqual([1, 1, 1]);
  });

  it('renews the lock of a message whose function outlives the lock duration', async () => {
    const sender = client.createSender('slow');
    await sender.sendMessages({ body: 'take your time', messageId: 's-1' });
    await sender.close();
    const done = await observe('slow output', (all) => all.find((o) => o.fn === 'slowQueue'));
    expect(done['deliveryCount']).toBe(1);
    // Give a lost lock time to show up as a redelivery before checking it did not.
    await new Promise((r) => setTimeout(r, 1500));
    await logShows(host, /Executed 'slowQueue'/);
    expect(host.service.output().match(/Executed 'slowQueue'/g)).toHaveLength(1);
    const peek = client.createReceiver('slow');
    expect(await peek.peekMessages(10)).toHaveLength(0);
    await peek.close();
  });

  it('leaves a message unsettled when the trigger turns autoCompleteMessages off', async () => {
    const sender = client.createSender('manual');
    await sender.sendMessages({ body: 'settle me yourself', messageId: 'n-1' });
    await sender.close();
    const attempts = await eventually(async () => {
      const all = (await (await fetch(`${host.url}/api/attempts`)).json()) as { fn: string; deliveryCount: number }[];
      const mine = all.filter((a) => a.fn === 'noAutoComplete');
      return mine.length >= 2 ? mine : undefined;
    }, 10_000, 'a redelivery after the lock ran out');
    expect(attempts.slice(0, 2).map((a) => a.deliveryCount)).toEqual([1, 2]);
    await logShows(host, /Executed 'noAutoComplete' \(Succeeded/);
  });

  it('passes text bodies as strings, and non-UTF-8 bodies as strings with replacement characters, as on Azure', async () => {
    const sender = client.createSender('raw');
    await sender.sendMessages({ body: Buffer.from('plain text, not JSON') });
    await sender.sendMessages({ body: Buffer.from([0xff, 0xfe, 0x00, 0x01]) });
    await sender.close();
    const seen = await observe('two raw messages', (all) => {
      const found = all.filter((o) => o.fn === 'textAndBytes');
      return found.length === 2 ? found : undefined;
    });
    expect(seen).toEqual(
      expect.arrayContaining([
        { fn: 'textAndBytes', kind: 'string', value: 'plain text, not JSON' },
        // The extension binds the body to a string (azure-functions-nodejs-worker#684).
        { fn: 'textAndBytes', kind: 'string', value: '\ufffd\ufffd\u0000\u0001' },
      ]),
    );
  });
});
