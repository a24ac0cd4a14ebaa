/**
 * The portal on unusual data and in unusual moments, in Debian's Chromium through playwright-core
 * (needs a build), against the whole local system on free ports. Where Azure answers differently
 * from the local stand-ins (Cosmos DB's short pages of a cross-partition query), the page's
 * requests are answered in the browser.
 */
import { join } from 'node:path';
import { ServiceBusClient } from '@azure/service-bus';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serviceBusConnectionString } from '../../local/stack';
import { ORDERS_TOPIC } from '../../src/topology';
import { ARTIFACTS, CHROMIUM, startPortalSystem, type PortalSystem } from '../support/portalSystem';


let running: PortalSystem | undefined;
let api = '';
let browser: Browser | undefined;
let serviceBusPort = '';

async function place(customerId: string): Promise<string> {
  const response = await fetch(`${api}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ customerId, items: [{ sku: 'MOUSE-01', quantity: 1 }] }),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as { orderId: string }).orderId;
}

/** A page expression: whether keyboard focus is on the element with this id. */
const focusIsOn = (id: string): string => `document.activeElement !== null && document.activeElement.id === ${JSON.stringify(id)}`;

async function findCustomer(page: Page, customerId: string): Promise<void> {
  await page.getByLabel('Find an order or a customer').fill(customerId);
  await page.getByRole('button', { name: 'Find', exact: true }).click();
}

beforeAll(async () => {
  running = await startPortalSystem('portal-edge-cases', {
    SUPPORT_DEV_PRINCIPAL: 'support@localhost',
    // The monitor leaves a dead-lettered order to the people in the test.
    MONITOR_REQUEUE_BACKOFF_SECONDS: '600',
    MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: '600',
  });
  ({ api, serviceBusPort } = running);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
}, 180_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await running?.stop();
}, 60_000);

describe('addresses and links', () => {
  it('opens from a link cut short inside a %-escape, and says no such order', async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${api}/portal/#/orders/0b9af1c2-%E0%A4%A`);
    await page.locator('#orders-summary', { hasText: 'newest first' }).waitFor({ timeout: 15_000 });
    await page.locator('#detail-error', { hasText: 'no order' }).waitFor();
    expect(errors).toEqual([]);
    await page.close();
  }, 30_000);

  it('a link with the order id in capitals shows that order, marked in the list', async () => {
    const orderId = await place('customer-capitals');
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/#/orders/${orderId.toUpperCase()}`);
    await page.locator(`#order-rows tr[data-order-id="${orderId}"][aria-current="true"]`).waitFor({ timeout: 10_000 });
    expect(await page.locator('#detail-heading').innerText()).toContain(orderId.slice(0, 8));
    await page.close();
  }, 30_000);

  it('"Show order" after placing an order takes keyboard focus to that order', async () => {
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/`);
    await page.locator('#item-sku-1 option:not([value=""])').first().waitFor({ state: 'attached' });
    await page.getByRole('button', { name: 'Place order' }).click();
    const link = page.locator('#order-form-status a');
    await link.waitFor({ timeout: 15_000 });
    const orderId = decodeURIComponent(((await link.getAttribute('href')) ?? '').replace('#/orders/', ''));
    // The order is shown at once, and the address names it already.
    await page.locator('#detail-heading', { hasText: orderId.slice(0, 8) }).waitFor();
    expect(new URL(page.url()).hash).toBe(`#/orders/${orderId}`);
    await link.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(focusIsOn('detail-heading'), undefined, { timeout: 5_000 });
    // The same for the listed order's own link.
    const listed = page.locator(`#order-rows tr[data-order-id="${orderId}"] a`);
    await listed.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(focusIsOn('detail-heading'), undefined, { timeout: 5_000 });
    await page.close();
  }, 30_000);

  it('the skip link takes focus to the orders and keeps the order shown', async () => {
    const orderId = await place('customer-skip-link');
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/#/orders/${orderId}`);
    await page.locator('#detail-summary .term', { hasText: 'Customer' }).waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement && document.activeElement.className')).toBe('skip-link');
    await page.keyboard.press('Enter');
    await page.waitForFunction(focusIsOn('orders-heading'), undefined, { timeout: 5_000 });
    // A poll later the order is still the one shown, and the address still names it.
    await page.waitForTimeout(2_000);
    expect(new URL(page.url()).hash).toBe(`#/orders/${orderId}`);
    expect(await page.locator('#detail-heading').innerText()).toContain(orderId.slice(0, 8));
    expect(await page.locator('#detail-body').isVisible()).toBe(true);
    await page.close();
  }, 30_000);
});

