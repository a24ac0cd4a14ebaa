/** complete / abandon / defer / dead-letter / renew-lock, lock expiry and the dead-letter queue. */
import { isServiceBusError } from '@azure/service-bus';
import { LOCK_MS, receiveN, sleep, startHarness, uniqueId, type Harness } from './harness';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

// The SDK renews locks on its own by default; these tests need locks that lapse.
const billing = () => h.client.createReceiver('orders', 'billing-sub', { maxAutoLockRenewalDurationInMs: 0 });
const billingDlq = () => h.client.createReceiver('orders', 'billing-sub', { subQueueType: 'deadLetter' });

async function sendOrder(body: unknown = { orderId: 'o1' }): Promise<string> {
  const id = uniqueId();
  await h.client.createSender('orders').sendMessages({ body, messageId: id, applicationProperties: { target: 'billing' } });
  return id;
}

describe('complete', () => {
  it('removes the message for good', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.completeMessage(m);
    await sleep(LOCK_MS + 200);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
  });

  it('refuses a second settlement of the same lock', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.completeMessage(m);
    await expect(r.completeMessage(m)).rejects.toThrow();
  });
});

describe('abandon and the delivery count', () => {
  it('redelivers with the delivery count raised, then dead-letters at maxDeliveryCount', async () => {
    const id = await sendOrder();
    const r = billing();
    for (let attempt = 0; attempt < 3; attempt++) {
      const [m] = await receiveN(r, 1);
      expect(m.messageId).toBe(id);
      expect(m.deliveryCount).toBe(attempt);
      await r.abandonMessage(m);
    }
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [dead] = await receiveN(billingDlq(), 1);
    expect(dead.messageId).toBe(id);
    expect(dead.body).toEqual({ orderId: 'o1' });
    expect(dead.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    expect(dead.deadLetterSource).toBe('orders/Subscriptions/billing-sub');
    expect(dead.deliveryCount).toBe(3);
  });

  it('applies propertiesToModify on abandon', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.abandonMessage(m, { attempt: 'one' });
    const [again] = await receiveN(r, 1);
    expect(again.applicationProperties).toMatchObject({ target: 'billing', attempt: 'one' });
    await r.completeMessage(again);
  });
});

describe('lock expiry', () => {
  it('redelivers an unsettled message after the lock duration and rejects the stale lock', async () => {
    const id = await sendOrder();
    const r = billing();
    const [first] = await receiveN(r, 1);
    expect(first.deliveryCount).toBe(0);
    const t0 = Date.now();
    const [second] = await receiveN(r, 1, LOCK_MS * 3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(LOCK_MS - 200);
    expect(second.messageId).toBe(id);
    expect(second.deliveryCount).toBe(1);
    expect(second.lockToken).not.toBe(first.lockToken);
    const err = await r.completeMessage(first).then(() => undefined, (e: unknown) => e);
    expect(isServiceBusError(err) && err.code).toBe('MessageLockLost');
    await r.completeMessage(second);
  });

  it('dead-letters after maxDeliveryCount lock expiries', async () => {
    const id = await sendOrder();
    const r = billing();
    for (let i = 0; i < 3; i++) await receiveN(r, 1, LOCK_MS * 3);
    const [dead] = await receiveN(billingDlq(), 1, LOCK_MS * 3);
    expect(dead.messageId).toBe(id);
    expect(dead.deadLetterReason).toBe('MaxDeliveryCountExceeded');
  });
});

describe('renew-lock', () => {
  it('extends the lock so the message is not redelivered', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    const firstUntil = m.lockedUntilUtc!.getTime();
    await sleep(LOCK_MS * 0.6);
    const renewed = await r.renewMessageLock(m);
    expect(renewed.getTime()).toBeGreaterThan(firstUntil);
    await sleep(LOCK_MS * 0.6); // past the original lock, inside the renewed one
    expect(await h.client.createReceiver('orders', 'billing-sub').receiveMessages(1, { maxWaitTimeInMs: 100 })).toEqual([]);
    await r.completeMessage(m);
  });

  it('fails on a lost lock', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.completeMessage(m);
    const err = await r.renewMessageLock(m).then(() => undefined, (e: unknown) => e);
    expect(isServiceBusError(err) && err.code).toBe('MessageLockLost');
  });
});

