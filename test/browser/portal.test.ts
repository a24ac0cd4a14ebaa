/**
 * The reference demo in a browser: the support portal, served by the app, driving the whole local
 * system exactly as `npm start` runs it (both emulators and the Functions host, real ports).
 * Debian's Chromium through playwright-core; no browser download. Needs a build (`npm test`
 * builds first). Screenshots go to test-artifacts/browser/.
 */
import { join } from 'node:path';
import { HttpRequest, type HttpResponseInit } from '@azure/functions';
import { chromium, type BrowserContext, type Page, type Route } from 'playwright-core';
import { authorizeSupportRequest } from '../../src/support/routes';
import { ServiceBusClient } from '@azure/service-bus';
import type { RunningService } from '../../local/service-process';
import { serviceBusConnectionString } from '../../local/stack';
import { ORDERS_TOPIC } from '../../src/topology';
import { ARTIFACTS, CHROMIUM, startPortalSystem, type PortalSystem } from '../support/portalSystem';
import { commandLine, descendantPids, whileStopped } from '../support/processes';

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const SUPPORT_PRINCIPAL = 'support@localhost';

/**
 * The monitor's timings for this run. The automatic requeue waits long enough that the demo's
 * "switch off, requeue from the portal" is done by a person first, and gives up after one
 * requeue so an order whose billing never recovers is cancelled within a minute.
 */
const MONITOR_SETTINGS = {
  MONITOR_MAX_BILLING_REQUEUES: '1',
  MONITOR_REQUEUE_BACKOFF_SECONDS: '30',
  MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: '30',
  MONITOR_POLL_MIN_SECONDS: '1',
  MONITOR_POLL_MAX_SECONDS: '3',
  MONITOR_COMPENSATION_FIRST_RETRY_SECONDS: '1',
  MONITOR_COMPENSATION_MAX_RETRY_SECONDS: '2',
};

/**
 * Inventory takes a second, so billing has charged before an out-of-stock order's inventory fails
 * and compensation has a payment to refund.
 */
const INVENTORY_LATENCY_MS = '1000';

/** Per-order fault injection that outlasts every delivery and the one automatic requeue. */
const BILLING_NEVER_RECOVERS = '10';

let running: PortalSystem | undefined;
let system: RunningService | undefined;
let api = '';
let context: BrowserContext | undefined;
let page: Page;
let scratch = '';
let serviceBusPort = '';

