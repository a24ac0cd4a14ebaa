/**
 * The emulator answers each settlement and each sent message with its own outcome, also when
 * those of one turn succeed and fail side by side. (rhea writes one turn's answers as ranges of
 * consecutive deliveries and, for a range that starts with two, takes the first one's outcome for
 * both.)
 */
import type { Delivery, EventContext } from 'rhea';
import { LOCK_MS, rawSender, receiveN, sleep, startHarness, uniqueId, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

it.each([
  ['a live lock, then a lost one', [true, false]],
  ['a lost lock, then a live one', [false, true]],
])('completes of one turn get their own answers: %s', async (_name, live) => {
  const sender = h.client.createSender('work');
  await sender.sendMessages([uniqueId('first'), uniqueId('second')].map((id) => ({ body: id, messageId: id })));
  const r = h.client.createReceiver('work', { maxAutoLockRenewalDurationInMs: 0 });
  const messages = await receiveN(r, 2);
  expect(messages).toHaveLength(2);
  // Keep the live one's lock, let the other lapse.
  await sleep(LOCK_MS * 0.6);
  for (const [i, m] of messages.entries()) if (live[i]) await r.renewMessageLock(m);
  await sleep(LOCK_MS * 0.6);
  const outcomes = await Promise.allSettled(messages.map((m) => r.completeMessage(m)));
  expect(outcomes.map((o) => (o.status === 'fulfilled' ? 'completed' : (o.reason as { code?: string }).code))).toEqual(
    live.map((l) => (l ? 'completed' : 'MessageLockLost')),
  );
  await r.close();
});

it.each([
  ['an unreadable message, then a good one', [false, true]],
  ['a good message, then an unreadable one', [true, false]],
])('sends of one turn get their own answers: %s', async (_name, good) => {
  // The SDK cannot send an unreadable message; a raw AMQP client can, next to a good one.
  const { conn, sender } = await rawSender(h, 'work');
  const outcomes = new Map<Delivery, string>();
  const answered = new Promise<void>((resolve) => {
    const record = (outcome: string) => (ctx: EventContext) => {
      outcomes.set(ctx.delivery!, outcome);
      if (outcomes.size === good.length) resolve();
    };
    sender.on('accepted', record('accepted'));
    sender.on('rejected', record('rejected'));
  });
  const body = uniqueId('good');
  // Both transfers are written in this turn, so the emulator reads them together.
  const deliveries = good.map((g) => (g ? sender.send({ body }) : sender.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]), undefined, 0)));
  await answered;
  expect(deliveries.map((d) => outcomes.get(d))).toEqual(good.map((g) => (g ? 'accepted' : 'rejected')));
  conn.close();
  const received = await receiveN(h.client.createReceiver('work', { receiveMode: 'receiveAndDelete' }), 1);
  expect(received.map((m) => m.body)).toEqual([body]);
});