describe('dead-letter', () => {
  it('moves the message with reason and description, and the DLQ copy can be completed', async () => {
    const id = await sendOrder({ orderId: 'o9' });
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.deadLetterMessage(m, { deadLetterReason: 'PaymentDeclined', deadLetterErrorDescription: 'card expired' });
    const dlq = billingDlq();
    const [dead] = await receiveN(dlq, 1);
    expect(dead.messageId).toBe(id);
    expect(dead.body).toEqual({ orderId: 'o9' });
    expect(dead.deadLetterReason).toBe('PaymentDeclined');
    expect(dead.deadLetterErrorDescription).toBe('card expired');
    expect(dead.deadLetterSource).toBe('orders/Subscriptions/billing-sub');
    expect(dead.applicationProperties).toMatchObject({ target: 'billing' });
    await dlq.completeMessage(dead);
    await sleep(LOCK_MS + 200);
    expect(await dlq.peekMessages(5)).toHaveLength(0);
    expect(await r.peekMessages(5)).toHaveLength(0);
  });

  it('keeps the delivery count a message was dead-lettered with when it is abandoned or its lock runs out in the DLQ, as Service Bus does', async () => {
    // Service Bus counts no deliveries in a dead-letter queue (the SDK's live tests: a dead-lettered
    // message abandoned there is received again with deliveryCount 0).
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.abandonMessage(m);
    const [again] = await receiveN(r, 1);
    await r.deadLetterMessage(again, { deadLetterReason: 'Poison', deadLetterErrorDescription: 'bad body' });
    const dlq = h.client.createReceiver('orders', 'billing-sub', { subQueueType: 'deadLetter', maxAutoLockRenewalDurationInMs: 0 });
    const [first] = await receiveN(dlq, 1);
    expect(first.deliveryCount).toBe(1);
    await dlq.abandonMessage(first);
    const [abandoned] = await receiveN(dlq, 1);
    expect(abandoned.deliveryCount).toBe(1);
    const [expired] = await receiveN(dlq, 1, LOCK_MS * 3); // its lock ran out
    expect(expired.deliveryCount).toBe(1);
    const [peeked] = await dlq.peekMessages(1);
    expect(peeked.deliveryCount).toBe(1);
    await dlq.completeMessage(expired);
  });

  it('refuses to dead-letter a message in the DLQ, which stays there, as Service Bus does', async () => {
    // Service Bus answers InvalidOperationError (code GeneralError in SDK 7) and keeps the message.
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.deadLetterMessage(m, { deadLetterReason: 'Poison', deadLetterErrorDescription: 'bad body' });
    const dlq = h.client.createReceiver('orders', 'billing-sub', { subQueueType: 'deadLetter', maxAutoLockRenewalDurationInMs: 0 });
    const [dead] = await receiveN(dlq, 1);
    await expect(dlq.deadLetterMessage(dead, { deadLetterReason: 'Again', deadLetterErrorDescription: 'still bad' })).rejects.toMatchObject({ code: 'GeneralError' });
    // Still there: received again once the lock it kept ran out.
    const [again] = await receiveN(dlq, 1, LOCK_MS * 3);
    expect([again.messageId, again.deadLetterReason]).toEqual([m.messageId, 'Poison']);
    // Deferred and received by sequence number: settled through the management link, refused the same way.
    await dlq.deferMessage(again);
    const [deferred] = await dlq.receiveDeferredMessages(again.sequenceNumber!);
    await expect(dlq.deadLetterMessage(deferred, { deadLetterReason: 'Again', deadLetterErrorDescription: 'still bad' })).rejects.toMatchObject({ code: 'GeneralError' });
    await dlq.completeMessage(deferred);
    expect(await dlq.peekMessages(5)).toHaveLength(0);
  });

  it('resubmits from the DLQ: a copy with a new message id reaches the subscription again', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.deadLetterMessage(m, { deadLetterReason: 'x', deadLetterErrorDescription: 'resubmit test' });
    const dlq = billingDlq();
    const [dead] = await receiveN(dlq, 1);
    await h.client.createSender('orders').sendMessages({ body: dead.body, messageId: uniqueId('resubmit'), applicationProperties: { target: 'billing' } });
    await dlq.completeMessage(dead);
    const [back] = await receiveN(r, 1);
    expect(back.body).toEqual({ orderId: 'o1' });
    expect(back.deliveryCount).toBe(0);
  });
});

