/** Billing: charges the order once through the simulated payment gateway (subscription billing-sub). */
import { registerOrderConsumer } from '../src/bindings/orderConsumer';

registerOrderConsumer('billingConsumer', 'billing');
