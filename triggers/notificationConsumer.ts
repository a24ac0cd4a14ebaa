/** Notification: sends the order confirmation once (subscription notification-sub). */
import { registerOrderConsumer } from '../src/bindings/orderConsumer';

registerOrderConsumer('notificationConsumer', 'notification');
