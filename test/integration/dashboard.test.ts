import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { openEventStream, type SseConnection } from '../harness/sse-client.ts';
import { requireChromium, screenshotPath, startChromium, steadyLoad, type HeadlessChromium, type SteadyLoad } from '../harness/chromium.ts';
import zookeeper from 'node-zookeeper-client';
import { startAgentBackend, connectZooKeeperClient, logOf, refusingPort, startGateway, startZooKeeper, waitFor, type GatewayProcess, type ManagedProcess, type ZooKeeperCluster } from '../harness/index.ts';

const TOKEN = 'dashboard-test-admin-token';
const AGENT_FLAGS = ['--health', 'tcp', '--interval', '200ms', '--rise', '1', '--fall', '2', '--drain', '0s', '--ttl', '4s'];
/** Registry change to the page: watch, throttle, event stream and render take well under this. */
const PAGE_MS = 5_000;

describe('the dashboard in headless Chromium', () => {
  let zk: ZooKeeperCluster;
  let config: string;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let browser: HeadlessChromium | undefined;
  let page: Page;
  let traffic: SteadyLoad | undefined;
  const agents = new Map<string, { agent: ManagedProcess; port: number }>();

  async function register(service: string, id: string, weight: number): Promise<void> {
    agents.set(id, await startAgentBackend({ registry: `zk://${zk.connectString}/services`, service, id, weight, flags: ['--metadata', 'zone=eu-1', ...AGENT_FLAGS] }));
  }

  const row = (id: string) => page.locator(`article[data-service="user"] tr[data-instance="${id}"]`);

  beforeAll(async () => {
    requireChromium();
    zk = await startZooKeeper();
    config = `
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
registries: [zk://${zk.connectString}/services]
services:
  user: { healthCheck: { path: /healthz, interval: 200ms, healthyThreshold: 1, unhealthyThreshold: 1 }, removalGrace: 0 }
  orders: { balancer: least-connections }
routes:
  - { name: user, path: /api/user, service: user, stripPrefix: true }
  - { name: orders, path: /api/orders, service: orders, stripPrefix: true }
`;
    gateway = await startGateway(config);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
    await Promise.all([register('user', 'user-a', 1), register('user', 'user-b', 2), register('user', 'user-c', 3), register('orders', 'orders-1', 1)]);
    await waitFor(async () => (await admin.services()).reduce((sum, service) => sum + service.instances.length, 0) === 4, { timeoutMs: 60_000, message: 'four instances registered' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    // Light, steady traffic, so the page has rates to show.
    traffic = steadyLoad([`${gateway.url}/api/user/x`, `${gateway.url}/api/orders/x`], 40);
    browser = await startChromium({ width: 1280, height: 800 });
    page = browser.page;
  });

  afterAll(async () => {
    await traffic?.stop();
    await browser?.close();
    await gateway?.process.stop();
    await Promise.all([...agents.values()].map(({ agent }) => agent.stop()));
    await zk?.close();
  });

  it('shows every service as a card with its instances, live', async () => {
    await page.goto(`${admin.url}/?token=${TOKEN}`);
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: PAGE_MS });
    for (const id of ['user-a', 'user-b', 'user-c']) await row(id).waitFor({ timeout: PAGE_MS });
    await page.locator('article[data-service="orders"] tr[data-instance="orders-1"]').waitFor({ timeout: PAGE_MS });
    expect(await row('user-c').locator('td').nth(1).textContent()).toBe('3');
    // The token left the address bar (and so history and screenshots) once the page had it.
    expect(page.url()).toBe(`${admin.url}/`);
  });

  it('lists the routes in matching order with where each comes from', async () => {
    const route = (name: string) => page.locator(`#routes-panel tr[data-route="${name}"]`);
    await route('orders').waitFor({ timeout: PAGE_MS });
    expect(await route('user').locator('td').allInnerTexts()).toEqual([expect.any(String), 'user', '/api/user', 'user', '–', 'file']);
    expect(await route('orders').locator('.source').textContent()).toBe('file');
  });

  it('opens one event stream per page, so that four tabs of one browser all load and go live', async () => {
    // Chromium opens at most six connections per host over HTTP/1.1 and each EventSource keeps one.
    const streams: string[] = [];
    const tabs = await Promise.all([1, 2, 3].map(() => browser!.context.newPage()));
    try {
      for (const tab of tabs) {
        tab.on('request', (request) => void (new URL(request.url()).pathname === '/api/events' && streams.push(request.url())));
        await tab.goto(`${admin.url}/?token=${TOKEN}`, { timeout: PAGE_MS });
        await tab.locator('#connection[data-state="live"]').waitFor({ timeout: PAGE_MS });
        await tab.locator('article[data-service="orders"] tr[data-instance="orders-1"]').waitFor({ timeout: PAGE_MS });
      }
      expect(streams).toHaveLength(tabs.length);
    } finally {
      await Promise.all(tabs.map((tab) => tab.close()));
    }
  });

  it('adds the card row of a backend as its agent registers it, and shows a health flip', async () => {
    await register('user', 'user-d', 2);
    // The agent's start and first probe are not the page's doing (seconds on a loaded machine): PAGE_MS counts from the gateway's view.
    await waitFor(async () => (await admin.services()).some((service) => service.instances.some((instance) => instance.id === 'user-d')), { timeoutMs: 20_000, message: 'user-d registered' });
    await row('user-d').waitFor({ timeout: PAGE_MS });
    await page.locator('#event-log li[data-type="instance-added"]', { hasText: 'user/user-d' }).waitFor({ timeout: PAGE_MS });
    await fetch(`http://127.0.0.1:${agents.get('user-b')!.port}/health/fail`, { method: 'POST' });
    await row('user-b').locator('.badge[data-health="unhealthy"]').waitFor({ timeout: PAGE_MS });
    expect(await row('user-b').locator('.reason').textContent()).toContain('active health check failing');
    // Rates come from successive counter readings: wait until they show the new instance serving and the failing one not.
    const rate = async (id: string) => Number((await row(id).locator('td').nth(3).innerText()).split('\n')[0]);
    await waitFor(async () => (await rate('user-d')) > 0 && (await rate('user-b')) === 0, { timeoutMs: 2 * PAGE_MS, message: 'rates on user-d and none on user-b' });
    await page.screenshot({ path: await screenshotPath('dashboard.png') });
  });

  it('removes the row as soon as the agent deregisters the backend', async () => {
    await agents.get('user-d')!.agent.stop();
    await row('user-d').waitFor({ state: 'detached', timeout: PAGE_MS });
    await page.locator('#event-log li[data-type="instance-removed"]', { hasText: 'user/user-d' }).waitFor({ timeout: PAGE_MS });
    expect(await page.locator('article[data-service="user"] tbody tr').count()).toBe(3);
    // The page forgets the counters and rates of the instance that left: it keeps them for the rows it shows only.
    await page.locator('#services[data-sampled="4"]').waitFor({ state: 'attached', timeout: PAGE_MS });
    expect(await page.locator('#services tbody tr').count()).toBe(4);
  });

  it('retries its event stream with a backoff while the gateway refuses it (503 too-many-streams), says so, and goes live once a stream is free', async () => {
    // Take every stream the admin listener serves but the page's own.
    const held: SseConnection[] = [];
    try {
      for (let attempt = 0; attempt < 100; attempt += 1) {
        const stream = await openEventStream(`${admin.url}/api/events`, { authorization: `Bearer ${TOKEN}` });
        if (stream.status !== 200) break;
        held.push(stream);
      }
      const tab = await browser!.context.newPage();
      try {
        await tab.goto(`${admin.url}/?token=${TOKEN}`, { timeout: PAGE_MS });
        // An EventSource refused with a 503 gives up for good: the page must try again by itself.
        await tab.locator('#connection[data-state="retrying"]', { hasText: 'retrying' }).waitFor({ timeout: PAGE_MS });
        await tab.locator('#connection[data-state="retrying"]', { hasText: 'retrying in 2 s' }).waitFor({ timeout: PAGE_MS });
        held.pop()!.close();
        await tab.locator('#connection[data-state="live"]').waitFor({ timeout: 2 * PAGE_MS });
        await tab.locator('article[data-service="orders"] tr[data-instance="orders-1"]').waitFor({ timeout: PAGE_MS });
      } finally {
        await tab.close();
      }
    } finally {
      for (const stream of held) stream.close();
    }
  });
  it('marks a draining instance and the weight picks use now, and says why a service whose registry entries were all skipped has no instances', async () => {
    const writer = await connectZooKeeperClient(zk.connectString);
    try {
      const call = (start: (done: (error: unknown) => void) => void) => new Promise<void>((resolve, reject) => start((error) => (error ? reject(error) : resolve())));
      // Ephemeral entries, as an agent's are: they go with this session when the test ends.
      const create = async (path: string, data: object) => {
        await call((done) => writer.mkdirp(path.slice(0, path.lastIndexOf('/')), done));
        await call((done) => writer.create(path, Buffer.from(JSON.stringify(data)), zookeeper.CreateMode.EPHEMERAL, done));
      };
      // An id as long as the registry contract allows, with no place to break.
      const billing = { id: `billing-${'x'.repeat(240)}`, service: 'billing', host: '127.0.0.1', port: await refusingPort(), weight: 5, draining: true };
      await create('/services/billing/billing-1', billing);
      // A payload without a port: skipped by the gateway, so the service is listed with no instance. Other registrars than the agent allow any name.
      await create('/services/broken <em>service/broken-1', { id: 'broken-1', service: 'broken <em>service', host: '127.0.0.1' });
      const drained = page.locator(`article[data-service="billing"] tr[data-instance="${billing.id}"]`);
      await drained.locator('.badge.draining').waitFor({ timeout: PAGE_MS });
      expect(await drained.getAttribute('data-draining')).toBe('true');
      expect(await drained.locator('td').nth(1).textContent()).toBe('5now 0');
      // The long id wraps: the row's last column still ends inside the card.
      const card = (await page.locator('article[data-service="billing"]').boundingBox())!;
      const errors = (await drained.locator('td').last().boundingBox())!;
      expect(errors.x + errors.width).toBeLessThanOrEqual(card.x + card.width);
      // Named by its heading, so the id built from the name must hold no whitespace; the name shows as text, not markup.
      const broken = page.getByRole('article', { name: 'broken <em>service', exact: true });
      await broken.locator('.skipped', { hasText: '1 entry skipped' }).waitFor({ timeout: PAGE_MS });
      expect(await broken.locator('.empty').textContent()).toMatch(/^No instances: every registry entry was skipped\. \/services\/broken <em>service\/broken-1: .*port/);
      // The drain mark withdrawn: full weight again, and no badge.
      await call((done) => writer.setData('/services/billing/billing-1', Buffer.from(JSON.stringify({ ...billing, draining: false })), -1, done));
      await drained.and(page.locator('[data-draining="false"]')).waitFor({ timeout: PAGE_MS });
      expect(await drained.locator('td').nth(1).textContent()).toBe('5');
      expect(await drained.locator('.badge.draining').count()).toBe(0);
    } finally {
      writer.close();
    }
  });

  it('says the gateway does not answer while it hangs (a host gone behind a partition sends no refusal), and clears that once it answers again', async () => {
    await page.locator('#notice').waitFor({ state: 'hidden', timeout: PAGE_MS });
    // A frozen process, like a host that is down: the kernel takes the connection and nothing answers, so a fetch would wait for minutes.
    gateway.process.pause();
    try {
      await page.locator('#notice', { hasText: "The gateway's admin API does not answer" }).waitFor({ timeout: 2 * PAGE_MS });
      expect(await page.locator('#services').getAttribute('data-outdated')).toBe('true');
    } finally {
      gateway.process.resume();
    }
    await page.locator('#notice').waitFor({ state: 'hidden', timeout: 2 * PAGE_MS });
    expect(await page.locator('#services').getAttribute('data-outdated')).toBeNull();
  });

  it('shows a registry outage on its chip, and says the gateway does not answer while it is down, then goes live again once it is back', async () => {
    const chip = page.locator('#registries li', { hasText: `zk://${zk.connectString}/services` });
    await zk.nodes[0]!.stop();
    await chip.and(page.locator('[data-state="stale"]')).waitFor({ timeout: PAGE_MS });
    expect(await chip.textContent()).toMatch(/ stale since \d/);
    // ZooKeeper comes back while the gateway is down and starts again (the agents need it to deregister
    // at the end; the gateway's start does not wait for it, nor does the page's recovery).
    const zooKeeperBack = zk.nodes[0]!.restart();
    zooKeeperBack.catch(() => undefined);

    await gateway.process.stop();
    // A fetch that gets no answer says only "Failed to fetch": the page names what is down, and how old the cards are.
    await page.locator('#notice', { hasText: "The gateway's admin API does not answer" }).waitFor({ timeout: PAGE_MS });
    expect(await page.locator('#notice').textContent()).toMatch(/The cards show the state as of \d/);
    expect(await page.locator('#services').getAttribute('data-outdated')).toBe('true');
    gateway = await startGateway(config, {}, { firstPorts: { port: gateway.port, adminPort: gateway.adminPort } });
    expect(`${admin.url}/`).toBe(`http://127.0.0.1:${gateway.adminPort}/`);
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 2 * PAGE_MS });
    await page.locator('#notice').waitFor({ state: 'hidden', timeout: PAGE_MS });
    expect(await page.locator('#services').getAttribute('data-outdated')).toBeNull();
    await zooKeeperBack;
  });
});
