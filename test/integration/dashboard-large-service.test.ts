import { Etcd3 } from 'etcd3';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { requireChromium, startChromium, type HeadlessChromium } from '../harness/chromium.ts';
import { logOf, startEtcd, startGateway, waitFor, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const TOKEN = 'dashboard-large-service-token';
/** As many instances as made a whole-card rebuild hold the page's main thread for hundreds of milliseconds. */
const INSTANCES = 200;
const SERVICE = 'big';
/** Registry change to the page: watch, throttle, event stream and render take well under this. */
const PAGE_MS = 10_000;
/** The page's first load of 200 rows, on a loaded 2-core machine. */
const FIRST_LOAD_MS = 30_000;
const REQUEST_TIMEOUT_MS = 5_000;

const instanceId = (index: number) => `i${String(index).padStart(3, '0')}`;
/** A native entry on an address nobody serves: no checks, no traffic, so only the registry changes it. */
const entry = (index: number, weight = 1) => JSON.stringify({ id: instanceId(index), service: SERVICE, host: '127.0.0.2', port: 10_000 + index, weight });

/**
 * A service of 200 instances on the dashboard: its card is changed in place, one row per instance
 * kept across updates, so that an update rewrites only what changed and leaves what the user is
 * looking at (a text selection, the scroll position) alone. The card used to be built again whole.
 */
describe('the dashboard in headless Chromium with a service of 200 instances', () => {
  let etcd: EtcdCluster;
  let writer: Etcd3;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let browser: HeadlessChromium | undefined;
  let page: Page;
  /** `/api/services` answers the page has received. */
  let fetches = 0;

  const row = (id: string) => page.locator(`article[data-service="${SERVICE}"] tr[data-instance="${id}"]`);
  /** Waits until the row of instance `index` shows `weight`. */
  const weightShown = (index: number, weight: number) =>
    waitFor(async () => (await row(instanceId(index)).locator('td').nth(1).textContent({ timeout: PAGE_MS })) === String(weight), { timeoutMs: PAGE_MS, message: `${instanceId(index)} shown with weight ${weight}` });
  const put = (index: number, weight?: number) => writer.put(`/services/${SERVICE}/${instanceId(index)}`).value(entry(index, weight)).exec();

  beforeAll(async () => {
    requireChromium();
    etcd = await startEtcd();
    writer = new Etcd3({ hosts: etcd.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + REQUEST_TIMEOUT_MS }) });
    await Promise.all(Array.from({ length: INSTANCES }, (_, index) => put(index)));
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
registries: ["${etcd.endpoints[0]!.replace('http://', 'etcd://')}/services"]
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
    await waitFor(async () => (await admin.services()).find((service) => service.name === SERVICE)?.instances.length === INSTANCES, { timeoutMs: 20_000, message: `${INSTANCES} instances listed` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    browser = await startChromium({ width: 1280, height: 800 });
    page = browser.page;
    page.on('response', (response) => void (new URL(response.url()).pathname === '/api/services' && fetches++));
    await page.goto(`${admin.url}/?token=${TOKEN}`);
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: FIRST_LOAD_MS });
    await waitFor(async () => (await page.locator(`article[data-service="${SERVICE}"] tbody tr`).count()) === INSTANCES, { timeoutMs: FIRST_LOAD_MS, message: `${INSTANCES} rows` });
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.process.stop();
    writer?.close();
    await etcd?.close();
  });

  /** Waits until the page has received two more `/api/services` answers (so rendered at least one after the change the caller made before). */
  async function twoFetchesAfter(from: number): Promise<void> {
    await waitFor(async () => fetches >= from + 2, { timeoutMs: PAGE_MS, message: 'two more fetches of /api/services by the page' });
  }

  it('keeps the row of every instance across updates, changes one in place, and adds and drops only the rows of instances that came and went', async () => {
    // Each row is tagged with the instance it shows (an expando property, which a rebuilt row lacks), and so is the card.
    await page.evaluate(`document.querySelectorAll('article[data-service="${SERVICE}"] tbody tr').forEach((row) => { row.marked = row.dataset.instance; }); document.querySelector('article[data-service="${SERVICE}"]').marked = true`);
    const from = fetches;
    await Promise.all([put(100, 7), writer.delete().key(`/services/${SERVICE}/${instanceId(50)}`).exec(), put(INSTANCES)]);
    await weightShown(100, 7);
    await row(instanceId(50)).waitFor({ state: 'detached', timeout: PAGE_MS });
    await row(instanceId(INSTANCES)).waitFor({ timeout: PAGE_MS });
    await twoFetchesAfter(from);

    const rows = (await page.evaluate(`[...document.querySelectorAll('article[data-service="${SERVICE}"] tbody tr')].map((row) => ({ id: row.dataset.instance, marked: row.marked ?? null })).concat([{ card: document.querySelector('article[data-service="${SERVICE}"]').marked ?? null }])`)) as { id?: string; marked?: string | null; card?: boolean | null }[];
    const card = rows.pop()!;
    expect(card.card).toBe(true);
    // A row kept shows the same instance as before: rows reused by position would now show their neighbours.
    const expected = (await admin.services()).find((service) => service.name === SERVICE)!.instances.map((instance) => instance.id);
    expect(rows.map((shown) => shown.id)).toEqual(expected);
    expect(rows.filter((shown) => shown.marked !== shown.id).map((shown) => shown.id)).toEqual([instanceId(INSTANCES)]);
    expect(rows.find((shown) => shown.id === instanceId(INSTANCES))!.marked).toBeNull();
  });

  it('leaves the text the user selected in an unchanged row, and where the page is scrolled, as they were across an update of another row', async () => {
    const watched = instanceId(150);
    await row(watched).evaluate((element) => element.scrollIntoView({ block: 'start' }));
    const selector = `article[data-service="${SERVICE}"] tr[data-instance="${watched}"]`;
    await page.evaluate(`{ const range = document.createRange(); range.selectNodeContents(document.querySelector('${selector} .instance-id')); getSelection().removeAllRanges(); getSelection().addRange(range); }`);
    const where = async () => (await page.evaluate(`({ scrollY: window.scrollY, top: document.querySelector('${selector}').getBoundingClientRect().top, selected: getSelection().toString() })`)) as { scrollY: number; top: number; selected: string };
    const before = await where();
    expect(before).toMatchObject({ selected: watched });
    expect(before.scrollY).toBeGreaterThan(0);

    const from = fetches;
    await put(160, 9);
    await weightShown(160, 9);
    await twoFetchesAfter(from);
    // A rebuilt card takes the selected text out of the page (the selection collapses to nothing).
    expect(await where()).toEqual(before);
  });
});