describe('customer ids in the list', () => {
  it('keeps a right-to-left override in a customer id from turning the rest of the line around', async () => {
    const customerId = 'c-\u202Eevil';
    const orderId = await place(customerId);
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/`);
    await findCustomer(page, customerId);
    await page.locator(`#order-rows tr[data-order-id="${orderId}"] time`).waitFor();
    await page.locator('#orders-summary', { hasText: 'newest first' }).waitFor();
    // Whether one character of a text shows to the left of a later one, as it does left to right.
    const readsLeftToRight = await page.evaluate(`(() => {
      const leftOf = (node, earlier, later) => {
        const at = (index) => {
          const range = document.createRange();
          range.setStart(node, index);
          range.setEnd(node, index + 1);
          return range.getBoundingClientRect().left;
        };
        return at(earlier) < at(later);
      };
      const time = document.querySelector('#order-rows tr[data-order-id="${orderId}"] time').firstChild;
      const summary = document.getElementById('orders-summary').lastChild;
      const text = summary.textContent;
      return {
        time: leftOf(time, 0, time.length - 1),
        summary: leftOf(summary, text.indexOf('newest'), text.length - 1),
      };
    })()`);
    expect(readsLeftToRight).toEqual({ time: true, summary: true });
    await page.close();
  }, 30_000);

  it('keeps a customer id of 128 characters without a space inside the list', async () => {
    const customerId = `W${'Ŵ'.repeat(126)}W`;
    const orderId = await place(customerId);
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${api}/portal/`);
    await findCustomer(page, customerId);
    await page.locator(`#order-rows tr[data-order-id="${orderId}"]`).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'long-customer-id.png') });
    const overflow = (await page.evaluate(`(() => {
      const panel = document.getElementById('orders').getBoundingClientRect();
      const table = document.querySelector('.order-table').getBoundingClientRect();
      const summary = document.getElementById('orders-summary');
      return { panelRight: panel.right, tableRight: table.right, summaryOverflow: summary.scrollWidth - summary.clientWidth };
    })()`)) as { panelRight: number; tableRight: number; summaryOverflow: number };
    expect(overflow.tableRight).toBeLessThanOrEqual(overflow.panelRight);
    expect(overflow.summaryOverflow).toBeLessThanOrEqual(0);
    await page.close();
  }, 30_000);
});

