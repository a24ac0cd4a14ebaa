/** $management operations (peek, schedule, cancel) and message expiry, through the real SDK. */
import type { PeekMessagesOptions } from '@azure/service-bus';
import Long from 'long';
import { receiveN, sleep, startHarness, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe('peekMessages', () => {
  it('pages through messages without locking them, from a sequence number', async () => {
    await h.client.createSender('work').sendMessages([...Array(5).keys()].map((i) => ({ body: i })));
    const r = h.client.createReceiver('work');
    const firstTwo = await r.peekMessages(2);
    expect(firstTwo.map((m) => m.body)).toEqual([0, 1]);
    const nextTwo = await r.peekMessages(2); // continues after the last peeked
    expect(nextTwo.map((m) => m.body)).toEqual([2, 3]);
    const from = await r.peekMessages(10, { fromSequenceNumber: firstTwo[1].sequenceNumber });
    expect(from.map((m) => m.body)).toEqual([1, 2, 3, 4]);
    expect(from[0].lockToken).toBeUndefined();
    // peeking locked nothing
    const got = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 5);
    expect(got).toHaveLength(5);
  });

  it('returns nothing past the end', async () => {
    await h.client.createSender('work').sendMessages({ body: 1 });
    const r = h.client.createReceiver('work');
    expect(await r.peekMessages(5, { fromSequenceNumber: Long.fromNumber(1000) })).toEqual([]);
  });

  it('leaves the body out when asked (omitMessageBody), and nothing else', async () => {
    await h.client.createSender('work').sendMessages({ body: 'x'.repeat(1000), messageId: 'm-1', applicationProperties: { order_id: 'o-1' } });
    const r = h.client.createReceiver('work');
    const [bare] = await r.peekMessages(1, { fromSequenceNumber: Long.ZERO, omitMessageBody: true } as PeekMessagesOptions);
    const [whole] = await r.peekMessages(1, { fromSequenceNumber: Long.ZERO });
    expect(bare!.body).toBeUndefined();
    expect(whole!.body).toBe('x'.repeat(1000));
    expect([bare!.messageId, bare!.applicationProperties, bare!.sequenceNumber!.toString()]).toEqual([whole!.messageId, whole!.applicationProperties, whole!.sequenceNumber!.toString()]);
  });

  it('peeks the dead-letter queue', async () => {
    await h.client.createSender('work').sendMessages({ body: 'x' });
    const r = h.client.createReceiver('work');
    const [m] = await receiveN(r, 1);
    await r.deadLetterMessage(m, { deadLetterReason: 'why', deadLetterErrorDescription: 'because' });
    const [p] = await h.client.createReceiver('work', { subQueueType: 'deadLetter' }).peekMessages(1);
    expect(p.body).toBe('x');
    expect(p.deadLetterReason).toBe('why');
    expect(p.deadLetterSource).toBe('work');
  });
});

describe('scheduled messages', () => {
  it('enqueues a scheduled message at its time, and a cancelled one never', async () => {
    const sender = h.client.createSender('orders');
    const at = new Date(Date.now() + 600);
    const [keep, cancel] = await Promise.all([
      sender.scheduleMessages({ body: 'keep', messageId: 'sched-keep' }, at),
      sender.scheduleMessages({ body: 'cancel', messageId: 'sched-cancel' }, at),
    ]);
    expect(Number(keep[0])).toBeGreaterThan(0);
    await sender.cancelScheduledMessages(cancel);
    const r = h.client.createReceiver('orders', 'billing-sub', { receiveMode: 'receiveAndDelete' });
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [m] = await receiveN(r, 1, 3000);
    expect(m.body).toBe('keep');
    expect(Date.now()).toBeGreaterThanOrEqual(at.getTime() - 20);
    expect(m.sequenceNumber!.toNumber()).toBeGreaterThan(Math.max(Number(keep[0]), Number(cancel[0])));
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 400 })).toEqual([]);
  });

  it('appends a scheduled message with a new sequence number when it becomes active, as Service Bus does', async () => {
    // "The SequenceNumber for a scheduled message is only valid while the message is in this state.
    // As the message transitions to the active state, the message is appended to the queue as if
    // had been enqueued at the current instant, which includes assigning a new SequenceNumber."
    const sender = h.client.createSender('work');
    const at = new Date(Date.now() + 400);
    const [scheduled] = await sender.scheduleMessages({ body: 'later' }, at);
    await sender.sendMessages({ body: 'now' });
    const got = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 2, 3000);
    expect(got.map((m) => [m.body, m.sequenceNumber!.toNumber()])).toEqual([
      ['now', scheduled.toNumber() + 1],
      ['later', scheduled.toNumber() + 2],
    ]);
    expect(got[1].enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(at.getTime());
  });

  it('honours scheduledEnqueueTimeUtc on a plain send', async () => {
    const at = new Date(Date.now() + 500);
    await h.client.createSender('work').sendMessages({ body: 'later', scheduledEnqueueTimeUtc: at });
    const r = h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' });
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 150 })).toEqual([]);
    const [m] = await receiveN(r, 1, 3000);
    expect(m.body).toBe('later');
  });
});

describe('time to live', () => {
  it('dead-letters an expired message with TTLExpiredException where enabled', async () => {
    await h.client.createSender('events').sendMessages({ body: 'old', messageId: 'ttl-1' });
    await sleep(600);
    expect(await h.client.createReceiver('events', 'short-ttl').receiveMessages(1, { maxWaitTimeInMs: 150 })).toEqual([]);
    const [dead] = await receiveN(h.client.createReceiver('events', 'short-ttl', { subQueueType: 'deadLetter' }), 1);
    expect(dead.messageId).toBe('ttl-1');
    expect(dead.deadLetterReason).toBe('TTLExpiredException');
    expect(dead.deadLetterSource).toBe('events/Subscriptions/short-ttl');
  });

  it('drops an expired message where dead-lettering on expiry is off', async () => {
    await h.client.createSender('events').sendMessages({ body: 'old' });
    await sleep(600);
    expect(await h.client.createReceiver('events', 'short-ttl-drop').peekMessages(5)).toEqual([]);
    expect(await h.client.createReceiver('events', 'short-ttl-drop', { subQueueType: 'deadLetter' }).peekMessages(5)).toEqual([]);
  });

  it("expires by the message's own timeToLive when shorter than the entity's", async () => {
    await h.client.createSender('orders').sendMessages({ body: 'brief', messageId: 'ttl-own', timeToLive: 300, applicationProperties: { target: 'billing' } });
    await sleep(600);
    expect(await h.client.createReceiver('orders', 'billing-sub').receiveMessages(1, { maxWaitTimeInMs: 150 })).toEqual([]);
    const [dead] = await receiveN(h.client.createReceiver('orders', 'billing-sub', { subQueueType: 'deadLetter' }), 1);
    expect(dead.deadLetterReason).toBe('TTLExpiredException');
  });
});
