import { InvocationContext } from '@azure/functions';
import { anyOf, stateCondition, statusCondition } from '../../src/azure/orderRepository';
import { deliveryFrom } from '../../src/bindings/serviceBusDelivery';

describe('deliveryFrom (Service Bus trigger metadata)', () => {
  it('reads delivery count, message id and the snake_case contract properties as the host passes them', () => {
    const context = new InvocationContext({
      triggerMetadata: {
        deliveryCount: 2,
        messageId: 'ev-1',
        applicationProperties: { event_type: 'OrderCreated', order_id: 'o-1', correlation_id: 'c-1' },
      },
    });
    expect(deliveryFrom('{"x":1}', context)).toEqual({ body: '{"x":1}', messageId: 'ev-1', deliveryCount: 2, correlationId: 'c-1', orderId: 'o-1' });
  });

  it('treats missing metadata as a first delivery without ids', () => {
    expect(deliveryFrom({}, new InvocationContext({}))).toEqual({
      body: {},
      messageId: undefined,
      deliveryCount: 1,
      correlationId: undefined,
      orderId: undefined,
    });
  });
});

describe('patch conditions', () => {
  it('are all lower-case, as the Cosmos stand-in requires', () => {
    const claim = statusCondition({ service: 'billing', from: ['pending', 'deadlettered'], whenState: ['accepted', 'processing'] });
    expect(claim).toBe(
      "from c where (c.status.billing = 'pending' or c.status.billing = 'deadlettered') and (c.state = 'accepted' or c.state = 'processing')",
    );
    expect(stateCondition({ from: ['processing'], when: { inventory: ['done'], notification: ['done'] } })).toBe(
      "from c where (c.state = 'processing') and (c.status.inventory = 'done') and (c.status.notification = 'done')",
    );
  });

  it('hold the timeline to the length its writer read, when asked', () => {
    expect(stateCondition({ from: ['processing', 'compensating'], whenTimelineLength: 7 })).toBe(
      "from c where (c.state = 'processing' or c.state = 'compensating') and ARRAY_LENGTH(c.timeline) = 7",
    );
    expect(() => stateCondition({ from: ['processing'], whenTimelineLength: 1.5 })).toThrow(/not a timeline length/);
  });

  it('refuse values that could change the condition', () => {
    expect(() => anyOf('c.state', ["x' or 1=1 or c.state = 'y"])).toThrow(/not a safe condition literal/);
    expect(() => anyOf('c.state', ['Accepted'])).toThrow();
  });
});
