import type { Etcd3 } from 'etcd3';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import type { ServiceView } from '../../gateway/admin/service-view.ts';
import { adminClient, type AdminClient } from './admin-client.ts';
import { requireChromium, startChromium, type HeadlessChromium } from './chromium.ts';
import { etcdClient } from './etcd-client.ts';
import { startEtcd, type EtcdCluster } from './etcd.ts';
import { logOf, startGateway, type GatewayProcess } from './programs.ts';
import { waitFor } from './wait.ts';

/** A gateway whose services etcd holds, and headless Chromium for its dashboard, shared by the tests of one file; filled in before all its tests. */
export interface DashboardOnEtcd {
  writer: Etcd3;
  gateway: GatewayProcess;
  /** The admin API, with the token. */
  admin: AdminClient;
  browser: HeadlessChromium;
  /** Not yet at the dashboard: the test goes there (`admin.url` with `?token=`). */
  page: Page;
  /** `/api/services` answers the page has received. */
  fetches: number;
  /** Waits until the page has received two more `/api/services` answers than `from` (so rendered at least one since then). */
  twoFetchesAfter(from: number): Promise<void>;
}

/** Options of `dashboardOnEtcd`. */
export interface DashboardOnEtcdOptions {
  /** The admin listener's token. */
  readonly token: string;
  /** What follows etcd's address in the gateway's registry URL: the key prefix, and a `?layout=` if any. */
  readonly registry: string;
  /** Writes the services before the gateway starts. */
  fill(writer: Etcd3): Promise<unknown>;
  /** True once `/api/services` lists what `fill` wrote; `what` names it in the timeout's message. */
  listed(services: ServiceView[]): boolean;
  readonly what: string;
  /** How long the page may take to show a change (the fetches `twoFetchesAfter` waits for). */
  readonly pageMs: number;
}

/**
 * Before all tests of the file or describe block it is called in: starts etcd, fills it, starts a
 * gateway on it (its log in the failure when it does not list the services within 20 s) and
 * Chromium, and counts the page's `/api/services` answers; stops them all after all.
 */
export function dashboardOnEtcd(options: DashboardOnEtcdOptions): DashboardOnEtcd {
  let etcd: EtcdCluster | undefined;
  const fixture = {
    fetches: 0,
    async twoFetchesAfter(from) {
      await waitFor(async () => fixture.fetches >= from + 2, { timeoutMs: options.pageMs, message: 'two more fetches of /api/services by the page' });
    },
  } as DashboardOnEtcd;
  beforeAll(async () => {
    requireChromium();
    etcd = await startEtcd();
    fixture.writer = etcdClient(etcd.endpoints);
    await options.fill(fixture.writer);
    fixture.gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${options.token} }
accessLog: false
registries: ["${etcd.endpoints[0]!.replace('http://', 'etcd://')}${options.registry}"]
`);
    fixture.admin = adminClient(`http://127.0.0.1:${fixture.gateway.adminPort}`, options.token);
    await waitFor(async () => options.listed(await fixture.admin.services()), { timeoutMs: 20_000, message: `${options.what} listed` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(fixture.gateway.process)}`);
    });
    fixture.browser = await startChromium({ width: 1280, height: 800 });
    fixture.page = fixture.browser.page;
    fixture.page.on('response', (response) => void (new URL(response.url()).pathname === '/api/services' && fixture.fetches++));
  });
  afterAll(async () => {
    await fixture.browser?.close();
    await fixture.gateway?.process.stop();
    fixture.writer?.close();
    await etcd?.close();
  });
  return fixture;
}
