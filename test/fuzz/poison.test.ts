/**
 * Malformed messages on the `orders` topic, generated with fast-check: random bytes, text that is
 * not JSON, JSON of any shape, CloudEvents of unknown types, OrderCreated events with broken or
 * missing fields, events for orders that do not exist, missing or mistyped application
 * properties, and AMQP value/sequence bodies. Each one must end in the dead-letter queue of every
 * subscription with a reason and stay there, be kept by the app in the dead-letter archive (once
 * per queue) and logged, and the host keeps serving and completing real orders.
 */
import type { AmqpAnnotatedMessage } from '@azure/core-amqp';
import type { ServiceBusMessage } from '@azure/service-bus';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { deadLetterPath, ORDERS_TOPIC, SERVICES, SUBSCRIPTIONS } from '../../src/topology';
import { peekFromHead, systemWithServiceBus } from '../e2e/systemWithServiceBus';

jest.setTimeout(120_000);

// The sweeper's invocation lines are kept to warnings in host.json; this test counts its runs by them.
const e2e = systemWithServiceBus({ 'AzureFunctionsJobHost__logging__logLevel__Function.deadLetterSweeper': 'Information' });

/** A well-formed OrderCreated for an order id that was never accepted. */
const orderCreatedFor = (orderId: string) => ({
  specversion: '1.0',
  id: randomUUID(),
  source: '/order-saga/orders',
  type: 'OrderCreated',
  subject: orderId,
  datacontenttype: 'application/json',
  time: new Date().toISOString(),
  data: { orderId, customerId: 'nobody', items: [{ sku: 'MOUSE-01', quantity: 1, unitPrice: 24.5 }], total: 24.5, currency: 'EUR', correlationId: 'poison' },
});

type Poison = { shape: string; message: Omit<ServiceBusMessage, 'messageId'> } | { shape: string; annotated: Omit<AmqpAnnotatedMessage, 'properties'> };

const properties = fc.option(
  fc.record(
    {
      event_type: fc.oneof(fc.constant('OrderCreated'), fc.string({ maxLength: 20 }), fc.integer(), fc.boolean()),
      order_id: fc.oneof(fc.uuid(), fc.string({ maxLength: 70 }), fc.integer()),
      correlation_id: fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.constant(0.5)),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);

const poison: fc.Arbitrary<Poison> = fc.oneof(
  fc.tuple(fc.uint8Array({ minLength: 0, maxLength: 300 }), properties).map(([bytes, props]) => ({
    shape: 'random bytes',
    message: { body: Buffer.from(bytes), contentType: 'application/octet-stream', ...(props ? { applicationProperties: props } : {}) },
  })),
  fc.tuple(fc.string({ maxLength: 200 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }), properties).map(([text, props]) => ({
    shape: 'text that is not JSON',
    message: { body: Buffer.from(text, 'utf8'), contentType: 'application/cloudevents+json', ...(props ? { applicationProperties: props } : {}) },
  })),
  fc.tuple(fc.jsonValue({ maxDepth: 3 }), properties).map(([value, props]) => ({
    shape: 'JSON of another shape',
    message: { body: value, contentType: 'application/json', ...(props ? { applicationProperties: props } : {}) },
  })),
  fc.tuple(fc.string({ minLength: 1, maxLength: 30 }).filter((t) => t !== 'OrderCreated'), fc.uuid()).map(([type, id]) => ({
    shape: 'CloudEvent of an unknown type',
    message: { body: { ...orderCreatedFor(id), type }, contentType: 'application/cloudevents+json', applicationProperties: { event_type: type, order_id: id } },
  })),
  fc
    .tuple(
      fc.uuid(),
      fc.constantFrom('specversion', 'id', 'source', 'subject', 'datacontenttype', 'time', 'data', 'data.orderId', 'data.items', 'data.total', 'data.correlationId'),
      fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer(), fc.string({ maxLength: 10 }), fc.constant([]), fc.constant('UPPER-CASE-ID')),
    )
    .map(([id, field, value]) => {
      const event: Record<string, any> = orderCreatedFor(id);
      const [outer, inner] = field.split('.') as [string, string | undefined];
      const holder = inner ? (event[outer] = { ...event[outer] }) : event;
      if (value === undefined) delete holder[inner ?? outer];
      else holder[inner ?? outer] = value;
      return {
        shape: `OrderCreated with ${field} ${value === undefined ? 'missing' : `= ${JSON.stringify(value)}`}`,
        message: { body: event, contentType: 'application/cloudevents+json', applicationProperties: { event_type: 'OrderCreated', order_id: id } },
      };
    }),
  fc.uuid().map((id) => ({
    shape: 'OrderCreated for an order that does not exist',
    message: { body: orderCreatedFor(id), contentType: 'application/cloudevents+json', applicationProperties: { event_type: 'OrderCreated', order_id: id, correlation_id: 'poison' } },
  })),
  fc.tuple(fc.uuid(), fc.uuid()).map(([id, other]) => ({
    shape: 'OrderCreated whose subject is another order',
    message: { body: { ...orderCreatedFor(id), subject: other }, contentType: 'application/cloudevents+json' },
  })),
  // AMQP encodes whole numbers as 32-bit or 64-bit integers: larger ones cannot be sent at all.
  fc
    .jsonValue({ maxDepth: 2 })
    .filter((v) => !/\d{10,}|e[+-]?\d/i.test(JSON.stringify(v)))
    .map((value) => ({ shape: 'AMQP value body', annotated: { body: value, bodyType: 'value' as const, applicationProperties: {} } })),
  fc.array(fc.array(fc.integer(), { maxLength: 4 }), { minLength: 1, maxLength: 3 }).map((seq) => ({
    shape: 'AMQP sequence body',
    annotated: { body: seq, bodyType: 'sequence' as const, applicationProperties: {} },
  })),
);