/** Writes a screenshot at both widths; the desktop one is taken last so the page stays at 1280. */
async function screenshots(name: string): Promise<void> {
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(200);
  await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize(DESKTOP);
  await page.waitForTimeout(200);
  await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`) });
}

/** Runs a scenario; when it fails, keeps a screenshot and the system's last output with the error. */
async function scenario(name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    await page?.screenshot({ path: join(ARTIFACTS, `failed-${name}.png`), fullPage: true }).catch(() => undefined);
    const output = system?.output().slice(-4000) ?? '';
    (error as Error).message += `\n--- order system output (last 4000 chars) ---\n${output}`;
    throw error;
  }
}

const lane = (service: string, status: string) =>
  page.locator(`#detail-lanes .lane[data-service="${service}"][data-status="${status}"]`);
const focusedId = (): Promise<string> => page.evaluate('document.activeElement ? document.activeElement.id : ""');
const detailState = (state: string) => page.locator(`#detail-state [data-status="${state}"]`);

/** Places an order from the form and returns its id, read from the link the form shows. */
async function placeOrderFromPortal(options: { quantity?: number; billingFailures?: string } = {}): Promise<string> {
  await page.locator('#item-sku-1 option:not([value=""])').first().waitFor({ state: 'attached' });
  await page.getByLabel('Quantity').first().fill(String(options.quantity ?? 1));
  if (options.billingFailures !== undefined) {
    await page.getByLabel('Billing fails on the first attempts (count)').fill(options.billingFailures);
  }
  await page.getByRole('button', { name: 'Place order' }).click();
  const link = page.locator('#order-form-status a');
  await link.waitFor({ timeout: 15_000 });
  const href = (await link.getAttribute('href')) ?? '';
  const orderId = decodeURIComponent(href.replace('#/orders/', ''));
  expect(orderId).not.toBe('');
  // The portal shows the new order right away.
  await page.locator('#detail-heading', { hasText: orderId.slice(0, 8) }).waitFor();
  return orderId;
}

async function openOrder(orderId: string): Promise<void> {
  await page.locator(`#order-rows tr[data-order-id="${orderId}"] a`).click();
  await page.locator('#detail-heading', { hasText: orderId.slice(0, 8) }).waitFor();
}

async function timelineText(): Promise<string> {
  return (await page.locator('#detail-timeline').innerText()).replace(/\s+/g, ' ');
}

beforeAll(async () => {
  running = await startPortalSystem('portal-browser', {
    FAULT_INJECTION_ENABLED: 'true',
    SUPPORT_DEV_PRINCIPAL: SUPPORT_PRINCIPAL,
    ...MONITOR_SETTINGS,
    INVENTORY_LATENCY_MS,
  });
  ({ system, api, scratch, serviceBusPort } = running);

  context = await chromium.launchPersistentContext(join(scratch, 'chromium-profile'), {
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: DESKTOP,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
}, 180_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await running?.stop();
}, 60_000);

describe('support portal (reference demo, end to end)', () => {
  it('is served by the app: /api/portal leads to the page, unknown and escaping paths are 404', async () => {
    const bare = await fetch(`${api}/portal`, { redirect: 'manual' });
    expect([301, 302, 307, 308]).toContain(bare.status);
    expect(new URL(bare.headers.get('location') ?? '', api).pathname).toBe('/api/portal/');

    const index = await fetch(`${api}/portal/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    // Every asset is the app's own, referenced relatively so it works below /api/portal/.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const script = /src="(app\.js[^"]*)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const js = await fetch(`${api}/portal/${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);

    for (const bad of ['..%2F..%2Fpackage.json', '%2e%2e/%2e%2e/host.json', 'no-such-file.js']) {
      expect((await fetch(`${api}/portal/${bad}`)).status).toBe(404);
    }
  });

  it('places an order that completes, with all three services done', async () => {
    await scenario('order-completes', async () => {
      await page.goto(`${api}/portal`);
      expect(new URL(page.url()).pathname).toBe('/api/portal/');
      await page.locator('#inventory-rows tr').first().waitFor();

      const orderId = await placeOrderFromPortal();
      await detailState('completed').waitFor({ timeout: 45_000 });
      for (const service of ['inventory', 'billing', 'notification']) {
        await lane(service, 'done').waitFor();
      }
      await page.locator('#detail-notifications', { hasText: 'confirmation' }).waitFor();
      const charged = await page.locator('#detail-payment .term', { hasText: 'Charged' }).locator('dd').innerText();
      const total = await page.locator('#detail-summary .term', { hasText: 'Total' }).locator('dd').innerText();
      expect(charged).toBe(total);
      // The list shows the same outcome at a glance.
      await page.locator(`#order-rows tr[data-order-id="${orderId}"][data-state="completed"]`).waitFor();
      await screenshots('1-order-completed');
    });
  }, 90_000);

  it('shows an API problem as its detail when the order is refused', async () => {
    await scenario('problem-shown', async () => {
      await page.getByLabel('Customer id').fill('   ');
      await page.getByRole('button', { name: 'Place order' }).click();
      const alert = page.locator('#order-form-error[role="alert"]');
      await alert.locator('.problem').waitFor();
      expect(await alert.innerText()).toMatch(/\(400\)/);
      // The field in the form's own words, not the API's path.
      expect(await alert.innerText()).toMatch(/Customer id: must be a non-empty string/);
      // Not the API's paths a second time above them.
      expect(await alert.locator('.problem__detail').innerText()).toBe('the order is not valid');
      await page.getByLabel('Customer id').fill('customer-1');
    });
  }, 30_000);

  it("finds an order by its id, and lists one customer's orders", async () => {
    await scenario('find', async () => {
      const place = async (customerId: string): Promise<string> => {
        const res = await fetch(`${api}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ customerId, items: [{ sku: 'MOUSE-01', quantity: 1 }] }),
        });
        expect(res.status).toBe(202);
        return ((await res.json()) as { orderId: string }).orderId;
      };
      const customer = `customer-find-${Date.now()}`;
      const theirs = [await place(customer), await place(customer)];
      const other = await place('customer-someone-else');
      await page.goto(`${api}/portal/`);

      const find = page.getByLabel('Find an order or a customer');
      await find.fill(customer);
      await find.press('Enter');
      await page.locator('#orders-summary', { hasText: `2 orders of ${customer}` }).waitFor();
      const listed = await page.locator('#order-rows tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-order-id')));
      expect(listed).toEqual([theirs[1], theirs[0]]);
      await screenshots('6-find-customer');

      // An order id opens the order, whoever's it is.
      await find.fill(other);
      await page.getByRole('button', { name: 'Find', exact: true }).click();
      await page.locator('#detail-heading', { hasText: other.slice(0, 8) }).waitFor();
      expect(new URL(page.url()).hash).toBe(`#/orders/${other}`);

      // Pasted in capitals (as some mail clients show ids), it opens the same order under its own id.
      await find.fill(theirs[0]!.toUpperCase());
      await find.press('Enter');
      await page.locator('#detail-heading', { hasText: theirs[0]!.slice(0, 8) }).waitFor();
      expect(new URL(page.url()).hash).toBe(`#/orders/${theirs[0]}`);

      // Opening an order by its id stops listing the customer asked for before.
      await page.locator(`#order-rows tr[data-order-id="${other}"]`).waitFor();
      expect(await page.locator('#orders-summary').innerText()).not.toContain(' of ');
      expect(await page.getByRole('button', { name: 'All customers' }).isHidden()).toBe(true);

      // The short id the portal shows opens a listed order.
      await find.fill(theirs[1]!.slice(0, 8));
      await find.press('Enter');
      await page.locator('#detail-heading', { hasText: theirs[1]!.slice(0, 8) }).waitFor();
      expect(new URL(page.url()).hash).toBe(`#/orders/${theirs[1]}`);

      // An id that names no order says so, instead of an unexplained empty customer list.
      const unknown = '00000000-0000-4000-8000-000000000000';
      await find.fill(unknown);
      await find.press('Enter');
      await page.locator('#find-note', { hasText: `No order has the id ${unknown}` }).waitFor();
      await page.locator('#orders-summary', { hasText: `0 orders of ${unknown}` }).waitFor();

      // And after an id that named no order, too.
      await find.fill(other);
      await find.press('Enter');
      await page.locator('#detail-heading', { hasText: other.slice(0, 8) }).waitFor();
      await page.locator(`#order-rows tr[data-order-id="${theirs[0]}"]`).waitFor();
      expect(await page.locator('#orders-summary').innerText()).not.toContain(' of ');
      expect(await page.locator('#find-note').innerText()).toBe('');
    });
  }, 60_000);

  let neverRecovers = '';
  let deadLettered = '';

  it('with the billing switch on, billing dead-letters while inventory and notification finish; switch off and requeue, and it completes', async () => {
    await scenario('requeue-recovers', async () => {
      // An order whose own billing never recovers, placed now so the monitor works on it meanwhile.
      neverRecovers = await placeOrderFromPortal({ billingFailures: BILLING_NEVER_RECOVERS });
      await page.getByLabel('Billing fails on the first attempts (count)').fill('0');

      const billingSwitch = page.getByRole('switch', { name: 'Billing fails' });
      await billingSwitch.click();
      await page.locator('#billing-switch[aria-checked="true"]').waitFor();

      deadLettered = await placeOrderFromPortal();
      await lane('billing', 'deadlettered').waitFor({ timeout: 45_000 });
      await lane('inventory', 'done').waitFor({ timeout: 20_000 });
      await lane('notification', 'done').waitFor({ timeout: 20_000 });
      expect(await timelineText()).toMatch(/dead-lettered · billing/);

      // The dead-lettered filter finds it.
      await page.getByLabel('Billing dead-lettered').check();
      await page.locator(`#order-rows tr[data-order-id="${deadLettered}"]`).waitFor();
      await screenshots('2-billing-deadlettered');
      await page.getByLabel('Billing dead-lettered').uncheck();

      // Compensate asks first; Escape declines and returns focus to the button, nothing is sent.
      const compensate = page.getByRole('button', { name: 'Compensate' });
      await compensate.click();
      await page.locator('#confirm-dialog[open]').waitFor();
      expect(await focusedId()).toBe('confirm-cancel');
      await page.keyboard.press('Escape');
      await page.locator('#confirm-dialog:not([open])').waitFor({ state: 'attached' });
      expect(await focusedId()).toBe('action-compensate');
      expect(await page.locator('#action-status').innerText()).toBe('');

      await billingSwitch.click();
      await page.locator('#billing-switch[aria-checked="false"]').waitFor();

      // What a screen reader hears: the polite live region, recorded from here on.
      await page.evaluate(`(() => {
        const region = document.getElementById('announcer');
        window.announced = [];
        new MutationObserver(() => window.announced.push(region.textContent))
          .observe(region, { childList: true, characterData: true, subtree: true });
      })()`);

      await page.getByRole('button', { name: 'Requeue' }).click();
      await page.locator('#confirm-dialog[open]').waitFor();
      await screenshots('3-requeue-confirmation');
      await page.locator('#confirm-ok').click();
      await page.locator('#action-status', { hasText: 'accepted' }).waitFor();
      expect(await page.locator('#action-error').innerText()).toBe('');

      await detailState('completed').waitFor({ timeout: 45_000 });
      await lane('billing', 'done').waitFor();
      // The Requeue button had focus back from the dialog; disabled now, it hands focus to the
      // action's result rather than lose it to the page.
      expect(await focusedId()).toBe('action-status');
      // Done: the dead-letter's reason no longer applies, and the count covers every message's
      // deliveries (three before the dead-letter, at least one after the requeue).
      const billingLane = await lane('billing', 'done').innerText();
      expect(billingLane).not.toMatch(/Reason/);
      expect(Number(/Deliveries: (\d+)/.exec(billingLane)?.[1])).toBeGreaterThanOrEqual(4);
      const timeline = await timelineText();
      expect(timeline).toMatch(/requeue/);
      expect(timeline).toContain(`by ${SUPPORT_PRINCIPAL}`);
      // The request is listed with what became of it.
      const request = page.locator('#detail-requests .request[data-action="requeue"]');
      expect(await request.getAttribute('data-outcome')).toBe('carried-out');
      expect(await request.innerText()).toMatch(/^Requeue · by support@localhost at [\s\S]*Carried out at [\s\S]*billing requeued \(attempt \d+, message /);
      const announced: string[] = await page.evaluate('window.announced');
      expect(announced.join(' | ')).toMatch(new RegExp(`${deadLettered.slice(0, 8)}[^|]*completed`));
      await screenshots('4-requeued-completed');
    });
  }, 150_000);

  it('an order whose billing never recovers ends cancelled, with its compensation shown', async () => {
    await scenario('never-recovers', async () => {
      expect(neverRecovers).not.toBe('');
      await openOrder(neverRecovers);
      await detailState('cancelled').waitFor({ timeout: 120_000 });
      await page.locator('#detail-notifications', { hasText: 'cancellation' }).waitFor();
      const net = await page.locator('#detail-payment .term', { hasText: 'Net' }).locator('dd').innerText();
      expect(net).toMatch(/^\D*0[.,]00\D*$/);
      expect(await timelineText()).toMatch(/compensation/);
      // Cancelled orders are offered neither action, and the hint says why.
      expect(await page.getByRole('button', { name: 'Compensate' }).isDisabled()).toBe(true);
      expect(await page.getByRole('button', { name: 'Requeue' }).isDisabled()).toBe(true);
      expect(await page.locator('#action-hint').innerText()).toBe('Requeue: the order is cancelled. Compensate: the order is cancelled.');
      await screenshots('5-never-recovers-cancelled');
    });
  }, 150_000);

  it('lists a message the consumers could not read, once per subscription, with why', async () => {
    await scenario('unreadable-message', async () => {
      const messageId = `unreadable-${Date.now()}`;
      const client = new ServiceBusClient(serviceBusConnectionString(serviceBusPort));
      try {
        const sender = client.createSender(ORDERS_TOPIC);
        // Eight more first, so that with three copies each there are more than one screenful.
        for (let i = 0; i < 8; i++) await sender.sendMessages({ body: `not json ${i}`, messageId: `${messageId}-extra-${i}` });
        await sender.sendMessages({ body: '{"specversion": "1.0", "type": "OrderCreated", "data": {', messageId, contentType: 'application/json' });
        await sender.close();
      } finally {
        await client.close();
      }
      await page.goto(`${api}/portal/`);
      const entries = page.locator(`#parked-rows li[data-message-id="${messageId}"]`);
      // Each of the three subscriptions dead-letters its copy after its deliveries.
      await entries.nth(2).waitFor({ timeout: 60_000 });
      expect(await entries.count()).toBe(3);
      const text = (await entries.allInnerTexts()).join('\n');
      for (const subscription of ['inventory-sub', 'billing-sub', 'notification-sub']) expect(text).toContain(subscription);
      expect(text).toMatch(/Unreadable: .*JSON/i);
      expect(text).toMatch(/Dead-lettered: MaxDeliveryCountExceeded/);
      await screenshots('6-unreadable-message');

      // The newest 20 are shown; the older ones are a click away.
      await page.locator('#parked-summary', { hasText: 'The newest 20 are shown.' }).waitFor({ timeout: 60_000 });
      await page.getByRole('button', { name: 'Show more' }).click();
      await page.locator('#parked-summary', { hasText: '27 kept.' }).waitFor({ timeout: 30_000 });
      expect(await page.locator('#parked-rows li').count()).toBe(27);
      expect(await page.getByRole('button', { name: 'Show more' }).isHidden()).toBe(true);
    });
  }, 90_000);

  it('says in the header how many orders need a person and lists them on a click; with the refunds fixed, compensating again cancels the order', async () => {
    await scenario('attention', async () => {
      await page.goto(`${api}/portal/`);
      const refundSwitch = page.getByRole('switch', { name: 'Refunds fail' });
      await refundSwitch.click();
      await page.locator('#refund-switch[aria-checked="true"]').waitFor();
      expect(await page.locator('#refund-switch-note').innerText()).toContain('Every refund throws');
      let orderId = '';
      try {
        // Out of stock after billing charged: compensation must refund, and the refund keeps failing.
        const placed = await fetch(`${api}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ customerId: 'customer-attention', items: [{ sku: 'LIMITED-EDITION', quantity: 1000 }] }),
        });
        expect(placed.status).toBe(202);
        orderId = ((await placed.json()) as { orderId: string }).orderId;
        const deadline = Date.now() + 60_000;
        let state = '';
        while (Date.now() < deadline && !['attention', 'cancelled', 'completed'].includes(state)) {
          await new Promise((r) => setTimeout(r, 500));
          state = ((await (await fetch(`${api}/orders/${orderId}`)).json()) as { state: string }).state;
        }
        expect(state).toBe('attention');
      } catch (error) {
        await fetch(`${api}/support/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"refundFails":false}' });
        throw error;
      }

      // Someone else's orders are listed when the count is clicked: it lists every customer's.
      const find = page.getByLabel('Find an order or a customer');
      await find.fill('customer-someone-else');
      await find.press('Enter');
      await page.locator('#orders-summary', { hasText: 'of customer-someone-else' }).waitFor();
      const count = page.locator('#attention-count');
      await count.filter({ hasText: '1 order needs attention' }).waitFor();
      await screenshots('7-attention-count');
      await count.click();
      expect(await page.getByLabel('Needs attention').isChecked()).toBe(true);
      expect(await focusedId()).toBe('orders-heading');
      await page.locator(`#order-rows tr[data-order-id="${orderId}"][data-state="attention"]`).waitFor();
      expect(await page.locator('#order-rows tr').count()).toBe(1);
      expect(await find.inputValue()).toBe('');

      // The cause fixed, support compensates again: the dialog says what that does now.
      await refundSwitch.click();
      await page.locator('#refund-switch[aria-checked="false"]').waitFor();
      await openOrder(orderId);
      await page.getByRole('button', { name: 'Compensate' }).click();
      await page.locator('#confirm-dialog[open]').waitFor();
      expect(await page.locator('#confirm-title').innerText()).toBe(`Compensate order ${orderId.slice(0, 8)} again?`);
      expect(await page.locator('#confirm-message').innerText()).toContain('those already done are not repeated');
      await page.locator('#confirm-ok').click();
      await detailState('cancelled').waitFor({ timeout: 60_000 });
      // Nobody asked before; this request began the second run.
      const requests = page.locator('#detail-requests .request');
      expect(await requests.count()).toBe(1);
      expect(await requests.getAttribute('data-outcome')).toBe('carried-out');
      expect(await requests.innerText()).toMatch(/^Compensate · by [\s\S]*Carried out at [\s\S]*compensation began \(run 2\)/);
      const refunded = await page.locator('#detail-payment .term', { hasText: 'Refunded' }).locator('dd').innerText();
      expect(refunded).not.toMatch(/^\D*0[.,]00\D*$/);
    });
  }, 150_000);

  it('signed out where App Service Authentication is on, says so and links to the sign-in that comes back here', async () => {
    await scenario('signed-out', async () => {
      // The support routes' own answer to nobody signed in, where App Service Authentication is on.
      const nobody = authorizeSupportRequest(new HttpRequest({ method: 'GET', url: `${api}/orders` }), { appServiceAuthEnabled: true }) as HttpResponseInit;
      const signedOut = (route: Route) =>
        route.fulfill({ status: nobody.status, contentType: 'application/problem+json', body: JSON.stringify(nobody.jsonBody) });
      await page.route(/\/api\/orders\?/, signedOut);
      await page.route(/\/api\/support\//, signedOut);
      try {
        await page.goto(`${api}/portal/#/orders/abc`);
        await page.locator('#connection', { hasText: 'Signed out' }).waitFor({ timeout: 20_000 });
        const link = page.locator('#connection-error a', { hasText: 'Sign in' });
        expect(await link.getAttribute('href')).toBe(`/.auth/login/aad?post_login_redirect_uri=${encodeURIComponent('/api/portal/#/orders/abc')}`);
        expect(await page.locator('#connection-error').innerText()).toContain('sign in with an account that has the support role');
        // Where the orders would be, the list says whose they are, with the same way in.
        const listed = page.locator('#orders-summary', { hasText: 'Orders are listed for support staff only' });
        await listed.waitFor();
        expect(await listed.locator('a', { hasText: 'Sign in' }).getAttribute('href')).toBe(await link.getAttribute('href'));
        await screenshots('9-signed-out');
      } finally {
        await page.unrouteAll();
      }
      await page.goto(`${api}/portal/`);
      await page.locator('#connection', { hasText: 'Live' }).waitFor({ timeout: 30_000 });
      expect(await page.locator('#connection-error a').count()).toBe(0);
    });
  }, 90_000);

  it('while Cosmos DB does not answer, says what could not be loaded instead of "Loading", and recovers by itself', async () => {
    await scenario('cosmos-outage', async () => {
      // The stand-in `npm start` runs, stopped (SIGSTOP): connections stay open and nothing answers.
      const cosmos = descendantPids(system!.pid).find((pid) => commandLine(pid).includes('cosmos-emulator'));
      expect(cosmos).toBeDefined();
      await whileStopped(cosmos!, async () => {
        await page.goto(`${api}/portal/`);
        await page.locator('#connection', { hasText: 'Not updating' }).waitFor({ timeout: 40_000 });
        await page.locator('#orders-summary', { hasText: 'The orders could not be loaded yet; trying again.' }).waitFor();
        await page.locator('#inventory-empty', { hasText: 'The stock could not be loaded yet; trying again.' }).waitFor();
        await page.locator('#item-sku-1 option', { hasText: 'Products could not be loaded yet' }).waitFor({ state: 'attached' });
        await page.locator('#parked-error', { hasText: 'Could not load the unreadable messages' }).waitFor();
        expect(await page.locator('#parked-summary').innerText()).toBe('');
        expect(await page.locator('#connection-error').innerText()).toContain('Orders are not updating');
        await screenshots('8-cosmos-not-answering');
      });
      await page.locator('#connection', { hasText: 'Live' }).waitFor({ timeout: 30_000 });
      await page.locator('#orders-summary', { hasText: 'newest first' }).waitFor();
      await page.locator('#item-sku-1 option:not([value=""])').first().waitFor({ state: 'attached' });
      expect(await page.locator('#inventory-empty').isHidden()).toBe(true);
    });
  }, 120_000);

  it('while Service Bus does not answer, an order placed is shown as recorded, and placing it again retries that order', async () => {
    await scenario('servicebus-outage', async () => {
      await page.goto(`${api}/portal/`);
      await page.locator('#inventory-rows tr').first().waitFor();
      await page.locator('#item-sku-1 option:not([value=""])').first().waitFor({ state: 'attached' });
      await page.getByLabel('Customer id').fill('customer-sb-outage');
      await page.getByLabel('Quantity').first().fill('1');
      const serviceBus = descendantPids(system!.pid).find((pid) => commandLine(pid).includes('servicebus-emulator'));
      expect(serviceBus).toBeDefined();
      const alert = page.locator('#order-form-error[role="alert"]');
      const orderId = await whileStopped(serviceBus!, async () => {
        await page.getByRole('button', { name: 'Place order' }).click();
        await alert.locator('.problem').waitFor({ timeout: 20_000 });
        const text = (await alert.innerText()).replace(/\s+/g, ' ');
        expect(text).toMatch(/was recorded but not all of it went through yet \(503\)/);
        expect(text).toContain('Place order again retries this order');
        const href = (await alert.locator('a').getAttribute('href')) ?? '';
        const id = decodeURIComponent(href.replace('#/orders/', ''));
        expect(text).toContain(`Show order ${id.slice(0, 8)}`);
        // The recorded order is shown at once.
        await page.locator('#detail-heading', { hasText: id.slice(0, 8) }).waitFor();
        await page.locator('#detail-timeline', { hasText: 'publish failed' }).waitFor();
        await screenshots('9-servicebus-not-answering');
        return id;
      });
      // Service Bus answers again: placing again answers with the same order, which completes.
      await page.getByRole('button', { name: 'Place order' }).click();
      const link = page.locator('#order-form-status a');
      await link.waitFor({ timeout: 15_000 });
      expect(decodeURIComponent(((await link.getAttribute('href')) ?? '').replace('#/orders/', ''))).toBe(orderId);
      expect(await alert.innerText()).toBe('');
      await detailState('completed').waitFor({ timeout: 45_000 });
      const placed = (await (await fetch(`${api}/orders?customerId=customer-sb-outage`)).json()) as { orders: { id: string }[] };
      expect(placed.orders.map((o: { id: string }) => o.id)).toEqual([orderId]);
    });
  }, 120_000);
});