describe('the order list', () => {
  it('says why a search the API refuses lists nothing, without calling it a connection problem', async () => {
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/`);
    await page.locator('#connection[data-state="ok"]').waitFor({ timeout: 15_000 });
    // Two cells copied from a spreadsheet: a tab between them.
    await findCustomer(page, 'customer-1\tcustomer-2');
    await page.locator('#orders-summary', { hasText: 'must not contain control characters' }).waitFor();
    // Polls go on with the same search: the header still says the portal is live.
    await page.waitForTimeout(3_500);
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('ok');
    expect(await page.locator('#connection-error').innerText()).toBe('');
    expect(await page.locator('#orders-summary').innerText()).toContain('must not contain control characters');
    await page.close();
  }, 30_000);

  it('counts and lists the orders in attention when the first page holds none of them', async () => {
    const page = await browser!.newPage();
    const orderId = '5e1f0c4a-7d55-4a39-9b7e-2a6b3f1d9c01';
    const inAttention = listedOrder(orderId, 'customer-attention', 'attention', { inventory: 'compensated', billing: 'compensated', notification: 'done' });
    // As Cosmos DB answers a cross-partition query: an empty first page that goes on.
    await page.route(/\/api\/orders\?.*state=attention/, async (route) => {
      const token = new URL(route.request().url()).searchParams.get('continuationToken');
      await route.fulfill({ json: token === 'next-range' ? { orders: [inAttention] } : { orders: [], continuationToken: 'next-range' } });
    });
    await page.goto(`${api}/portal/`);
    const count = page.locator('#attention-count', { hasText: '1 order needs attention' });
    await count.waitFor({ timeout: 15_000 });
    await count.click();
    await page.locator(`#order-rows tr[data-order-id="${orderId}"]`).waitFor();
    await page.locator('#orders-summary', { hasText: '1 order matches the filters' }).waitFor();
    expect(await page.locator('#orders-empty').isHidden()).toBe(true);
    await page.close();
  }, 30_000);

  it('"Show older orders" lists the next page and takes keyboard focus to the first older order', async () => {
    const customerId = `customer-pages-${Date.now()}`;
    for (let i = 0; i < 27; i += 1) await place(customerId);
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/`);
    await findCustomer(page, customerId);
    await page.locator('#orders-summary', { hasText: `25+ orders of ${customerId}` }).waitFor();
    await page.locator('#orders-more').focus();
    await page.keyboard.press('Enter');
    await page.locator('#orders-summary', { hasText: `27 orders of ${customerId}` }).waitFor();
    expect(await page.locator('#orders-more').isHidden()).toBe(true);
    const focused = await page.evaluate(`(() => {
      const row = document.activeElement && document.activeElement.closest('tr');
      return row ? row.getAttribute('data-order-id') : null;
    })()`);
    const twentySixth = await page.locator('#order-rows tr:nth-child(26)').getAttribute('data-order-id');
    expect(focused).toBe(twentySixth);
    await page.close();
  }, 60_000);
});

/** An order as the list answers it, made up for a page whose list answer is routed. */
function listedOrder(id: string, customerId: string, state: string, status: Record<string, string>) {
  const now = new Date().toISOString();
  return { id, customerId, state, status, total: 10, currency: 'EUR', createdAt: now, updatedAt: now };
}

/** A page showing the order, its every read through the API changed by `change` on the way. */
async function openOrderAnsweredAs(orderId: string, change: (order: Record<string, unknown>) => void): Promise<Page> {
  const page = await browser!.newPage();
  await page.route(new RegExp(`/api/orders/${orderId}$`), async (route) => {
    const response = await route.fetch();
    const order = (await response.json()) as Record<string, unknown>;
    change(order);
    await route.fulfill({ response, json: order });
  });
  await page.goto(`${api}/portal/#/orders/${orderId}`);
  return page;
}

describe('order detail', () => {
  it('shows the timeline in the order it was written, whatever the clocks of its writers said', async () => {
    // A consumer on a machine whose clock is a minute behind writes the latest entry.
    const page = await openOrderAnsweredAs(await place('customer-clocks'), (order) => {
      const timeline = order.timeline as { at: string; kind: string }[];
      timeline.push({ at: new Date(Date.parse(timeline[0]!.at) - 60_000).toISOString(), kind: 'late-clock-entry' });
    });
    const kinds = page.locator('#detail-timeline li[data-kind]');
    await page.locator('#detail-timeline li[data-kind="late-clock-entry"]').waitFor({ timeout: 15_000 });
    const written = await kinds.evaluateAll((items) => items.map((item) => item.getAttribute('data-kind')));
    expect(written.at(-1)).toBe('late-clock-entry');
    expect(written[0]).toBe('accepted');
    await page.close();
  }, 30_000);

  it("tells a service's last step from its progress, not from a dead-letter only noted (an unreadable message naming a completed order)", async () => {
    const page = await openOrderAnsweredAs(await place('customer-noted'), (order) => {
      order.state = 'completed';
      order.status = { inventory: 'done', billing: 'done', notification: 'done' };
      const timeline = order.timeline as { at: string; kind: string; service?: string; detail?: string }[];
      for (const service of ['inventory', 'billing', 'notification']) timeline.push({ at: '2030-01-01T00:00:01.000Z', kind: 'done', service });
      for (const service of ['inventory', 'billing', 'notification']) {
        timeline.push({ at: '2030-01-01T00:00:02.000Z', kind: 'deadlettered', service, detail: `message poison-1; ${service} already done, order completed` });
      }
      // One recorded (not only noted) stays a service's last step.
      timeline.push({ at: '2030-01-01T00:00:03.000Z', kind: 'deadlettered', service: 'billing', detail: 'message m-2' });
    });
    const lane = (service: string) => page.locator(`#detail-lanes li[data-service="${service}"] .lane__meta`);
    await lane('inventory').filter({ hasText: 'last:' }).waitFor({ timeout: 15_000 });
    expect(await lane('inventory').innerText()).toMatch(/last: done at/);
    expect(await lane('notification').innerText()).toMatch(/last: done at/);
    expect(await lane('billing').innerText()).toMatch(/last: dead-lettered at/);
    // The timeline still shows every entry.
    expect(await page.locator('#detail-timeline li[data-kind="deadlettered"]').count()).toBe(4);
    await page.close();
  }, 30_000);
});

describe('compensation under way', () => {
  it("shows the run's step, what is done, and its wait for Cosmos DB", async () => {
    // A run waiting out a throttled database is a state of minutes on Azure: the answer is made here.
    const page = await openOrderAnsweredAs(await place('customer-compensation-wait'), (order) => {
      order.state = 'compensating';
      order.compensation = {
        run: 2,
        status: {
          runtimeStatus: 'Running',
          customStatus: {
            phase: 'compensating',
            current: 'refundPayment',
            done: ['releaseStock'],
            failures: [],
            waiting: { until: '2030-01-01T00:00:00.000Z', why: 'Cosmos DB did not serve it: Request rate is large' },
          },
        },
      };
    });
    const monitor = page.locator('#detail-monitor');
    await monitor.locator('dt', { hasText: 'Compensation run' }).waitFor({ timeout: 15_000 });
    const text = (await monitor.innerText()).replace(/\s+/g, ' ');
    expect(text).toContain('Compensation run 2 · Running');
    expect(text).toContain('Compensation step refund payment');
    expect(text).toContain('Compensation done release stock');
    expect(text).toContain('Because Cosmos DB did not serve it: Request rate is large');
    expect(await monitor.locator('time[datetime="2030-01-01T00:00:00.000Z"]').count()).toBe(1);
    await page.close();
  }, 30_000);

  it('shows the run a person asked for as not begun, not the previous run under its number', async () => {
    const page = await openOrderAnsweredAs(await place('customer-compensation-asked'), (order) => {
      order.state = 'compensating';
      order.compensation = { run: 2, status: null, requestedAt: '2030-01-01T00:00:00.000Z' };
    });
    const monitor = page.locator('#detail-monitor');
    await monitor.locator('dt', { hasText: 'Compensation run' }).waitFor({ timeout: 15_000 });
    const text = (await monitor.innerText()).replace(/\s+/g, ' ');
    expect(text).toContain('Compensation run 2 · asked for, not begun yet');
    expect(text).not.toContain('status not known');
    expect(await monitor.locator('time[datetime="2030-01-01T00:00:00.000Z"]').count()).toBe(1);
    await page.close();
  }, 30_000);

  it('shows a step that failed while the run goes on, and no wait once the run has stopped', async () => {
    // A refund the gateway refused: the run goes on to the other steps and ends in attention.
    let run: Record<string, unknown> = {
      runtimeStatus: 'Running',
      customStatus: {
        phase: 'compensating',
        current: 'releaseStock',
        done: [],
        failures: [{ name: 'refundPayment', error: 'the gateway refused the refund' }],
        waiting: { until: '2030-01-01T00:00:00.000Z', why: 'Cosmos DB did not serve it: 503' },
      },
    };
    const page = await openOrderAnsweredAs(await place('customer-compensation-failures'), (order) => {
      order.state = 'compensating';
      order.compensation = { run: 1, status: run };
    });
    const monitor = page.locator('#detail-monitor');
    const text = async () => (await monitor.innerText()).replace(/\s+/g, ' ');
    await monitor.locator('dt', { hasText: 'Compensation run' }).waitFor({ timeout: 15_000 });
    expect(await text()).toContain('Compensation step release stock');
    expect(await text()).toContain('Compensation failed refund payment: the gateway refused the refund');
    // Planning gave up after waiting an hour for Cosmos DB: the run failed, its last status still
    // names the wait it was in. The monitor begins another run a poll later.
    run = {
      runtimeStatus: 'Failed',
      customStatus: { phase: 'planning', reason: 'billing failed', waiting: { until: '2026-01-01T00:00:00.000Z', why: 'Cosmos DB did not serve it: 503' } },
    };
    await monitor.locator('dd', { hasText: '1 · Failed' }).waitFor({ timeout: 15_000 });
    expect(await text()).toContain('Compensation stopped at planning');
    expect(await text()).not.toContain('waits until');
    expect(await text()).not.toContain('Because');
    await page.close();
  }, 45_000);
});

describe('unreadable messages', () => {
  it('shows the id of an order that does not exist as text, not a link to nothing, and says why the message was kept', async () => {
    const source = 'orders/Subscriptions/billing-sub/$DeadLetterQueue';
    const missing = '0e5f9a1c-2b3d-4e6f-8a9b-1c2d3e4f5a6b';
    const exists = '1e5f9a1c-2b3d-4e6f-8a9b-1c2d3e4f5a6b';
    const deadLetters = [
      { id: 'a', source, messageId: 'm-gone', orderId: missing, problem: `order ${missing} does not exist`, kind: 'no-such-order', orderMissing: true, body: {}, parkedAt: new Date().toISOString() },
      { id: 'b', source, messageId: 'm-cut', orderId: exists, problem: 'the body is not JSON', kind: 'unreadable', body: '{', parkedAt: new Date().toISOString() },
    ];
    const page = await browser!.newPage();
    await page.route(/\/api\/support\/deadletters\?/, (route) => route.fulfill({ json: { deadLetters } }));
    await page.goto(`${api}/portal/`);
    const gone = page.locator('#parked-rows li[data-message-id="m-gone"]');
    await gone.waitFor({ timeout: 15_000 });
    expect(await gone.locator('a').count()).toBe(0);
    expect(await gone.innerText()).toContain(`names order ${missing}`);
    expect(await gone.innerText()).toContain(`No such order: order ${missing} does not exist`);
    const cut = page.locator('#parked-rows li[data-message-id="m-cut"]');
    expect(await cut.locator('a.order-link').getAttribute('href')).toBe(`#/orders/${exists}`);
    expect(await cut.innerText()).toContain('Unreadable: the body is not JSON');
    await page.close();
  }, 30_000);

  it('unreadable messages: a preview cut short keeps whole characters, and "Show more" takes focus to the first message it adds', async () => {
    const messageId = `emoji-${Date.now()}`;
    const client = new ServiceBusClient(serviceBusConnectionString(serviceBusPort));
    try {
      const sender = client.createSender(ORDERS_TOPIC);
      for (let i = 0; i < 6; i++) await sender.sendMessages({ body: `not json ${i}`, messageId: `${messageId}-extra-${i}` });
      // The emoji straddles the end of the 400-character preview.
      await sender.sendMessages({ body: `${'x'.repeat(399)}\u{1F600} and more after the preview`, messageId });
      await sender.close();
    } finally {
      await client.close();
    }
    // Seven messages, a copy kept per subscription: one more than the portal shows at first.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const kept = ((await (await fetch(`${api}/support/deadletters?pageSize=100`)).json()) as { deadLetters: unknown[] }).deadLetters;
      if (kept.length >= 21) break;
      if (Date.now() > deadline) throw new Error(`only ${kept.length} of 21 dead letters kept`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/`);
    await page.locator('#parked-summary', { hasText: 'The newest 20 are shown.' }).waitFor({ timeout: 15_000 });
    // Just after a refresh of the list, which comes every 6 s by itself: the click's own comes at once.
    await page.waitForResponse((response) => response.url().includes('/api/support/deadletters'));
    await page.locator('#parked-more').focus();
    await page.keyboard.press('Enter');
    await page.locator('#parked-summary', { hasText: '21 kept.' }).waitFor({ timeout: 2_000 });
    expect(await page.locator('#parked-more').isHidden()).toBe(true);
    expect(await page.evaluate(`document.activeElement === document.querySelector('#parked-rows > li:nth-child(21)')`)).toBe(true);

    // Read in the page: a half character would not survive the way out of the browser as itself.
    const previews = await page.evaluate(`(() => {
      const halves = /[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]/;
      const bodies = document.querySelectorAll('#parked-rows li[data-message-id="${messageId}"] .parked__body');
      return [...bodies].map((body) => ({ start: body.textContent.slice(0, 399), brokenCharacter: halves.test(body.textContent) }));
    })()`);
    expect(previews).toEqual(Array(3).fill({ start: 'x'.repeat(399), brokenCharacter: false }));
    await page.close();
  }, 120_000);

  it('keeps keyboard focus on the link to an order when a newer message comes in above it', async () => {
    const orderId = '7c2d4b1e-3f5a-4c6d-8e9f-0a1b2c3d4e5f';
    const kept = (id: string, messageId: string, names?: string) => ({
      id,
      source: 'orders/Subscriptions/billing-sub/$DeadLetterQueue',
      messageId,
      ...(names ? { orderId: names } : {}),
      problem: 'the body is not JSON',
      deadLetterReason: 'MaxDeliveryCountExceeded',
      body: '{"type": "OrderCreated", "data": {',
      parkedAt: new Date().toISOString(),
    });
    let deadLetters = [kept('first', 'focus-first', orderId)];
    const page = await browser!.newPage();
    await page.route(/\/api\/support\/deadletters/, (route) => route.fulfill({ json: { deadLetters } }));
    await page.goto(`${api}/portal/`);
    const link = page.locator('#parked-rows li[data-message-id="focus-first"] a.order-link');
    await link.waitFor({ timeout: 15_000 });
    await link.focus();
    deadLetters = [kept('second', 'focus-second'), ...deadLetters];
    await page.locator('#parked-rows li[data-message-id="focus-second"]').waitFor({ timeout: 15_000 });
    expect(await page.evaluate(`document.activeElement === document.querySelector('#parked-rows li[data-message-id="focus-first"] a.order-link')`)).toBe(true);
    await page.close();
  }, 30_000);
});

describe('alerts', () => {
  it('has a failure that every poll repeats read out once, not at every poll', async () => {
    const page = await browser!.newPage();
    await page.route(/\/api\/support\/deadletters/, (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/problem+json',
        body: JSON.stringify({ title: 'Service Unavailable', status: 503, detail: 'Cosmos DB did not answer' }),
      }),
    );
    await page.goto(`${api}/portal/#/orders/00000000-0000-4000-8000-000000000000`);
    await page.locator('#detail-error', { hasText: 'no order' }).waitFor({ timeout: 15_000 });
    await page.locator('#parked-error', { hasText: 'Cosmos DB did not answer' }).waitFor({ timeout: 15_000 });
    // Both are alerts: every change to one is read out. Two refreshes of the unreadable messages.
    const changes = await page.evaluate(`(async () => {
      const count = { detail: 0, parked: 0 };
      const options = { childList: true, subtree: true, characterData: true };
      new MutationObserver((records) => (count.detail += records.length)).observe(document.getElementById('detail-error'), options);
      new MutationObserver((records) => (count.parked += records.length)).observe(document.getElementById('parked-error'), options);
      await new Promise((resolve) => setTimeout(resolve, 13000));
      return count;
    })()`);
    expect(changes).toEqual({ detail: 0, parked: 0 });
    await page.close();
  }, 45_000);
});

describe('fault switches', () => {
  it('keeps a switch as flipped when a poll read the switches before the flip and is answered after it', async () => {
    const page = await browser!.newPage();
    let holdNext = false;
    let readHeld!: () => void;
    const held = new Promise<void>((resolve) => (readHeld = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    await page.route(/\/api\/support\/faults$/, async (route) => {
      if (route.request().method() !== 'GET' || !holdNext) return route.continue();
      holdNext = false;
      // Read before the flip (refunds work), delivered after the flip was answered: a slow network.
      const response = await route.fetch();
      readHeld();
      await released;
      await route.fulfill({ response });
    });
    await page.goto(`${api}/portal/`);
    const refundSwitch = page.locator('#refund-switch');
    await page.locator('#refund-switch:not([disabled])').waitFor({ timeout: 15_000 });
    expect(await refundSwitch.getAttribute('aria-checked')).toBe('false');
    holdNext = true;
    await held;
    try {
      await refundSwitch.click();
      await page.locator('#refund-switch[aria-checked="true"]').waitFor();
      const staleRead = page.waitForResponse((r) => r.url().endsWith('/api/support/faults') && r.request().method() === 'GET');
      release();
      await staleRead;
      await page.waitForTimeout(300);
      expect(await refundSwitch.getAttribute('aria-checked')).toBe('true');
      expect(await page.locator('#refund-switch-note').innerText()).toContain('Every refund throws');
    } finally {
      release();
      await fetch(`${api}/support/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refundFails: false }) });
      await page.close();
    }
  }, 45_000);
});

describe('the order list on a phone', () => {
  it("keeps the mark of an order in attention clear of the order's id and customer", async () => {
    const page = await browser!.newPage({ viewport: { width: 390, height: 844 } });
    const orderId = '7a0c2e9b-3f41-4d8a-a6b5-0c9d8e7f6a51';
    const inAttention = listedOrder(orderId, 'customer-marked', 'attention', { inventory: 'failed', billing: 'done', notification: 'compensated' });
    await page.route(/\/api\/orders\?/, (route) => route.fulfill({ json: { orders: [inAttention] } }));
    await page.goto(`${api}/portal/`);
    const row = page.locator(`#order-rows tr[data-order-id="${orderId}"]`);
    await row.waitFor({ timeout: 15_000 });
    const layout = (await page.evaluate(`(() => {
      const th = document.querySelector('#order-rows tr[data-order-id="${orderId}"] th');
      const mark = parseFloat(getComputedStyle(th).boxShadow.match(/(\\d+(?:\\.\\d+)?)px 0px 0px 0px inset/)[1]);
      return { mark, cell: th.getBoundingClientRect().left, link: th.querySelector('a').getBoundingClientRect().left, customer: th.querySelector('.order-customer').getBoundingClientRect().left };
    })()`)) as { mark: number; cell: number; link: number; customer: number };
    await row.screenshot({ path: join(ARTIFACTS, 'phone-attention-row.png') });
    expect(layout.mark).toBeGreaterThan(0);
    expect(layout.link).toBeGreaterThanOrEqual(layout.cell + layout.mark);
    expect(layout.customer).toBeGreaterThanOrEqual(layout.cell + layout.mark);
    await page.close();
  }, 30_000);
});

describe('the orders nothing has moved for ten minutes', () => {
  it('asks the API for orders not written since ten minutes before each read, and pages with the same instant', async () => {
    const stuck = (n: number) => listedOrder(`5b0c2e9b-3f41-4d8a-a6b5-0c9d8e7f6a5${n}`, 'c-stuck', 'processing', { inventory: 'done', billing: 'processing', notification: 'done' });
    const asked: URL[] = [];
    const page = await browser!.newPage();
    await page.route(/\/api\/orders\?/, (route) => {
      const url = new URL(route.request().url());
      asked.push(url);
      const quiet = url.searchParams.has('updatedBefore');
      if (!quiet) return route.fulfill({ json: { orders: [] } });
      // Two pages: the second asked for with the first's token.
      return url.searchParams.has('continuationToken') ? route.fulfill({ json: { orders: [stuck(2)] } }) : route.fulfill({ json: { orders: [stuck(1)], continuationToken: 't1' } });
    });
    await page.goto(`${api}/portal/`);
    await page.locator('#orders-summary', { hasText: '0 orders' }).waitFor({ timeout: 15_000 });
    const clicked = Date.now();
    await page.getByLabel('Not moved for 10 minutes').check();
    await page.locator('#order-rows tr').first().waitFor({ timeout: 15_000 });
    await page.locator('#orders-summary', { hasText: 'match the filters' }).waitFor();
    const quiet = asked.filter((url) => url.searchParams.has('updatedBefore'));
    const first = quiet.find((url) => !url.searchParams.has('continuationToken'))!;
    const instant = Date.parse(first.searchParams.get('updatedBefore')!);
    expect(instant).toBeGreaterThan(clicked - 10 * 60_000 - 5_000);
    expect(instant).toBeLessThanOrEqual(Date.now() - 10 * 60_000);
    const second = quiet.find((url) => url.searchParams.get('continuationToken') === 't1')!;
    expect(second.searchParams.get('updatedBefore')).toBe(first.searchParams.get('updatedBefore'));
    await page.close();
  }, 30_000);
});

describe('the order list at every width', () => {
  it('keeps every badge inside its panel, also with the longest ones side by side: a table where it fits, cards where it does not', async () => {
    const order = (n: number, state: string, status: Record<string, string>) => listedOrder(`7a0c2e9b-3f41-4d8a-a6b5-0c9d8e7f6a5${n}`, `customer-${n}`, state, status);
    const orders = [
      order(1, 'cancelled', { inventory: 'compensated', billing: 'compensated', notification: 'compensated' }),
      order(2, 'attention', { inventory: 'failed', billing: 'deadlettered', notification: 'compensated' }),
      order(3, 'compensating', { inventory: 'compensated', billing: 'deadlettered', notification: 'processing' }),
    ];
    const page = await browser!.newPage();
    await page.route(/\/api\/orders\?/, (route) => route.fulfill({ json: { orders } }));
    await page.goto(`${api}/portal/`);
    await page.locator('#order-rows tr').nth(2).waitFor({ timeout: 15_000 });
    const seen: Record<number, { cards: boolean; outside: string[] }> = {};
    for (const width of [1920, 1366, 1280, 1024, 960, 800, 640, 390, 360]) {
      await page.setViewportSize({ width, height: 900 });
      seen[width] = (await page.evaluate(`(() => {
        const panel = document.querySelector('.panel--orders').getBoundingClientRect();
        const outside = [...document.querySelectorAll('#order-rows .badge')].filter((b) => {
          const r = b.getBoundingClientRect();
          return r.left < panel.left || r.right > panel.right;
        }).map((b) => b.textContent);
        return { cards: getComputedStyle(document.querySelector('.order-table thead')).display === 'none', outside };
      })()`)) as { cards: boolean; outside: string[] };
      if (width === 1280 || width === 360) await page.locator('.panel--orders').screenshot({ path: join(ARTIFACTS, `order-list-${width}.png`) });
    }
    for (const [width, { outside }] of Object.entries(seen)) expect({ width, outside }).toEqual({ width, outside: [] });
    // The table where its five columns fit, cards where they do not.
    expect(seen[1920]!.cards).toBe(false);
    expect(seen[1280]!.cards).toBe(true);
    expect(seen[390]!.cards).toBe(true);
    await page.close();
  }, 60_000);

  it('keeps "needs attention" on one line beside the id on cards of four columns, however few pixels past four fit', async () => {
    const now = new Date().toISOString();
    const orders = [
      { id: '7a0c2e9b-3f41-4d8a-a6b5-0c9d8e7f6a61', customerId: 'customer-with-a-rather-long-identifier-0123456789', state: 'attention', status: { inventory: 'failed', billing: 'deadlettered', notification: 'compensated' }, total: 10, currency: 'EUR', createdAt: now, updatedAt: now },
    ];
    const page = await browser!.newPage();
    await page.route(/\/api\/orders\?/, (route) => route.fulfill({ json: { orders } }));
    await page.goto(`${api}/portal/`);
    await page.locator('#order-rows tr').first().waitFor({ timeout: 15_000 });
    const fourColumns: number[] = [];
    // 490 and 500: a phone held sideways; 1010 to 1040: the list beside the order.
    for (const width of [490, 500, 520, 600, 1010, 1020, 1030, 1040, 1280]) {
      await page.setViewportSize({ width, height: 900 });
      const seen = (await page.evaluate(`(() => {
        const row = document.querySelector('#order-rows tr');
        const id = row.querySelector('th').getBoundingClientRect();
        const state = row.querySelector('td[data-label="State"]').getBoundingClientRect();
        const badge = row.querySelector('td[data-label="State"] .badge');
        const line = parseFloat(getComputedStyle(badge).lineHeight);
        return {
          columns: getComputedStyle(row).gridTemplateColumns.split(' ').length,
          oneLine: badge.getBoundingClientRect().height < 2 * line,
          apart: id.right <= state.left + 0.5,
        };
      })()`)) as { columns: number; oneLine: boolean; apart: boolean };
      if (seen.columns >= 4) fourColumns.push(width);
      if (seen.columns >= 4) expect({ width, oneLine: seen.oneLine, apart: seen.apart }).toEqual({ width, oneLine: true, apart: true });
    }
    expect(fourColumns).toEqual(expect.arrayContaining([490, 500, 1010, 1040]));
    await page.close();
  }, 60_000);
});

describe('two people at once', () => {
  it('the second to compensate, whose button went while the dialog was open, is told who did and when, and keeps focus by the actions', async () => {
    const response = await fetch(`${api}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ customerId: 'customer-two-people', items: [{ sku: 'MOUSE-01', quantity: 1 }], simulate: { billingFailures: 100 } }),
    });
    const { orderId } = (await response.json()) as { orderId: string };
    const deadline = Date.now() + 30_000;
    while (((await (await fetch(`${api}/orders/${orderId}`)).json()) as { status?: { billing?: string } }).status?.billing !== 'deadlettered') {
      if (Date.now() > deadline) throw new Error('billing did not dead-letter');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/#/orders/${orderId}`);
    await page.locator('#action-compensate:not([disabled])').click();
    await page.locator('#confirm-dialog[open]').waitFor();
    // Someone else compensates the order meanwhile; this portal's next poll disables the button.
    expect((await fetch(`${api}/orders/${orderId}/compensate`, { method: 'POST' })).status).toBe(202);
    await page.locator('#action-compensate[disabled]').waitFor({ state: 'attached' });
    await page.locator('#confirm-ok').click();
    await page.locator('#action-status', { hasText: 'Compensate was already asked for by support@localhost at ' }).waitFor();
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('action-status');
    await page.close();
  }, 60_000);
});

describe('unreadable messages', () => {
  // Last in the file: the messages it adds would change the counts the tests above wait for.
  it('one that names an order links to it', async () => {
    const orderId = await place('customer-unreadable-copy');
    const messageId = `names-order-${Date.now()}`;
    const client = new ServiceBusClient(serviceBusConnectionString(serviceBusPort));
    try {
      const sender = client.createSender(ORDERS_TOPIC);
      await sender.sendMessages({ body: '{"type": "OrderCreated", "data": {', messageId, contentType: 'application/json', applicationProperties: { order_id: orderId } });
      await sender.close();
    } finally {
      await client.close();
    }
    const page = await browser!.newPage();
    await page.goto(`${api}/portal/`);
    const link = page.locator(`#parked-rows li[data-message-id="${messageId}"] a.order-link`).first();
    await link.waitFor({ timeout: 60_000 });
    expect(await link.innerText()).toBe(orderId);
    await link.click();
    await page.locator(`#order-rows tr[data-order-id="${orderId}"][aria-current="true"]`).waitFor({ timeout: 10_000 });
    expect(await page.locator('#detail-heading').innerText()).toContain(orderId.slice(0, 8));
    await page.close();
  }, 90_000);
});
