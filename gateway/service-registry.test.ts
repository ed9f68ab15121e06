import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PickedEndpoint } from '../src/balance/index.ts';
import { DiscoveryAggregator, ProviderStore, StaticProvider } from '../src/discovery/index.ts';
import type { HealthSnapshot } from '../src/health/index.ts';
import { rootLogger } from '../src/logger.ts';
import { waitFor } from '../test/harness/wait.ts';
import { parseConfig } from './config/index.ts';
import { registryBalancerSource, ServiceBalancers } from './service-registry.ts';

describe('ServiceBalancers', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function start(configText: string) {
    const provider = new StaticProvider('static');
    const aggregator = new DiscoveryAggregator([provider], { throttleMs: 1 });
    const balancers = new ServiceBalancers(registryBalancerSource(aggregator), parseConfig('g.yaml', configText));
    cleanups.push(() => aggregator.close(), () => balancers.close());
    aggregator.start();
    const list = (service: string, ...ports: number[]) =>
      provider.replace(new Map([[service, ports.map((port) => ({ service, name: `127.0.0.1:${port}`, data: null }))]]));
    return { balancers, list };
  }

  /**
   * Listens on a port of 127.0.0.1 that destroys each connection and returns the port: kept open until
   * the test ends, or closed at once so that the port is one nothing listens on any more.
   */
  async function listen(keep: boolean): Promise<number> {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
    if (keep) cleanups.push(close);
    else await close();
    return port;
  }

  it('builds the balancer of a service as soon as a registry lists it, and publishes its health', async () => {
    const { balancers, list } = start('services: { declared: {} }');
    const seen: HealthSnapshot[] = [];
    balancers.health$.subscribe((snapshot) => seen.push(snapshot));
    list('listed', 1001, 1002);
    await waitFor(() => seen.some((snapshot) => snapshot.service === 'listed' && snapshot.endpoints.length === 2), { message: 'the health of the listed service' });
    expect(balancers.balancer('listed')?.balancer.algorithm).toBe('weighted-round-robin');
    expect(balancers.health('listed')?.endpoints.map((endpoint) => endpoint.address)).toEqual(['127.0.0.1:1001', '127.0.0.1:1002']);
    expect(balancers.names()).toEqual(['declared', 'listed']);
  });

  it('lets go of a service the source forgets: its balancer closes, its health and name go, forgotten$ says so; a declared one stays', async () => {
    const provider = new StaticProvider('static');
    const aggregator = new DiscoveryAggregator([provider], { throttleMs: 1, forgetting: { afterMs: 20, retained: new Set(['declared']) } });
    const balancers = new ServiceBalancers(registryBalancerSource(aggregator), parseConfig('g.yaml', 'services: { declared: {} }'));
    cleanups.push(() => aggregator.close(), () => balancers.close());
    aggregator.start();
    const forgotten: string[] = [];
    balancers.forgotten$.subscribe((service) => forgotten.push(service));
    const entry = (service: string, port: number) => [{ service, name: `127.0.0.1:${port}`, data: null }];
    provider.replace(new Map([['declared', entry('declared', 1001)], ['canary', entry('canary', 1002)]]));
    await waitFor(() => balancers.health('canary')?.endpoints.length === 1 && balancers.health('declared')?.endpoints.length === 1, { message: 'both listed' });
    provider.replace(new Map());
    await waitFor(() => forgotten.length > 0, { message: 'canary forgotten' });
    expect(forgotten).toEqual(['canary']);
    expect(balancers.balancer('canary')).toBeUndefined();
    expect(balancers.health('canary')).toBeUndefined();
    expect(balancers.has('canary')).toBe(false);
    expect(balancers.pickerFor('canary')).toBeUndefined();
    expect(balancers.names()).toEqual(['declared']);
    expect(balancers.health('declared')?.endpoints).toEqual([]);
  });

  it("applies the service's protocol to instances whose entry named none; the registry wins where it did", async () => {
    const provider = new StaticProvider('static');
    const aggregator = new DiscoveryAggregator([provider], { throttleMs: 1 });
    const balancers = new ServiceBalancers(registryBalancerSource(aggregator), parseConfig('g.yaml', 'services: { api: { protocol: h2c } }'));
    cleanups.push(() => aggregator.close(), () => balancers.close());
    aggregator.start();
    provider.replace(
      new Map([
        [
          'api',
          [
            { service: 'api', name: 'plain', data: '{"host":"127.0.0.1","port":1001}' },
            { service: 'api', name: 'said-http', data: '{"host":"127.0.0.1","port":1002,"protocol":"http"}' },
            { service: 'api', name: 'said-https', data: '{"host":"127.0.0.1","port":1003,"protocol":"https"}' },
          ],
        ],
      ]),
    );
    await waitFor(() => balancers.health('api')?.endpoints.length === 3, { message: 'the three instances' });
    const protocols = Object.fromEntries(balancers.health('api')!.endpoints.map((endpoint) => [endpoint.instance.id, endpoint.instance.protocol]));
    expect(protocols).toEqual({ plain: 'h2c', 'said-http': 'http', 'said-https': 'https' });
  });

  it('builds the balancer of a service that is only declared on its first request', () => {
    const { balancers } = start('services: { declared: {} }');
    expect(balancers.balancer('declared')).toBeUndefined();
    expect(balancers.pickerFor('declared')?.pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
    expect(balancers.balancer('declared')).toBeDefined();
    expect(balancers.pickerFor('nowhere')).toBeUndefined();
  });

  it('replays the latest snapshot of every service to a late subscriber', async () => {
    const { balancers, list } = start('');
    list('late', 1001);
    await waitFor(() => balancers.health('late'), { message: 'the snapshot' });
    const replayed: string[] = [];
    balancers.health$.subscribe((snapshot) => replayed.push(snapshot.service)).unsubscribe();
    expect(replayed).toEqual(['late']);
  });

  it('rebuilds a listed service whose settings changed at once, and keeps publishing its health', async () => {
    const { balancers, list } = start('');
    list('svc', 1001);
    await waitFor(() => balancers.health('svc'), { message: 'the first snapshot' });
    const before = balancers.balancer('svc');
    const seen: HealthSnapshot[] = [];
    balancers.health$.subscribe((snapshot) => seen.push(snapshot));
    seen.length = 0;
    balancers.apply(parseConfig('g.yaml', 'services: { svc: { balancer: least-connections } }'));
    expect(balancers.balancer('svc')).not.toBe(before);
    expect(balancers.balancer('svc')?.balancer.algorithm).toBe('least-connections');
    expect(seen.map((snapshot) => snapshot.endpoints.length)).toEqual([1]);
    const rebuilt = balancers.balancer('svc');
    // Settings the balancer does not use: the same balancer stays, with its health and counts.
    balancers.apply(parseConfig('g.yaml', 'services: { svc: { balancer: least-connections, timeouts: { connect: 1s } } }'));
    expect(balancers.balancer('svc')).toBe(rebuilt);
    expect(seen).toHaveLength(1);
  });

  it('keeps the requests in flight on each instance across a rebuild that left the balancer settings alone', async () => {
    const { balancers, list } = start('services: { svc: { balancer: least-connections } }');
    list('svc', 1001, 1002);
    await waitFor(() => balancers.health('svc')?.endpoints.length === 2, { message: 'both instances' });
    const pick = () => balancers.pickerFor('svc')!.pick({}) as PickedEndpoint;
    const inFlight = () => ['127.0.0.1:1001', '127.0.0.1:1002'].map((address) => balancers.balancer('svc')!.balancer.member(address)?.inFlight);
    // Long requests, answered after the reload: two on one instance, one on the other.
    const open = [pick(), pick(), pick()];
    const counts = inFlight();
    expect([...counts].sort()).toEqual([1, 2]);
    const before = balancers.balancer('svc');
    balancers.apply(parseConfig('g.yaml', 'services: { svc: { balancer: least-connections, removalGrace: 5s } }'));
    expect(balancers.balancer('svc')).not.toBe(before);
    expect(inFlight()).toEqual(counts);
    // The least loaded instance gets the next request, and every answer releases what it held.
    open.push(pick());
    expect(open.at(-1)!.address).toBe(counts[0] === 1 ? '127.0.0.1:1001' : '127.0.0.1:1002');
    for (const picked of open) picked.done({ ok: true, latencyMs: 1 });
    expect(inFlight()).toEqual([0, 0]);
  });

  it('keeps failing checks and running ejections across a rebuild, so neither instance gets traffic back', async () => {
    // Two real listeners (up, ejected) and a port nothing listens on any more (down).
    const [up, ejected, down] = [await listen(true), await listen(true), await listen(false)];
    const health = 'panicThreshold: 0, healthCheck: { type: tcp, interval: 50ms, unhealthyThreshold: 1 }, outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s, maxEjectionPercent: 100 }';
    const { balancers, list } = start(`services: { svc: { ${health} } }`);
    list('svc', up, ejected, down);
    const address = (port: number) => `127.0.0.1:${port}`;
    const endpoint = (port: number) => balancers.health('svc')?.endpoints.find((candidate) => candidate.address === address(port));
    await waitFor(() => endpoint(down)?.active === 'unhealthy' && endpoint(up)?.active === 'healthy' && endpoint(ejected)?.active === 'healthy', { message: 'the checks to find down failing' });
    balancers.balancer('svc')!.recordOutcome(address(ejected), { ok: false, latencyMs: 1, errorClass: 'http-5xx' });
    expect(endpoint(ejected)?.ejected).toBe(true);
    const ejectedUntil = endpoint(ejected)!.ejectedUntil;

    balancers.apply(parseConfig('g.yaml', `services: { svc: { balancer: round-robin, ${health} } }`));
    expect(balancers.balancer('svc')?.balancer.algorithm).toBe('round-robin');
    // At once, before any check of the new balancer has run.
    const byAddress = (a: { address: string }, b: { address: string }) => a.address.localeCompare(b.address);
    expect(balancers.health('svc')?.endpoints.map(({ address, active, ejected, ejectedUntil, routable }) => ({ address, active, ejected, ejectedUntil, routable })).sort(byAddress)).toEqual([
      { address: address(up), active: 'healthy', ejected: false, ejectedUntil: undefined, routable: true },
      { address: address(ejected), active: 'healthy', ejected: true, ejectedUntil, routable: false },
      { address: address(down), active: 'unhealthy', ejected: false, ejectedUntil: undefined, routable: false },
    ].sort(byAddress));
    const picks = Array.from({ length: 6 }, () => {
      const pick = balancers.pickerFor('svc')!.pick({});
      if (pick.kind === 'endpoint') pick.done({ ok: true, latencyMs: 1 });
      return pick.kind === 'endpoint' ? pick.address : pick.reason;
    });
    expect(new Set(picks)).toEqual(new Set([address(up)]));

    // Without checks or outlier detection under the new settings, nothing is carried.
    balancers.apply(parseConfig('g.yaml', 'services: { svc: { outlierDetection: false } }'));
    expect(balancers.health('svc')?.endpoints.map((candidate) => [candidate.active, candidate.ejected])).toEqual([
      ['unknown', false],
      ['unknown', false],
      ['unknown', false],
    ]);
  });

  it('keeps the health set across a rebuild that changed only the balancer, so an instance that was failing or ejected, left and came back is judged as before', async () => {
    const [up, ejected, down] = [await listen(true), await listen(true), await listen(false)];
    const health = 'panicThreshold: 0, healthCheck: { type: tcp, interval: 50ms, unhealthyThreshold: 1 }, outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s, maxEjectionPercent: 100 }';
    const { balancers, list } = start(`services: { svc: { ${health} } }`);
    list('svc', up, ejected, down);
    const address = (port: number) => `127.0.0.1:${port}`;
    const endpoint = (port: number) => balancers.health('svc')?.endpoints.find((candidate) => candidate.address === address(port));
    await waitFor(() => endpoint(down)?.active === 'unhealthy' && endpoint(up)?.active === 'healthy' && endpoint(ejected)?.active === 'healthy', { message: 'the checks to find down failing' });
    balancers.balancer('svc')!.recordOutcome(address(ejected), { ok: false, latencyMs: 1, errorClass: 'http-5xx' });
    const ejectedUntil = endpoint(ejected)!.ejectedUntil;
    expect(ejectedUntil).toBeDefined();
    // Both leave the registry (neither passes, so no removal grace keeps them) ...
    list('svc', up);
    await waitFor(() => balancers.health('svc')?.endpoints.length === 1, { message: 'down and ejected to leave' });
    const before = balancers.balancer('svc')!;

    // ... the balancer alone changes ...
    balancers.apply(parseConfig('g.yaml', `services: { svc: { balancer: least-connections, slowStart: { window: 10s }, ${health} } }`));
    expect(balancers.balancer('svc')?.balancer.algorithm).toBe('least-connections');
    expect(balancers.balancer('svc')!.health).toBe(before.health);

    // ... and they come back: the first snapshot with them, before any check has run, judges them as before.
    const seen: HealthSnapshot[] = [];
    balancers.health$.subscribe((snapshot) => seen.push(snapshot));
    list('svc', up, ejected, down);
    await waitFor(() => seen.some((snapshot) => snapshot.endpoints.length === 3), { message: 'down and ejected to come back' });
    const back = seen.find((snapshot) => snapshot.endpoints.length === 3)!;
    const byAddress = (a: { address: string }, b: { address: string }) => a.address.localeCompare(b.address);
    expect(back.endpoints.map(({ address, active, ejected, ejectedUntil, routable }) => ({ address, active, ejected, ejectedUntil, routable })).sort(byAddress)).toEqual([
      { address: address(up), active: 'healthy', ejected: false, ejectedUntil: undefined, routable: true },
      // Only failing verdicts are remembered for instances that left: a passing one is checked afresh.
      { address: address(ejected), active: 'unknown', ejected: true, ejectedUntil, routable: false },
      { address: address(down), active: 'unhealthy', ejected: false, ejectedUntil: undefined, routable: false },
    ].sort(byAddress));
    const picks = Array.from({ length: 6 }, () => {
      const pick = balancers.pickerFor('svc')!.pick({});
      if (pick.kind === 'endpoint') pick.done({ ok: true, latencyMs: 1 });
      return pick.kind === 'endpoint' ? pick.address : pick.reason;
    });
    expect(new Set(picks)).toEqual(new Set([address(up)]));
  });

  it('carries the failing verdicts and ejections of instances that left across a rebuild that changed how often checks run, as of those present', async () => {
    const [up, ejected, down] = [await listen(true), await listen(true), await listen(false)];
    const health = (interval: string) => `panicThreshold: 0, healthCheck: { type: tcp, interval: ${interval}, unhealthyThreshold: 1 }, outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s, maxEjectionPercent: 100 }`;
    const { balancers, list } = start(`services: { svc: { ${health('50ms')} } }`);
    list('svc', up, ejected, down);
    const address = (port: number) => `127.0.0.1:${port}`;
    const endpoint = (port: number) => balancers.health('svc')?.endpoints.find((candidate) => candidate.address === address(port));
    await waitFor(() => endpoint(down)?.active === 'unhealthy' && endpoint(up)?.active === 'healthy' && endpoint(ejected)?.active === 'healthy', { message: 'the checks to find down failing' });
    balancers.balancer('svc')!.recordOutcome(address(ejected), { ok: false, latencyMs: 1, errorClass: 'http-5xx' });
    const ejectedUntil = endpoint(ejected)!.ejectedUntil;
    expect(ejectedUntil).toBeDefined();
    list('svc', up);
    await waitFor(() => balancers.health('svc')?.endpoints.length === 1, { message: 'down and ejected to leave' });
    const before = balancers.balancer('svc')!;

    // The health settings change (checks run less often): a new health set replaces the old one ...
    balancers.apply(parseConfig('g.yaml', `services: { svc: { ${health('60ms')} } }`));
    expect(balancers.balancer('svc')!.health).not.toBe(before.health);

    // ... and when they come back, the first snapshot with them judges them as the old set would have.
    const seen: HealthSnapshot[] = [];
    balancers.health$.subscribe((snapshot) => seen.push(snapshot));
    list('svc', up, ejected, down);
    await waitFor(() => seen.some((snapshot) => snapshot.endpoints.length === 3), { message: 'down and ejected to come back' });
    const back = seen.find((snapshot) => snapshot.endpoints.length === 3)!;
    const byAddress = (a: { address: string }, b: { address: string }) => a.address.localeCompare(b.address);
    expect(back.endpoints.map(({ address, active, ejected, ejectedUntil, routable }) => ({ address, active, ejected, ejectedUntil, routable })).sort(byAddress)).toEqual([
      { address: address(up), active: 'healthy', ejected: false, ejectedUntil: undefined, routable: true },
      { address: address(ejected), active: 'unknown', ejected: true, ejectedUntil, routable: false },
      { address: address(down), active: 'unhealthy', ejected: false, ejectedUntil: undefined, routable: false },
    ].sort(byAddress));
  });

  it('keeps present and departed instances that failed out until a check that asks something else answers, and keeps their ejections', async () => {
    // Nothing listens on either: both fail their TCP checks.
    const [present, departed] = [await listen(false), await listen(false)];
    const outlier = 'panicThreshold: 0, outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s, maxEjectionPercent: 100 }';
    const { balancers, list } = start(`services: { svc: { ${outlier}, healthCheck: { type: tcp, interval: 50ms, unhealthyThreshold: 1 } } }`);
    list('svc', present, departed);
    const address = (port: number) => `127.0.0.1:${port}`;
    const endpoint = (port: number) => balancers.health('svc')?.endpoints.find((candidate) => candidate.address === address(port));
    await waitFor(() => endpoint(present)?.active === 'unhealthy' && endpoint(departed)?.active === 'unhealthy', { message: 'both failing their checks' });
    balancers.balancer('svc')!.recordOutcome(address(departed), { ok: false, latencyMs: 1, errorClass: 'http-5xx' });
    const ejectedUntil = endpoint(departed)!.ejectedUntil;
    expect(ejectedUntil).toBeDefined();
    list('svc', present);
    await waitFor(() => balancers.health('svc')?.endpoints.length === 1, { message: 'departed to leave' });

    // An HTTP check of /ready: what a TCP connect said is no answer to it.
    balancers.apply(parseConfig('g.yaml', `services: { svc: { ${outlier}, healthCheck: { path: /ready, interval: 1h, unhealthyThreshold: 1 } } }`));
    // Until the new check answers, what failed stays out (its first answer decides: see ActiveHealthChecker).
    expect(balancers.health('svc')?.endpoints.map(({ address, active, routable }) => ({ address, active, routable }))).toEqual([{ address: address(present), active: 'unhealthy', routable: false }]);
    const seen: HealthSnapshot[] = [];
    balancers.health$.subscribe((snapshot) => seen.push(snapshot));
    list('svc', present, departed);
    await waitFor(() => seen.some((snapshot) => snapshot.endpoints.length === 2), { message: 'departed to come back' });
    const back = seen.find((snapshot) => snapshot.endpoints.length === 2)!.endpoints.find((candidate) => candidate.address === address(departed))!;
    expect({ active: back.active, ejected: back.ejected, ejectedUntil: back.ejectedUntil }).toEqual({ active: 'unhealthy', ejected: true, ejectedUntil });
  });

  it('keeps a held instance that refused a connection out across a rebuild with other health settings, while the hold lasts', async () => {
    // a and b serve; nothing listens on gone any more (its backend died while the registry was out).
    const [a, b, gone] = [await listen(true), await listen(true), await listen(false)];
    // A registry the test drives: its status and what it lists.
    const store = new ProviderStore('zk', rootLogger);
    let revision = 0;
    const list = (...ports: number[]) => store.publishRaw('svc', ports.map((port) => ({ service: 'svc', name: `127.0.0.1:${port}`, data: null })), String(++revision));
    const provider = { name: 'zk', snapshots$: store.snapshots$, status$: store.status$, start: () => undefined, close: async () => store.complete() };
    const aggregator = new DiscoveryAggregator([provider], { throttleMs: 1, protection: { thresholdPercent: 50, holdMs: 60_000 } });
    const settings = (interval: string) => parseConfig('g.yaml', `services: { svc: { healthCheck: { type: tcp, interval: ${interval} } } }`);
    const balancers = new ServiceBalancers(registryBalancerSource(aggregator), settings('1h'));
    cleanups.push(() => aggregator.close(), () => balancers.close());
    aggregator.start();
    store.setStatus('connected');
    list(a, b, gone);
    const address = (port: number) => `127.0.0.1:${port}`;
    const addresses = () => balancers.health('svc')?.endpoints.map((endpoint) => endpoint.address).sort();
    await waitFor(() => addresses()?.length === 3, { message: 'three instances listed' });
    // An outage, and the registry back with nothing listed: all three are held.
    store.setStatus('stale');
    store.setStatus('connected');
    list();
    await waitFor(() => aggregator.service('svc').current()?.held?.size === 3, { message: 'the three instances held' });
    balancers.balancer('svc')!.recordOutcome(address(gone), { ok: false, latencyMs: 1, errorClass: 'connect-refused' });
    expect(addresses()).toEqual([address(a), address(b)].sort());

    // Checks run at another pace now: the hold goes on, and the refusal still says gone is gone.
    balancers.apply(settings('2h'));
    expect(aggregator.service('svc').current()?.held?.size).toBe(3);
    expect(addresses()).toEqual([address(a), address(b)].sort());
    const picks = Array.from({ length: 6 }, () => {
      const pick = balancers.pickerFor('svc')!.pick({});
      if (pick.kind === 'endpoint') pick.done({ ok: true, latencyMs: 1 });
      return pick.kind === 'endpoint' ? pick.address : pick.reason;
    });
    expect(new Set(picks)).toEqual(new Set([address(a), address(b)]));

    // Listed again (its agent registered it anew), it is a member like any other.
    list(a, b, gone);
    await waitFor(() => addresses()?.length === 3, { message: 'gone listed again' });
  });

  it('completes health$ on close', () => {
    const { balancers } = start('');
    let completed = false;
    balancers.health$.subscribe({ complete: () => (completed = true) });
    balancers.close();
    expect(completed).toBe(true);
  });
});
