/** Sending, fan-out, duplicate detection, receive modes and message fidelity, through the real SDK. */
import { isServiceBusError } from '@azure/service-bus';
import { startHarness, receiveN, uniqueId, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe('fan-out to subscriptions', () => {
  it('delivers an untargeted event to every subscription', async () => {
    const id = uniqueId();
    await h.client.createSender('orders').sendMessages({ body: { orderId: 'o1' }, messageId: id });
    for (const sub of ['inventory-sub', 'billing-sub', 'notification-sub']) {
      const [m] = await receiveN(h.client.createReceiver('orders', sub), 1);
      expect(m.messageId).toBe(id);
      expect(m.body).toEqual({ orderId: 'o1' });
    }
  });

  it("delivers a targeted requeue (target = 'billing') to billing only", async () => {
    const sender = h.client.createSender('orders');
    await sender.sendMessages({ body: 'requeue', messageId: uniqueId(), applicationProperties: { target: 'billing' } });
    const [billing] = await receiveN(h.client.createReceiver('orders', 'billing-sub'), 1);
    expect(billing.body).toBe('requeue');
    for (const sub of ['inventory-sub', 'notification-sub']) {
      expect(await h.client.createReceiver('orders', sub).peekMessages(10)).toHaveLength(0);
    }
  });

  it('fans out every message of a batch', async () => {
    const sender = h.client.createSender('orders');
    const batch = await sender.createMessageBatch();
    for (let i = 0; i < 50; i++) expect(batch.tryAddMessage({ body: { i }, messageId: uniqueId() })).toBe(true);
    await sender.sendMessages(batch);
    await sender.sendMessages([{ body: { i: 50 }, messageId: uniqueId() }, { body: { i: 51 }, messageId: uniqueId() }]);
    for (const sub of ['inventory-sub', 'billing-sub', 'notification-sub']) {
      const got = await receiveN(h.client.createReceiver('orders', sub, { receiveMode: 'receiveAndDelete' }), 52);
      expect(got.map((m) => (m.body as { i: number }).i)).toEqual([...Array(52).keys()]);
    }
  });

  it('matches correlation filters and SQL filters over system and application properties', async () => {
    const sender = h.client.createSender('events');
    await sender.sendMessages([
      { body: 1, messageId: 'a', correlationId: 'corr-1', subject: 'created', applicationProperties: { region: 'eu', priority: 1 } },
      { body: 2, messageId: 'b', correlationId: 'corr-1', subject: 'updated', applicationProperties: { region: 'eu', priority: 9 } },
      { body: 3, messageId: 'c', subject: 'created', applicationProperties: { region: 'us', priority: 1 } },
      { body: 4, messageId: 'd', subject: 'created', applicationProperties: { region: 'eu', priority: 7 } },
      { body: 5, messageId: 'e', subject: 'created', applicationProperties: { region: 'eu', priority: 7, ignore: true } },
      { body: 6, messageId: 'vip-1', subject: 'x' },
    ]);
    const bodies = async (sub: string, n: number) =>
      (await receiveN(h.client.createReceiver('events', sub, { receiveMode: 'receiveAndDelete' }), n, 3000)).map((m) => m.body);
    expect(await bodies('all', 6)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await bodies('correlated', 1)).toEqual([1]);
    expect(await bodies('sql', 2)).toEqual([3, 4]);
    expect(await bodies('by-id', 1)).toEqual([6]);
    for (const sub of ['correlated', 'sql', 'by-id']) {
      expect(await h.client.createReceiver('events', sub).peekMessages(10)).toHaveLength(0);
    }
  });
});

describe('duplicate detection', () => {
  it('accepts a duplicate send but delivers the message once', async () => {
    const sender = h.client.createSender('orders');
    const id = uniqueId();
    await sender.sendMessages({ body: 'first', messageId: id });
    await sender.sendMessages({ body: 'second', messageId: id });
    await sender.sendMessages({ body: 'other', messageId: uniqueId() });
    const got = await receiveN(h.client.createReceiver('orders', 'billing-sub', { receiveMode: 'receiveAndDelete' }), 2);
    expect(got.map((m) => m.body)).toEqual(['first', 'other']);
    expect(await h.client.createReceiver('orders', 'billing-sub').peekMessages(5)).toHaveLength(0);
  });

  it('is off for entities that do not require it', async () => {
    const sender = h.client.createSender('work');
    await sender.sendMessages({ body: 1, messageId: 'same' });
    await sender.sendMessages({ body: 2, messageId: 'same' });
    const got = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 2);
    expect(got.map((m) => m.body)).toEqual([1, 2]);
  });
});