it('dead-letters every malformed message with a reason and keeps serving', async () => {
  // FUZZ_SEED replays a failing run; the seed is part of every failure message.
  const seed = Number(process.env.FUZZ_SEED) || Date.now() % 2 ** 31;
  const samples: Poison[] = [
    ...fc.sample(poison, { numRuns: 40, seed }),
    // Found by this fuzzer: an id Cosmos DB refuses to even look up once kept billing's dead-letter
    // trigger failing on the same message forever. Every run now carries one.
    { shape: 'order_id with characters Cosmos DB refuses', message: { body: 'not an event', applicationProperties: { event_type: 'OrderCreated', order_id: 'a/b\\c#d?' } } },
  ];
  const run = randomUUID().slice(0, 8);
  const sent = new Map<string, string>();
  const sender = e2e.serviceBus.createSender(ORDERS_TOPIC);
  try {
    for (const [i, p] of samples.entries()) {
      const messageId = `poison-${run}-${i}`;
      sent.set(messageId, p.shape);
      if ('message' in p) await sender.sendMessages({ ...p.message, messageId });
      else await sender.sendMessages({ ...p.annotated, properties: { messageId } });
    }
  } finally {
    await sender.close();
  }

  // The app keeps what it cannot attach to an order in the dead-letter archive and logs it, with
  // the reason Service Bus gives.
  const missing: string[] = [];
  const output = () => e2e.system.host.output().split('\n');
  const logged = (lines: string[], service: string, id: string) =>
    lines.some((line) => line.includes(`${service}-deadletter-without-order`) && line.includes(id) && /"deadLetterReason":"[^"]+"/.test(line));
  const unlogged = () => {
    const lines = output();
    return SERVICES.flatMap((service) => [...sent].filter(([id]) => !logged(lines, service, id)).map(([id, shape]) => ({ service, id, shape })));
  };
  const deadline = Date.now() + 60_000;
  while (unlogged().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  for (const { service, id, shape } of unlogged()) missing.push(`${service}: ${id} (${shape}) not logged with a reason`);
  // ...and leaves it there, with that reason, for whoever reads the queue (DESIGN: poison ends in
  // the dead-letter queue with a reason). Kept on the last delivery, it lands there just after.
  const notInQueues = async () => {
    const problems: string[] = [];
    for (const service of SERVICES) {
      const inQueue = new Map((await peekFromHead(e2e.serviceBus, deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS[service]))).map((m) => [String(m.messageId), m]));
      for (const [id, shape] of sent) {
        const m = inQueue.get(id);
        if (!m) problems.push(`${service}: ${id} (${shape}) not in the dead-letter queue`);
        else if (!m.deadLetterReason) problems.push(`${service}: ${id} (${shape}) in the dead-letter queue without a reason`);
      }
    }
    return problems;
  };
  let absent = await notInQueues();
  while (absent.length > 0 && Date.now() < deadline + 10_000) {
    await new Promise((r) => setTimeout(r, 250));
    absent = await notInQueues();
  }
  // Still there once the dead-letter sweep has been over them: two runs end after this point, so
  // one started after it.
  const sweptAfter = output().length;
  const sweeps = () => output().slice(sweptAfter).filter((line) => line.includes("Executed 'deadLetterSweeper' (Succeeded")).length;
  while (sweeps() < 2 && Date.now() < deadline + 30_000) await new Promise((r) => setTimeout(r, 250));
  if (sweeps() < 2) missing.push(`${sweeps()} dead-letter sweeps ran after the messages were dead-lettered`);
  absent = await notInQueues();
  missing.push(...absent);
  // Support reads every kept message back through the API, once per dead-letter queue.
  const listed = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await e2e.system.request('GET', `/api/support/deadletters?pageSize=100${token ? `&continuationToken=${encodeURIComponent(token)}` : ''}`);
    expect(page.status).toBe(200);
    for (const d of page.body.deadLetters as { source: string; messageId?: string }[]) {
      const key = `${d.source} ${d.messageId}`;
      listed.set(key, (listed.get(key) ?? 0) + 1);
    }
    token = page.body.continuationToken;
  } while (token);
  for (const service of SERVICES) {
    for (const [id, shape] of sent) {
      const times = listed.get(`${deadLetterPath(ORDERS_TOPIC, SUBSCRIPTIONS[service])} ${id}`) ?? 0;
      if (times !== 1) missing.push(`${service}: ${id} (${shape}) listed by GET /api/support/deadletters ${times} times`);
    }
  }
  expect({ seed, missing }).toEqual({ seed, missing: [] });

  // Still serving, and the consumers still work.
  let exited = false;
  void e2e.system.host.exited.then(() => (exited = true));
  await new Promise((r) => setImmediate(r));
  expect(exited).toBe(false);
  const res = await e2e.system.postOrder({ customerId: 'after-poison', items: [{ sku: 'WEBCAM-01', quantity: 1 }] });
  expect(res.status).toBe(202);
  const done = await e2e.system.waitForOrder<{ state: string }>(res.body.orderId, (o) => o.state === 'completed', 30_000);
  expect(done.state).toBe('completed');
  expect(e2e.system.host.output()).not.toMatch(/Unhandled promise rejection|uncaughtException/);
});
