/** Inventory: reserves the order's stock, all items or none (subscription inventory-sub). */
import { registerOrderConsumer } from '../src/bindings/orderConsumer';

registerOrderConsumer('inventoryConsumer', 'inventory');