describe('message fidelity', () => {
  it('round-trips properties, application properties and bodies', async () => {
    const when = new Date('2026-01-02T03:04:05.678Z');
    const sender = h.client.createSender('work');
    await sender.sendMessages([
      {
        body: { nested: { a: [1, 'two', true] } },
        messageId: 'json',
        correlationId: 'corr',
        subject: 'subj',
        contentType: 'application/json',
        to: 'someone',
        replyTo: 'reply-queue',
        partitionKey: 'pk-1',
        timeToLive: 60_000,
        applicationProperties: { s: 'str', n: 42, f: 1.5, neg: -7, b: false, d: when },
      },
      { body: 'plain string', messageId: 'string' },
      { body: Buffer.from([0, 1, 2, 254, 255]), messageId: 'bytes' },
      { body: 12.5, messageId: 'number' },
    ]);
    const receiver = h.client.createReceiver('work', { receiveMode: 'receiveAndDelete', skipConvertingDate: true });
    const before = Date.now();
    const [json, str, bytes, num] = await receiveN(receiver, 4);
    expect(json.messageId).toBe('json');
    expect(json.body).toEqual({ nested: { a: [1, 'two', true] } });
    expect(json.correlationId).toBe('corr');
    expect(json.subject).toBe('subj');
    expect(json.contentType).toBe('application/json');
    expect(json.to).toBe('someone');
    expect(json.replyTo).toBe('reply-queue');
    expect(json.partitionKey).toBe('pk-1'); // sender annotations pass through
    expect(json.timeToLive).toBe(60_000);
    expect(json.applicationProperties).toEqual({ s: 'str', n: 42, f: 1.5, neg: -7, b: false, d: when });
    expect(str.body).toBe('plain string');
    expect(Buffer.isBuffer(bytes.body)).toBe(true);
    expect([...(bytes.body as Buffer)]).toEqual([0, 1, 2, 254, 255]);
    expect(num.body).toBe(12.5);
    // system properties: monotonic sequence numbers, enqueued time of the send
    const seqs = [json, str, bytes, num].map((m) => Number(m.sequenceNumber));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(4);
    expect(json.enqueuedTimeUtc!.getTime()).toBeLessThanOrEqual(before + 50);
    expect(json.enqueuedTimeUtc!.getTime()).toBeGreaterThan(before - 10_000);
  });

  it('carries a message near the 256 KB limit across frames both ways', async () => {
    const big = Buffer.alloc(250 * 1024, 7);
    big[0] = 1;
    big[big.length - 1] = 2;
    await h.client.createSender('work').sendMessages({ body: big, messageId: 'big' });
    const [m] = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 1);
    expect(Buffer.compare(m.body as Buffer, big)).toBe(0);
    const err = await h.client.createSender('work').sendMessages({ body: Buffer.alloc(300 * 1024) }).then(() => undefined, (e: unknown) => e);
    expect(isServiceBusError(err) && err.code).toBe('MessageSizeExceeded');
  });

  it('gives a peek-lock delivery a lock token, locked-until and a zero delivery count', async () => {
    await h.client.createSender('work').sendMessages({ body: 'x' });
    const [m] = await receiveN(h.client.createReceiver('work'), 1);
    expect(m.lockToken).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(m.deliveryCount).toBe(0);
    expect(m.lockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    expect(m.lockedUntilUtc!.getTime()).toBeLessThanOrEqual(Date.now() + 1000 + 50);
  });
});

describe('receiving', () => {
  it('answers the drain of receiveMessages so a short receive returns on time and the link stays usable', async () => {
    const receiver = h.client.createReceiver('work');
    const t0 = Date.now();
    expect(await receiver.receiveMessages(10, { maxWaitTimeInMs: 200 })).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(1500);
    await h.client.createSender('work').sendMessages([{ body: 1 }, { body: 2 }]);
    const t1 = Date.now();
    const got = await receiver.receiveMessages(2, { maxWaitTimeInMs: 3000 });
    expect(got.map((m) => m.body)).toEqual([1, 2]);
    expect(Date.now() - t1).toBeLessThan(1000);
    await Promise.all(got.map((m) => receiver.completeMessage(m)));
  });

  it('streams with subscribe() and completes', async () => {
    const sender = h.client.createSender('work');
    await sender.sendMessages([...Array(20).keys()].map((i) => ({ body: i })));
    const receiver = h.client.createReceiver('work');
    const seen: number[] = [];
    await new Promise<void>((resolve, reject) => {
      receiver.subscribe(
        {
          processMessage: async (m) => {
            seen.push(m.body as number);
            if (seen.length === 20) resolve();
          },
          processError: async (args) => reject(args.error),
        },
        { maxConcurrentCalls: 4 },
      );
    });
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
    await receiver.close();
    expect(await h.client.createReceiver('work').peekMessages(30)).toHaveLength(0);
  });

  it('never gives the same message to two concurrent receivers', async () => {
    const total = 200;
    const sender = h.client.createSender('work');
    await sender.sendMessages([...Array(total).keys()].map((i) => ({ body: i })));
    const receivers = [...Array(4)].map(() => h.newClient().createReceiver('work'));
    const seen: number[] = [];
    await Promise.all(
      receivers.map(async (r) => {
        for (;;) {
          const batch = await r.receiveMessages(7, { maxWaitTimeInMs: 300 });
          if (batch.length === 0) return;
          for (const m of batch) {
            seen.push(m.body as number);
            await r.completeMessage(m);
          }
        }
      }),
    );
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
  });

  it('removes messages on delivery in receive-and-delete mode', async () => {
    await h.client.createSender('work').sendMessages([{ body: 'a' }, { body: 'b' }]);
    const got = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 2);
    expect(got.map((m) => m.body)).toEqual(['a', 'b']);
    expect(await h.client.createReceiver('work').receiveMessages(5, { maxWaitTimeInMs: 200 })).toEqual([]);
  });

  it('keeps one receiver link flowing past thousands of settled deliveries', async () => {
    const total = 3000;
    const sender = h.client.createSender('work');
    for (let i = 0; i < total; i += 500) await sender.sendMessages([...Array(500).keys()].map((k) => ({ body: i + k })));
    const r = h.client.createReceiver('work');
    let done = 0;
    while (done < total) {
      const got = await r.receiveMessages(250, { maxWaitTimeInMs: 2000 });
      expect(got.length).toBeGreaterThan(0);
      await Promise.all(got.map((m) => r.completeMessage(m)));
      done += got.length;
    }
    expect(done).toBe(total);
  });

  it('receives from a queue case-insensitively', async () => {
    await h.client.createSender('WORK').sendMessages({ body: 'case' });
    const [m] = await receiveN(h.client.createReceiver('Work', { receiveMode: 'receiveAndDelete' }), 1);
    expect(m.body).toBe('case');
  });
});
