import { describe, expect, it } from 'vitest';
import { dashboardOnEtcd } from '../harness/dashboard-fixture.ts';
import { waitFor } from '../harness/index.ts';

const TOKEN = 'dashboard-many-services-token';
/** Enough cards that rebuilding all of them on every fetch shows, few enough to register quickly. */
const SERVICES = 200;
const INSTANCES = 2;
/** Registry change to the page: watch, throttle, event stream and render take well under this. */
const PAGE_MS = 10_000;

const serviceName = (index: number) => `svc-${String(index).padStart(3, '0')}`;

/**
 * The dashboard with a few hundred services (instances on addresses nobody serves: no checks, no
 * traffic, so nothing on their cards changes). Rebuilding every card on every fetch and event made
 * the browser restyle and lay out the whole page each time, which with a thousand services kept its
 * main thread busy for seconds on end: a card is now built once and changed in place.
 */
describe('the dashboard in headless Chromium with many services', () => {
  const dashboard = dashboardOnEtcd({
    token: TOKEN,
    registry: '/backends?layout=registrator',
    fill: (writer) => {
      const puts: Promise<unknown>[] = [];
      for (let service = 0; service < SERVICES; service += 1) {
        for (let instance = 0; instance < INSTANCES; instance += 1) puts.push(writer.put(`/backends/${serviceName(service)}/i${instance}`).value(`127.0.0.${instance + 2}:${10_000 + service}`).exec());
      }
      return Promise.all(puts);
    },
    listed: (services) => services.length === SERVICES,
    what: `${SERVICES} services`,
    pageMs: PAGE_MS,
  });
  const { twoFetchesAfter } = dashboard;

  /** The services whose card is still the element `mark` tagged (an expando property, which a rebuilt card lacks), in page order. */
  const marked = async () => (await dashboard.page.evaluate(`[...document.querySelectorAll('article.card')].filter((card) => card.marked).map((card) => card.dataset.service)`)) as string[];
  const mark = () => dashboard.page.evaluate(`document.querySelectorAll('article.card').forEach((card) => { card.marked = true; })`);

  it('keeps the card of a service whose instances did not change across fetches, in order', async () => {
    await dashboard.page.goto(`${dashboard.admin.url}/?token=${TOKEN}`);
    await dashboard.page.locator('#connection[data-state="live"]').waitFor({ timeout: PAGE_MS });
    await waitFor(async () => (await dashboard.page.locator('article.card').count()) === SERVICES, { timeoutMs: PAGE_MS, message: `${SERVICES} cards` });
    await mark();
    await twoFetchesAfter(dashboard.fetches);
    const kept = await marked();
    // Rebuilt on every fetch, none would be left (the old code's behaviour).
    expect(kept).toHaveLength(SERVICES);
    expect(kept).toEqual(Array.from({ length: SERVICES }, (_, index) => serviceName(index)));
  });

  it('asks for /api/services again with the ETag it was given, and gets 304 with no body while nothing changed', async () => {
    // The headers and status that went over the wire, which the page's own view of a revalidated answer (200 from cache) hides.
    const cdp = await dashboard.browser.context.newCDPSession(dashboard.page);
    const urls = new Map<string, string>();
    const exchanges = new Map<string, { ifNoneMatch: string | undefined; status?: number }>();
    cdp.on('Network.requestWillBeSent', ({ requestId, request }) => urls.set(requestId, request.url));
    cdp.on('Network.requestWillBeSentExtraInfo', ({ requestId, headers }) => exchanges.set(requestId, { ifNoneMatch: (headers['If-None-Match'] ?? headers['if-none-match']) as string | undefined }));
    cdp.on('Network.responseReceivedExtraInfo', ({ requestId, statusCode }) => {
      const exchange = exchanges.get(requestId);
      if (exchange) exchange.status = statusCode;
    });
    await cdp.send('Network.enable');
    const current = (await dashboard.admin.get('/api/services')).headers.get('etag');
    const answered = () => [...exchanges].filter(([id, exchange]) => urls.get(id)?.endsWith('/api/services') && exchange.status !== undefined).map(([, exchange]) => exchange);
    await waitFor(async () => answered().length >= 2, { timeoutMs: PAGE_MS, message: 'two fetches of /api/services seen on the wire' });
    await cdp.detach();
    for (const exchange of answered()) expect(exchange).toEqual({ ifNoneMatch: current, status: 304 });
    // The page still shows every card (a 304 hands it the stored body).
    expect(await dashboard.page.locator('article.card').count()).toBe(SERVICES);
  });

  it('changes in place the card of the service an event changed, adding the new instance, and keeps every card in place', async () => {
    await mark();
    const changed = serviceName(7);
    await dashboard.writer.put(`/backends/${changed}/i9`).value('127.0.0.9:10007');
    await dashboard.page.locator(`article[data-service="${changed}"] tr[data-instance="i9"]`).waitFor({ timeout: PAGE_MS });
    await twoFetchesAfter(dashboard.fetches);
    // The changed card too is the same element (dashboard-large-service.test.ts follows its rows).
    expect(await marked()).toEqual(Array.from({ length: SERVICES }, (_, index) => serviceName(index)));
    expect(await dashboard.page.locator(`article[data-service="${changed}"] tbody tr`).count()).toBe(INSTANCES + 1);
  });

  it('keeps the card of a service whose instances all left, which says so', async () => {
    await mark();
    const emptied = serviceName(SERVICES - 1);
    await dashboard.writer.delete().prefix(`/backends/${emptied}/`);
    await dashboard.page.locator(`article[data-service="${emptied}"] .empty`, { hasText: 'No instances.' }).waitFor({ timeout: PAGE_MS });
    await twoFetchesAfter(dashboard.fetches);
    expect(await marked()).toHaveLength(SERVICES);
    expect(await dashboard.page.locator(`article[data-service="${emptied}"] table`).count()).toBe(0);
  });
});
