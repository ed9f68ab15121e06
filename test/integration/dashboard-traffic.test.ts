import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { requireChromium, screenshotPath, startChromium, steadyLoad, type HeadlessChromium, type SteadyLoad } from '../harness/chromium.ts';
import { logOf, startAgentBackend, startGateway, startZooKeeper, waitFor, type AgentBackend, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

const TOKEN = 'dashboard-traffic-test-token';
const AGENT_FLAGS = ['--health', 'tcp', '--interval', '200ms', '--rise', '1', '--fall', '2', '--drain', '0s', '--ttl', '4s'];
/** Traffic must show on the chart, and move, well within this (the chart refreshes every second). */
const CHART_MS = 20_000;

describe('the dashboard traffic chart in headless Chromium', () => {
  let zk: ZooKeeperCluster;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let browser: HeadlessChromium | undefined;
  let page: Page;
  let load: SteadyLoad | undefined;
  const agents = new Map<string, AgentBackend>();

  const line = (address: string) => page.locator(`figure.traffic-chart[data-service="shop"] polyline[data-address="${address}"]`);
  const recent = async (address: string) => Number(await line(address).getAttribute('data-recent', { timeout: CHART_MS }));
  const addressOf = (id: string) => `127.0.0.1:${agents.get(id)!.port}`;

  beforeAll(async () => {
    requireChromium();
    // Chromium starts beside the rest, which it does not need until the load runs; assigned as
    // soon as it is up, so afterAll closes it even when another start-up failed.
    const launched = startChromium({ width: 1280, height: 900 }).then((started) => (browser = started));
    launched.catch(() => undefined);
    try {
      await startServersAndLoad();
    } finally {
      await launched.catch(() => undefined);
    }
    page = (await launched).page;
  });

  async function startServersAndLoad(): Promise<void> {
    zk = await startZooKeeper();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
registries: [zk://${zk.connectString}/services]
services:
  shop: { healthCheck: { path: /healthz, interval: 200ms, healthyThreshold: 1, unhealthyThreshold: 1 }, removalGrace: 0 }
routes:
  - { name: shop, path: /shop, service: shop, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
    for (const id of ['shop-a', 'shop-b']) agents.set(id, await startAgentBackend({ registry: `zk://${zk.connectString}/services`, service: 'shop', id, weight: 1, flags: AGENT_FLAGS }));
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'shop')?.instances.length === 2, { timeoutMs: 60_000, message: 'both shop instances registered' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    // Steady load: two requests in flight at a time, so both instances of the round robin take some every second.
    load = steadyLoad([`${gateway.url}/shop/item`, `${gateway.url}/shop/item`], 20);
  }

  afterAll(async () => {
    await load?.stop();
    await browser?.close();
    await gateway?.process.stop();
    await Promise.all([...agents.values()].map(({ agent }) => agent.stop()));
    await zk?.close();
  });

  it('draws the requests per second of each instance of a service', async () => {
    await page.goto(`${admin.url}/?token=${TOKEN}`);
    await waitFor(async () => (await recent(addressOf('shop-a'))) > 0 && (await recent(addressOf('shop-b'))) > 0, { timeoutMs: CHART_MS, message: 'both instances drawn with traffic' });
    // Ten seconds of both serving, so the picture shows the balance before the shift.
    const chart = page.locator('figure.traffic-chart[data-service="shop"]');
    const first = Number(await chart.getAttribute('data-end'));
    await waitFor(async () => Number(await chart.getAttribute('data-end')) >= first + 10, { timeoutMs: CHART_MS, message: 'ten seconds of both instances drawn' });
    expect(await recent(addressOf('shop-a'))).toBeGreaterThan(0);
  });

  it('shows the traffic moving to the other instance when one is stopped, with the removal marked', async () => {
    const before = await recent(addressOf('shop-b'));
    const stopped = addressOf('shop-a');
    // The agent deregisters its backend and stops it: the balancer sends everything to shop-b.
    await agents.get('shop-a')!.agent.stop();
    await waitFor(async () => (await recent(stopped)) === 0 && (await recent(addressOf('shop-b'))) > before * 1.4, {
      timeoutMs: CHART_MS,
      message: 'no traffic on the stopped instance and more on the other',
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}: a=${await recent(stopped)} b=${await recent(addressOf('shop-b'))} (before ${before})`);
    });
    // The stopped instance's history stays on the chart, and its removal is marked where it happened.
    expect(Number(await line(stopped).getAttribute('data-total'))).toBeGreaterThan(0);
    await page.locator('figure.traffic-chart[data-service="shop"] line.traffic-marker[data-type="instance-removed"]').waitFor({ state: 'attached', timeout: CHART_MS });
    // A few more seconds, so the picture shows both sides of the shift.
    const end = Number(await page.locator('figure.traffic-chart[data-service="shop"]').getAttribute('data-end'));
    await waitFor(async () => Number(await page.locator('figure.traffic-chart[data-service="shop"]').getAttribute('data-end')) >= end + 5, { timeoutMs: CHART_MS, message: 'five more seconds drawn' });
    await page.locator('#traffic').screenshot({ path: await screenshotPath('dashboard-traffic.png') });
  });
});
