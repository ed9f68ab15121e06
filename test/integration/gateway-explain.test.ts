// GET /api/explain, `switchboard explain` and the dashboard's "try a request" box, on a real gateway
// fed by a real etcd with agents and backends.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExplainView } from '../../gateway/admin/explain-view.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, REPO_ROOT, sendRequest, startAgentBackend, startEtcd, startGateway, waitFor, type EtcdCluster, type GatewayProcess, type ManagedProcess } from '../harness/index.ts';

const TOKEN = 'explain-integration-admin-token';
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const AGENT_FLAGS = ['--health', 'tcp', '--interval', '200ms', '--rise', '1', '--fall', '2', '--drain', '0s', '--ttl', '4s'];

describe('explain: where a request would go, and why', () => {
  let etcd: EtcdCluster;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const agents: ManagedProcess[] = [];

  const explain = async (query: Record<string, string>): Promise<ExplainView> => {
    const response = await admin.get(`/api/explain?${new URLSearchParams(query)}`);
    expect(response.status).toBe(200);
    return (await response.json()) as ExplainView;
  };

  /** The backend name the gateway reached for `path` (backend.mjs echoes its --name). */
  const servedBy = async (path: string, host = '127.0.0.1'): Promise<string> => {
    const answer = await sendRequest(gateway.port, path, { headers: { host } });
    expect(answer.status).toBe(200);
    return (JSON.parse(answer.body) as { name: string }).name;
  };

  beforeAll(async () => {
    etcd = await startEtcd();
    const registry = `etcd://${etcd.endpoints[0]!.replace('http://', '')}/services`;
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
registries: [${registry}]
middlewares:
  tag: { headers: { request: { set: { x-tag: explain } } } }
services:
  users: { balancer: weighted-round-robin, healthCheck: { path: /healthz, interval: 200ms, healthyThreshold: 1, unhealthyThreshold: 1 } }
routes:
  - { name: admin-host, host: admin.example.test, service: users }
  - { name: users, path: /api/users, service: users, stripPrefix: true, middlewares: [tag] }
  - { name: users-write, path: /api/users, methods: [POST], service: users }
  - { name: by-name, namespace: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
    for (const [id, weight] of [['users-a', 1], ['users-b', 3]] as const) {
      agents.push((await startAgentBackend({ registry, service: 'users', id, weight, flags: AGENT_FLAGS })).agent);
    }
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'users')?.instances.filter((instance) => instance.health.state === 'healthy').length === 2, {
      timeoutMs: 20_000,
      message: 'both users instances healthy',
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all(agents.map((agent) => agent.stop()));
    await etcd?.close();
  });

  it('explains a namespace route: service from the path, both instances with weights, and a pick that the next request confirms', async () => {
    const view = await explain({ method: 'GET', path: '/users/hello?x=1' });
    expect(view.outcome).toBe('proxy');
    expect(view.route).toEqual({ name: 'by-name', namespace: true, service: 'users', upstreamPath: '/hello?x=1' });
    expect(view.service).toMatchObject({ name: 'users', declared: true, balancer: 'weighted-round-robin', panic: false });
    expect(view.instances.map((instance) => [instance.id, instance.weight, instance.health.state, instance.routable]).sort()).toEqual([
      ['users-a', 1, 'healthy', true],
      ['users-b', 3, 'healthy', true],
    ]);
    expect(view.middleware.map((layer) => layer.name)).toEqual(['requestId', 'forwarded', 'namespace']);
    // Peeking counts nothing: several explains in a row name the same instance, and a real request
    // then goes exactly there; over a whole weighted cycle each prediction holds.
    for (let step = 0; step < 8; step += 1) {
      const first = await explain({ path: '/users/x' });
      const again = await explain({ path: '/users/x' });
      expect(again.pick).toEqual(first.pick);
      expect(await servedBy('/users/x')).toBe(first.pick!.id);
    }
  });

  it('explains a host route, listing the routes that nearly matched and why not', async () => {
    const view = await explain({ method: 'GET', host: 'Admin.Example.Test:8080', path: '/api/users/7' });
    expect(view.route).toMatchObject({ name: 'admin-host', service: 'users', upstreamPath: '/api/users/7' });
    expect(view.outcome).toBe('proxy');
    const misses = new Map(view.nearMisses.map((miss) => [miss.name, miss.reasons]));
    expect(misses.get('users')).toEqual(['matches too, but "admin-host" comes first (more specific)']);
    expect(misses.get('users-write')).toEqual(['method GET is not one of POST']);
    expect(misses.get('by-name')).toEqual(['no service "api" is declared or listed by a registry']);
    expect(await servedBy('/api/users/7', 'admin.example.test')).toBe(view.pick!.id);

    const named = await explain({ method: 'GET', path: '/api/users/7' });
    expect(named.route?.name).toBe('users');
    expect(named.middleware.map((layer) => `${layer.scope}:${layer.name}:${layer.kind}`)).toEqual(['global:requestId:requestId', 'global:forwarded:forwarded', 'route:stripPrefix:stripPrefix', 'named:tag:headers']);
    expect(new Map(named.nearMisses.map((miss) => [miss.name, miss.reasons])).get('admin-host')).toEqual(['host "" is not "admin.example.test"']);
  });

  it('explains a path that matches nothing, as the 404 the gateway answers', async () => {
    const view = await explain({ method: 'GET', path: '/nothing/here' });
    expect(view).toMatchObject({ outcome: 'no-route', route: null, service: null, instances: [], pick: null });
    const misses = new Map(view.nearMisses.map((miss) => [miss.name, miss.reasons]));
    expect(misses.get('users')).toEqual(['path "/nothing/here" is not under "/api/users"']);
    expect(misses.get('by-name')).toEqual(['no service "nothing" is declared or listed by a registry']);
    expect((await sendRequest(gateway.port, '/nothing/here')).status).toBe(404);
  });

  it('normalises the path as routing does, refuses a bad query, and needs the admin token', async () => {
    expect((await explain({ path: '/api/./users/../users/x' })).route?.name).toBe('users');
    expect((await admin.get('/api/explain?method=GET')).status).toBe(400);
    expect((await fetch(`${admin.url}/api/explain?path=/users/x`)).status).toBe(401);
  });

  it('answers switchboard explain on the command line (exit 0 when proxied, 1 for a 404)', async () => {
    const run = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), 'explain', '--admin', admin.url, ...args], { env: { ...process.env, SWITCHBOARD_ADMIN_TOKEN: TOKEN }, timeout: 30_000 });
        let stdout = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.once('error', reject);
        child.once('close', (status) => resolve({ status, stdout }));
      });
    const proxied = await run('--path', '/api/users/1');
    expect(proxied.stdout).toMatch(/^route: +users → service users, upstream path \/1$/m);
    expect(proxied.stdout).toMatch(/^outcome: +proxy → users-[ab] /m);
    expect(proxied.status).toBe(0);
    const missing = await run('--path', '/nothing');
    expect(missing.stdout).toContain('route:      none matches (404)');
    expect(missing.status).toBe(1);
  });

  describe('the dashboard box in headless Chromium', () => {
    let context: BrowserContext;
    let page: Page;
    let profile: string;

    beforeAll(async () => {
      if (!existsSync(CHROMIUM)) throw new Error(`the dashboard test drives Chromium at ${CHROMIUM}, which is missing: apt-get install -y chromium (.ci/run installs it)`);
      profile = await mkdtemp(join(tmpdir(), 'sb-chromium-'));
      context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
      page = context.pages()[0] ?? (await context.newPage());
    });

    afterAll(async () => {
      await context?.close();
      if (profile) await rm(profile, { recursive: true, force: true });
    });

    it('shows the route, the instances and the pick for a request typed into it, and a 404 for a path nothing serves', async () => {
      await page.goto(`${admin.url}/?token=${TOKEN}`);
      const form = page.locator('#explain-form');
      await form.locator('input[name="path"]').fill('/api/users/42');
      await form.locator('button').click();
      const outcome = page.locator('#explain-result [data-field="outcome"]');
      await outcome.waitFor({ timeout: 10_000 });
      expect(await outcome.getAttribute('data-outcome')).toBe('proxy');
      const picked = await outcome.getAttribute('data-pick');
      expect(['users-a', 'users-b']).toContain(picked);
      expect(await page.locator('#explain-result [data-field="route"]').textContent()).toBe('users → users /42');
      expect(await page.locator('#explain-result [data-field="instances"] li').count()).toBe(2);
      expect(await page.locator(`#explain-result li[data-instance="${picked}"]`).getAttribute('data-picked')).toBe('true');
      expect(await page.locator('#explain-result [data-field="middleware"]').textContent()).toBe('requestId → forwarded → stripPrefix → tag');

      await form.locator('input[name="path"]').fill('/nowhere');
      await form.locator('button').click();
      await page.locator('#explain-result [data-outcome="no-route"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('#explain-result [data-field="route"]').textContent()).toBe('none matches (404)');
      expect(await page.locator('#explain-result [data-field="near-misses"] li[data-route="by-name"]').textContent()).toContain('no service "nowhere"');
    });
  });
});
