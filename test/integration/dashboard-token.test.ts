import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireChromium, startChromium, type HeadlessChromium } from '../harness/chromium.ts';
import { refusingPort, startGateway, type GatewayProcess } from '../harness/index.ts';

const TOKEN = 'dashboard-token-test-token';
const ROTATED = 'dashboard-token-test-rotated';
/** A page's polls run every one to two seconds; a refusal or a new token shows well within this. */
const PAGE_MS = 10_000;

/**
 * The dashboard with an admin token it does not hold: a token in the address that is wrong, or one
 * the gateway no longer takes (rotated). The page used to keep sending the refused token and saying
 * "unauthorized" until it was opened with `?token=` again; it now forgets it and asks for one.
 */
describe('the dashboard in headless Chromium when the gateway refuses its token', () => {
  let gateway: GatewayProcess;
  let config: (token: string) => string;
  let browser: HeadlessChromium | undefined;
  let page: Page;

  const form = () => page.locator('#token-form');
  const saved = () => page.evaluate(`sessionStorage.getItem('switchboard-admin-token')`);
  const adminUrl = () => `http://127.0.0.1:${gateway.adminPort}`;

  /** Types `token` into the form and sends it (Enter), as a user would. */
  async function enter(token: string): Promise<void> {
    await page.locator('#token-input').fill(token);
    await page.locator('#token-input').press('Enter');
  }

  /** Waits until the page is live on `token`: cards, the routes panel (another module's calls) and the event stream. */
  async function liveWith(token: string): Promise<void> {
    await page.locator('article[data-service="shop"] tr[data-instance]').waitFor({ timeout: PAGE_MS });
    await page.locator('#routes-panel tr[data-route="shop"]').waitFor({ timeout: PAGE_MS });
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: PAGE_MS });
    await form().waitFor({ state: 'hidden', timeout: PAGE_MS });
    await page.locator('#notice').waitFor({ state: 'hidden', timeout: PAGE_MS });
    expect(await saved()).toBe(token);
  }

  beforeAll(async () => {
    requireChromium();
    const backend = await refusingPort();
    config = (token) => `
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${token} }
accessLog: false
services:
  shop: { instances: ["127.0.0.1:${backend}"] }
routes:
  - { name: shop, path: /shop, service: shop }
`;
    gateway = await startGateway(config(TOKEN));
    browser = await startChromium({ width: 1280, height: 800 });
    page = browser.page;
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.process.stop();
  });

  it('forgets a wrong token it was opened with, asks for one, asks again for another wrong one, and goes live with the right one', async () => {
    await page.goto(`${adminUrl()}/?token=wrong-token`);
    await form().waitFor({ timeout: PAGE_MS });
    expect(await form().locator('.token-why').textContent()).toContain('refused');
    expect(await saved()).toBeNull();
    expect(page.url()).toBe(`${adminUrl()}/`);
    expect(await page.locator('#connection').getAttribute('data-state')).not.toBe('live');

    await enter('another-wrong-token');
    await form().waitFor({ timeout: PAGE_MS });
    expect(await saved()).toBeNull();

    await enter(TOKEN);
    await liveWith(TOKEN);
  });

  it('asks again once the token is rotated, and every panel and the event stream go on with the new one', async () => {
    await gateway.process.stop();
    gateway = await startGateway(config(ROTATED), {}, { firstPorts: { port: gateway.port, adminPort: gateway.adminPort } });
    await form().waitFor({ timeout: PAGE_MS });
    expect(await form().locator('.token-why').textContent()).toContain('refused');
    expect(await saved()).toBeNull();
    // The cards of the last answer stay, dimmed, while the page has no token the gateway takes.
    expect(await page.locator('#services').getAttribute('data-outdated')).toBe('true');

    await enter(ROTATED);
    await liveWith(ROTATED);
    expect(await page.locator('#services').getAttribute('data-outdated')).toBeNull();
  });
});
