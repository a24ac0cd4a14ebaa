/** The support portal: wires the panels together, follows the URL hash, and keeps data live. */
import { isUuid } from '../../src/domain/orderId';
import { AttentionCount } from './attentionCount';
import { FaultSwitches } from './faultSwitches';
import { FindBox } from './findOrders';
import { InventoryTable } from './inventory';
import { Announcer, ConnectionLine, Poller } from './live';
import { OrderDetail } from './orderDetail';
import { OrderList } from './orderList';
import { ParkedMessages } from './parkedMessages';
import { PlaceOrderForm } from './placeOrder';

const ORDER_HASH = /^#\/orders\/(.+)$/;
/** Slower-moving data is refreshed every few ticks rather than every 1.5 s. */
const INVENTORY_EVERY = 3;
const FAULTS_EVERY = 4;
const ATTENTION_EVERY = 2;
const PARKED_EVERY = 4;

function orderIdFromHash(): string | undefined {
  const match = ORDER_HASH.exec(location.hash);
  if (!match) return undefined;
  try {
    const id = decodeURIComponent(match[1]!);
    // Orders get lower-case UUIDs, and the API reads one in capitals (from a mail client, say) as
    // the same order: so does the portal, which then marks that order in the list too.
    return isUuid(id) ? id.toLowerCase() : id;
  } catch {
    // A link cut short inside a %-escape (a mail client wrapping it, say): the id as it stands is
    // shown as not found, rather than the whole page stopping at the exception.
    return match[1]!;
  }
}

function start(): void {
  const { announce } = new Announcer();
  const connection = new ConnectionLine();
  let ticks = 0;
  /** "Show more" under the unreadable messages: refreshed on the next tick, not four ticks on. */
  let parkedDue = false;

  const poller = new Poller(async () => {
    const everyTime = [orderList.refresh(), orderDetail.refresh()];
    const sometimes = [
      ticks % INVENTORY_EVERY === 0 ? inventory.refresh() : Promise.resolve(),
      ticks % ATTENTION_EVERY === 0 ? attention.refresh() : Promise.resolve(),
      ticks % FAULTS_EVERY === 0 ? faultSwitches.refresh() : Promise.resolve(),
      ticks % PARKED_EVERY === 0 || parkedDue ? parked.refresh() : Promise.resolve(),
    ];
    ticks += 1;
    parkedDue = false;
    const results = await Promise.allSettled([...everyTime, ...sometimes]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    connection.report(failed?.reason);
  });

  const orderList = new OrderList(announce, () => poller.now());
  const findBox = new FindBox(
    (orderId) => {
      location.hash = `#/orders/${encodeURIComponent(orderId)}`;
    },
    (customerId) => orderList.showCustomer(customerId),
    (prefix) => orderList.listedIdsStartingWith(prefix),
  );
  const orderDetail = new OrderDetail(announce, () => poller.now());
  const placeForm = new PlaceOrderForm((orderId) => {
    // Show the new order without moving focus away from the form the user is typing in.
    history.replaceState(null, '', `#/orders/${encodeURIComponent(orderId)}`);
    select(orderId, false);
  });
  // Every customer's: the count in the header is everyone's, whatever the find box holds.
  const attention = new AttentionCount(announce, () => {
    findBox.clear();
    orderList.showNeedingAttention();
  });
  const inventory = new InventoryTable(
    (items) => placeForm.setInventory(items),
    () => placeForm.setInventoryNotLoaded(),
  );
  const faultSwitches = new FaultSwitches(announce, (available) => placeForm.setSimulationAvailable(available));
  const parked = new ParkedMessages(() => {
    parkedDue = true;
    poller.now();
  });

  function select(orderId: string | undefined, focus: boolean): void {
    orderList.select(orderId);
    orderDetail.show(orderId, focus);
    poller.now();
  }

  window.addEventListener('hashchange', () => select(orderIdFromHash(), true));
  document.addEventListener('click', (event) => {
    const link = event.target instanceof Element ? event.target.closest<HTMLAnchorElement>('a[href^="#"]') : null;
    if (!link || event.defaultPrevented) return;
    const hash = new URL(link.href).hash;
    if (ORDER_HASH.test(hash)) {
      // A link to the order already shown (the form's "Show order" after placing it, a listed
      // order opened again) changes no hash, so no hashchange: take the person to it all the same.
      if (hash !== location.hash) return;
      event.preventDefault();
      select(orderIdFromHash(), true);
      return;
    }
    // An in-page link (the skip link) would put its target in the address in place of the order
    // shown, and so close that order: move focus to the target instead.
    const target = document.getElementById(hash.slice(1));
    if (!target) return;
    event.preventDefault();
    target.focus();
  });
  select(orderIdFromHash(), false);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