describe('defer', () => {
  it('hides a deferred message until received by sequence number', async () => {
    await sendOrder({ orderId: 'deferred' });
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.deferMessage(m);
    await sleep(LOCK_MS + 200);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [peeked] = await h.client.createReceiver('orders', 'billing-sub').peekMessages(1);
    expect(peeked.state).toBe('deferred');
    const [d] = await r.receiveDeferredMessages(m.sequenceNumber!);
    expect(d.body).toEqual({ orderId: 'deferred' });
    expect(d.lockToken).toBeDefined();
    await r.completeMessage(d);
    expect(await h.client.createReceiver('orders', 'billing-sub').peekMessages(5)).toHaveLength(0);
  });

  it('counts a deferral as a delivery, as Service Bus does', async () => {
    // Service Bus raises the delivery count when a locked message is deferred, like an abandon:
    // received with 0, deferred, received by sequence number with 1, deferred again, then 2.
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    expect(m.deliveryCount).toBe(0);
    await r.deferMessage(m);
    const [once] = await r.receiveDeferredMessages(m.sequenceNumber!);
    expect(once.deliveryCount).toBe(1);
    await r.deferMessage(once);
    const [peeked] = await h.client.createReceiver('orders', 'billing-sub').peekMessages(1);
    expect(peeked.deliveryCount).toBe(2);
    const [twice] = await r.receiveDeferredMessages(m.sequenceNumber!);
    expect(twice.deliveryCount).toBe(2);
    await r.completeMessage(twice);
  });

  it('dead-letters a deferred message through the management link', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.deferMessage(m);
    const [d] = await r.receiveDeferredMessages([m.sequenceNumber!]);
    await r.deadLetterMessage(d, { deadLetterReason: 'Stuck', deadLetterErrorDescription: 'deferred too long' });
    const [dead] = await receiveN(billingDlq(), 1);
    expect(dead.deadLetterReason).toBe('Stuck');
  });

  it('refuses an unknown sequence number', async () => {
    const r = billing();
    await expect(r.receiveDeferredMessages(12345 as never)).rejects.toThrow();
  });
});

describe('settlement after the receiver is closed', () => {
  it('completes through the management link while the lock is held', async () => {
    await sendOrder();
    const r = billing();
    const [m] = await receiveN(r, 1);
    await r.close();
    const other = billing();
    await other.completeMessage(m); // the SDK falls back to $management update-disposition
    await sleep(LOCK_MS + 300);
    expect(await other.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
  });

  it('keeps the lock of a closed link until it expires, then redelivers', async () => {
    await sendOrder();
    const r = billing();
    await receiveN(r, 1);
    await r.close();
    const other = billing();
    expect(await other.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [again] = await receiveN(other, 1, LOCK_MS * 3);
    expect(again.deliveryCount).toBe(1);
    await other.completeMessage(again);
  });
});

it('DLQ receivers see a message per subscription independently', async () => {
  const id = uniqueId();
  await h.client.createSender('orders').sendMessages({ body: 1, messageId: id });
  const inv = h.client.createReceiver('orders', 'inventory-sub');
  const [m] = await receiveN(inv, 1);
  await inv.deadLetterMessage(m, { deadLetterReason: 'inv', deadLetterErrorDescription: 'per-subscription test' });
  expect(await billingDlq().peekMessages(5)).toHaveLength(0);
  const [dead] = await receiveN(h.client.createReceiver('orders', 'inventory-sub', { subQueueType: 'deadLetter' }), 1);
  expect(dead.messageId).toBe(id);
});
