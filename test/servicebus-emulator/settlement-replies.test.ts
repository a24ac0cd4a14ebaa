/**
 * The emulator answers each settlement with its own outcome, also when settlements of one turn
 * succeed and fail side by side. (rhea writes one turn's answers as ranges of consecutive
 * deliveries and, for a range that starts with two, takes the first one's outcome for both.)
 */
import { LOCK_MS, receiveN, sleep, startHarness, uniqueId, type Harness } from './harness';

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
