import { beforeAll, describe, expect, it } from 'vitest';
import { dashboardOnEtcd } from '../harness/dashboard-fixture.ts';
import { waitFor } from '../harness/index.ts';

const TOKEN = 'dashboard-large-service-token';
/** As many instances as made a whole-card rebuild hold the page's main thread for hundreds of milliseconds. */
const INSTANCES = 200;
const SERVICE = 'big';
/** Registry change to the page: watch, throttle, event stream and render take well under this. */
const PAGE_MS = 10_000;
/** The page's first load of 200 rows, on a loaded 2-core machine. */
const FIRST_LOAD_MS = 30_000;

const instanceId = (index: number) => `i${String(index).padStart(3, '0')}`;
/** A native entry on an address nobody serves: no checks, no traffic, so only the registry changes it. */
const entry = (index: number, weight = 1) => JSON.stringify({ id: instanceId(index), service: SERVICE, host: '127.0.0.2', port: 10_000 + index, weight });

/**
 * A service of 200 instances on the dashboard: its card is changed in place, one row per instance
 * kept across updates, so that an update rewrites only what changed and leaves what the user is
 * looking at (a text selection, the scroll position) alone. The card used to be built again whole.
 */
describe('the dashboard in headless Chromium with a service of 200 instances', () => {
  const dashboard = dashboardOnEtcd({
    token: TOKEN,
    registry: '/services',
    fill: () => Promise.all(Array.from({ length: INSTANCES }, (_, index) => put(index))),
    listed: (services) => services.find((service) => service.name === SERVICE)?.instances.length === INSTANCES,
    what: `${INSTANCES} instances`,
    pageMs: PAGE_MS,
  });
  const { twoFetchesAfter } = dashboard;

  const row = (id: string) => dashboard.page.locator(`article[data-service="${SERVICE}"] tr[data-instance="${id}"]`);
  /** Waits until the row of instance `index` shows `weight`. */
  const weightShown = (index: number, weight: number) =>
    waitFor(async () => (await row(instanceId(index)).locator('td').nth(1).textContent({ timeout: PAGE_MS })) === String(weight), { timeoutMs: PAGE_MS, message: `${instanceId(index)} shown with weight ${weight}` });
  const put = (index: number, weight?: number) => dashboard.writer.put(`/services/${SERVICE}/${instanceId(index)}`).value(entry(index, weight)).exec();

  beforeAll(async () => {
    await dashboard.page.goto(`${dashboard.admin.url}/?token=${TOKEN}`);
    await dashboard.page.locator('#connection[data-state="live"]').waitFor({ timeout: FIRST_LOAD_MS });
    await waitFor(async () => (await dashboard.page.locator(`article[data-service="${SERVICE}"] tbody tr`).count()) === INSTANCES, { timeoutMs: FIRST_LOAD_MS, message: `${INSTANCES} rows` });
  });

  it('keeps the row of every instance across updates, changes one in place, and adds and drops only the rows of instances that came and went', async () => {
    // Each row is tagged with the instance it shows (an expando property, which a rebuilt row lacks), and so is the card.
    await dashboard.page.evaluate(`document.querySelectorAll('article[data-service="${SERVICE}"] tbody tr').forEach((row) => { row.marked = row.dataset.instance; }); document.querySelector('article[data-service="${SERVICE}"]').marked = true`);
    const from = dashboard.fetches;
    await Promise.all([put(100, 7), dashboard.writer.delete().key(`/services/${SERVICE}/${instanceId(50)}`).exec(), put(INSTANCES)]);
    await weightShown(100, 7);
    await row(instanceId(50)).waitFor({ state: 'detached', timeout: PAGE_MS });
    await row(instanceId(INSTANCES)).waitFor({ timeout: PAGE_MS });
    await twoFetchesAfter(from);

    const rows = (await dashboard.page.evaluate(`[...document.querySelectorAll('article[data-service="${SERVICE}"] tbody tr')].map((row) => ({ id: row.dataset.instance, marked: row.marked ?? null })).concat([{ card: document.querySelector('article[data-service="${SERVICE}"]').marked ?? null }])`)) as { id?: string; marked?: string | null; card?: boolean | null }[];
    const card = rows.pop()!;
    expect(card.card).toBe(true);
    // A row kept shows the same instance as before: rows reused by position would now show their neighbours.
    const expected = (await dashboard.admin.services()).find((service) => service.name === SERVICE)!.instances.map((instance) => instance.id);
    expect(rows.map((shown) => shown.id)).toEqual(expected);
    expect(rows.filter((shown) => shown.marked !== shown.id).map((shown) => shown.id)).toEqual([instanceId(INSTANCES)]);
    expect(rows.find((shown) => shown.id === instanceId(INSTANCES))!.marked).toBeNull();
  });

  it('leaves the text the user selected in an unchanged row, and where the page is scrolled, as they were across an update of another row', async () => {
    const watched = instanceId(150);
    await row(watched).evaluate((element) => element.scrollIntoView({ block: 'start' }));
    const selector = `article[data-service="${SERVICE}"] tr[data-instance="${watched}"]`;
    await dashboard.page.evaluate(`{ const range = document.createRange(); range.selectNodeContents(document.querySelector('${selector} .instance-id')); getSelection().removeAllRanges(); getSelection().addRange(range); }`);
    const where = async () => (await dashboard.page.evaluate(`({ scrollY: window.scrollY, top: document.querySelector('${selector}').getBoundingClientRect().top, selected: getSelection().toString() })`)) as { scrollY: number; top: number; selected: string };
    const before = await where();
    expect(before).toMatchObject({ selected: watched });
    expect(before.scrollY).toBeGreaterThan(0);

    const from = dashboard.fetches;
    await put(160, 9);
    await weightShown(160, 9);
    await twoFetchesAfter(from);
    // A rebuilt card takes the selected text out of the page (the selection collapses to nothing).
    expect(await where()).toEqual(before);
  });
});
