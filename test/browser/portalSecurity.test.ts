/**
 * The portal against hostile input, in Debian's Chromium through playwright-core (needs a build).
 * What a customer sends (a customer id full of markup) is shown as text, never run. A page on
 * another site that a signed-in support person opens must not act in their name: it tries the two
 * requests a browser sends across sites without a CORS preflight (a `no-cors` fetch with a JSON
 * text body, a form post) against the local system, where every browser is support. The portal's
 * own page still acts.
 */
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { freePort } from '../support/ports';
import { ARTIFACTS, CHROMIUM, startPortalSystem, type PortalSystem } from '../support/portalSystem';


let running: PortalSystem | undefined;
let api = '';
let browser: Browser | undefined;
let hostile: Server | undefined;
let hostileOrigin = '';
let hostilePage = '';

const json = async (path: string, init?: RequestInit) => (await fetch(`${api}${path}`, init)).json() as Promise<any>;

beforeAll(async () => {
  running = await startPortalSystem('portal-cross-site', {
    FAULT_INJECTION_ENABLED: 'true',
    SUPPORT_DEV_PRINCIPAL: 'support@localhost',
    // The monitor leaves a dead-lettered order alone while the test runs.
    MONITOR_REQUEUE_BACKOFF_SECONDS: '600',
    MONITOR_REQUEUE_BACKOFF_MAX_SECONDS: '600',
  });
  api = running.api;

  // `localhost` is another site than `127.0.0.1`, as any page on the internet is.
  const port = await freePort();
  hostileOrigin = `http://localhost:${port}`;
  hostile = createServer((_request, response) => {
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.end(hostilePage);
  });
  await new Promise<void>((resolve) => hostile!.listen(port, 'localhost', resolve));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
}, 180_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await new Promise((resolve) => (hostile ? hostile.close(resolve) : resolve(undefined)));
  await running?.stop();
}, 60_000);

describe('customer data in the portal', () => {
  it('shows markup, quotes and script URLs a customer put in an order as text, and runs none of it', async () => {
    const customerId = `<img src=x onerror="document.title='ran'">"' onmouseover=alert(1) javascript:alert(2) <script>alert(3)</script>`;
    expect(customerId.length).toBeLessThanOrEqual(128);
    const placed = await json('/orders', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-correlation-id': 'c-1' },
      body: JSON.stringify({ customerId, items: [{ sku: 'KEYBOARD-01', quantity: 1 }] }),
    });
    expect(placed.orderId).toEqual(expect.any(String));
    const page = await browser!.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => void dialog.dismiss().then(() => dialogs.push(dialog.message())));
    await page.goto(`${api}/portal/#/orders/${placed.orderId}`);
    await page.locator('#detail-summary .term', { hasText: 'Customer' }).waitFor();
    expect(await page.locator('#detail-summary .term', { hasText: 'Customer' }).locator('dd').innerText()).toBe(customerId);
    // The list finds the customer by that id and shows it the same way.
    await page.locator('#find-input').fill(customerId);
    await page.locator('#find-form button[type="submit"]').click();
    await page.locator(`#order-rows tr[data-order-id="${placed.orderId}"]`).waitFor();
    expect(await page.locator('#order-rows').innerText()).toContain(customerId);
    // An id in the address that is markup is named in the error as text.
    await page.goto(`${api}/portal/#/orders/${encodeURIComponent('<img src=x onerror="document.title=\'ran\'">')}`);
    await page.locator('#detail-error', { hasText: 'no order' }).waitFor();
    await page.mouse.move(400, 300);
    expect(await page.locator('img, script:not([src])').count()).toBe(0);
    expect(await page.title()).toBe('Order support');
    expect(dialogs).toEqual([]);
    await page.close();
  }, 60_000);
});

describe('support actions from another site', () => {
  it('a page on another site cannot flip the fault switches or compensate an order; the portal can', async () => {
    // Billing dead-letters: the order waits for a person, so Compensate applies to it.
    const placed = await json('/orders', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ customerId: 'c-cross-site', items: [{ sku: 'KEYBOARD-01', quantity: 1 }], simulate: { billingFailures: 100 } }),
    });
    const orderId: string = placed.orderId;
    const deadline = Date.now() + 30_000;
    while ((await json(`/orders/${orderId}`)).status?.billing !== 'deadlettered') {
      if (Date.now() > deadline) throw new Error('billing did not dead-letter');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }

    hostilePage = `<!doctype html><title>offer</title>
      <form id="form" method="POST" enctype="text/plain" action="${api}/orders/${orderId}/compensate"></form>
      <script>
        fetch(${JSON.stringify(`${api}/support/faults`)}, { method: 'POST', mode: 'no-cors', credentials: 'include', body: '{"billingFails":true}' })
          .catch(() => undefined)
          .then(() => { document.title = 'sent'; document.getElementById('form').submit(); });
      </script>`;
    const page = await browser!.newPage();
    await page.goto(`${hostileOrigin}/`);
    // The form's answer replaces the page once the fetch is done.
    await page.waitForURL(`${api}/orders/${orderId}/compensate`);
    await page.screenshot({ path: join(ARTIFACTS, 'cross-site-refused.png') });
    expect(await page.innerText('body')).toContain('cross-site');

    expect(await json('/support/faults')).toEqual({ billingFails: false, refundFails: false });
    const order = await json(`/orders/${orderId}`);
    expect(order.state).toBe('processing');
    expect(order.timeline.filter((entry: { kind: string }) => entry.kind === 'support-action')).toEqual([]);

    // The portal's own page, same origin, flips the switch and compensates.
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => void dialog.dismiss().then(() => dialogs.push(dialog.message())));
    await page.goto(`${api}/portal/#/orders/${orderId}`);
    const billingSwitch = page.getByRole('switch', { name: 'Billing fails' });
    await page.locator('#billing-switch:not([disabled])').waitFor();
    await billingSwitch.click();
    await page.locator('#billing-switch[aria-checked="true"]').waitFor();
    await billingSwitch.click();
    await page.locator('#billing-switch[aria-checked="false"]').waitFor();
    await page.locator('#action-compensate:not([disabled])').waitFor();
    await page.locator('#action-compensate').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#action-status', { hasText: 'Compensate accepted' }).waitFor();
    expect((await json(`/orders/${orderId}`)).timeline).toContainEqual(
      expect.objectContaining({ kind: 'support-action', detail: 'compensate', actor: 'support@localhost' }),
    );
    expect(dialogs).toEqual([]);
    await page.close();
  }, 90_000);
});
