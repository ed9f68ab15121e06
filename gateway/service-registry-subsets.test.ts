import { afterEach, describe, expect, it } from 'vitest';
import { stickyId, type PickedEndpoint, type Picker } from '../src/balance/index.ts';
import { DiscoveryAggregator, StaticProvider } from '../src/discovery/index.ts';
import { waitFor } from '../test/harness/wait.ts';
import { parseConfig, type GatewayConfig } from './config/index.ts';
import { registryBalancerSource, ServiceBalancers } from './service-registry.ts';

const FAIL = { ok: false, latencyMs: 1, errorClass: 'http-5xx' } as const;

const CANARY = `
routes:
  - { name: canary, path: /c, service: svc, canary: { by: version, split: { v1: 90, v2: 10 }, lanes: [{ header: x-canary, to: v2 }] } }
  - { name: v2, path: /v2, service: svc, subset: { match: { version: v2 } } }
  - { name: plain, path: /, service: svc }
`;

function counts(picks: number, picker: Picker, headers: Record<string, string> = {}): Record<string, number> {
  const seen: Record<string, number> = {};
  for (let index = 0; index < picks; index += 1) {
    const result = picker.pick({ headers });
    const key = result.kind === 'endpoint' ? result.instance.id : `none:${result.reason}`;
    seen[key] = (seen[key] ?? 0) + 1;
  }
  return seen;
}

describe('ServiceBalancers with subsets', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(configText: string, instances: Record<string, Record<string, string>>) {
    const provider = new StaticProvider('static');
    const aggregator = new DiscoveryAggregator([provider], { throttleMs: 1 });
    const config = parseConfig('g.yaml', configText);
    const balancers = new ServiceBalancers(registryBalancerSource(aggregator), config);
    cleanups.push(() => aggregator.close(), () => balancers.close());
    aggregator.start();
    const list = (members: Record<string, Record<string, string>>) =>
      provider.replace(
        new Map([['svc', Object.entries(members).map(([id, metadata], index) => ({ service: 'svc', name: id, data: JSON.stringify({ host: '127.0.0.1', port: 1001 + index, metadata }) }))]]),
      );
    list(instances);
    await waitFor(() => balancers.health('svc')?.endpoints.length === Object.keys(instances).length, { message: 'the instances' });
    const route = (current: GatewayConfig, name: string) => current.routes.find((candidate) => candidate.name === name)!;
    return { balancers, config, list, route };
  }

  it("honours a sticky cookie in a route's subset only for the subset's members, and a reload that turns sticky on rebuilds the balancer", async () => {
    const text = "services: { svc: { sticky: true, balancer: round-robin } }\nroutes:\n  - { name: v2, path: /v2, service: svc, subset: { match: { version: v2 } } }\n  - { name: plain, path: /, service: svc }";
    const { balancers, config, route } = await start(text, { a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' } });
    const id = (port: number) => stickyId('svc', `127.0.0.1:${port}`);
    const picks = (picker: Picker, sticky: string) => Array.from({ length: 4 }, () => {
      const pick = picker.pick({ sticky }) as PickedEndpoint;
      pick.done({ ok: true, latencyMs: 1 });
      return pick.instance.id;
    });
    // a is 127.0.0.1:1001, c 127.0.0.1:1003 (`start` numbers the ports in order).
    expect(picks(balancers.pickerFor('svc', route(config, 'plain'))!, id(1001))).toEqual(['a', 'a', 'a', 'a']);
    expect(picks(balancers.pickerFor('svc', route(config, 'v2'))!, id(1003))).toEqual(['c', 'c', 'c', 'c']);
    // a is outside the route's subset: the subset's own balancer picks among its members.
    expect(new Set(picks(balancers.pickerFor('svc', route(config, 'v2'))!, id(1001)))).toEqual(new Set(['b', 'c']));
    const plain = parseConfig('g.yaml', text.replace('sticky: true, ', ''));
    const before = balancers.balancer('svc');
    balancers.apply(plain);
    expect(balancers.balancer('svc')).not.toBe(before);
    expect(new Set(picks(balancers.pickerFor('svc', route(plain, 'plain'))!, id(1001)))).toEqual(new Set(['a', 'b', 'c']));
  });

  it('gives a route without subset or canary the service picker itself, and makes no subset for it', async () => {
    const { balancers, config, route } = await start(CANARY, { a: { version: 'v1' } });
    expect(balancers.pickerFor('svc', route(config, 'plain'))).toBe(balancers.balancer('svc')!.picker);
    expect(balancers.subsetCount()).toBe(0);
  });

  it('reads a route\'s picker for explain without making its subsets, its split rotation or a service balancer', async () => {
    const { balancers, config, route } = await start(`services: { idle: {} }\n${CANARY}`, { a: { version: 'v1' }, b: { version: 'v2' } });
    const peek = (name: string) => balancers.withReadOnlyPicker('svc', route(config, name), (picker) => picker?.peek({ headers: {} }));
    expect(peek('v2')).toMatchObject({ kind: 'endpoint', instance: { id: 'b' } });
    expect(peek('canary')).toMatchObject({ kind: 'endpoint', instance: { id: 'a' } });
    expect(balancers.subsetCount()).toBe(0);
    // A declared service no registry lists gets its balancer (and health checks) from traffic only.
    expect(balancers.withReadOnlyPicker('idle', undefined, (picker) => picker?.peek({}))).toEqual({ kind: 'none', reason: 'no-instances' });
    expect(balancers.balancer('idle')).toBeUndefined();
    expect(balancers.withReadOnlyPicker('nowhere', undefined, (picker) => picker)).toBeUndefined();
    // The split's rotation was not made by the peeks: traffic still gets one whole 90/10 cycle from its start.
    const seen = counts(100, balancers.pickerFor('svc', route(config, 'canary'))!);
    expect(seen).toEqual({ a: 90, b: 10 });
    expect(balancers.subsetCount()).toBe(2);
  });

  it('splits a canary route exactly 90/10 over a cycle, sends lane requests to v2, and shares subsets between routes', async () => {
    const { balancers, config, route } = await start(CANARY, { a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v1', zone: 'x' } });
    const canary = balancers.pickerFor('svc', route(config, 'canary'))!;
    const seen = counts(100, canary);
    expect({ v1: (seen.a ?? 0) + (seen.c ?? 0), v2: seen.b }).toEqual({ v1: 90, v2: 10 });
    expect(counts(20, canary, { 'x-canary': '1' })).toEqual({ b: 20 });
    expect(counts(4, balancers.pickerFor('svc', route(config, 'v2'))!)).toEqual({ b: 4 });
    expect(balancers.subsetCount()).toBe(2);
    // The route's picker is made once, not per request.
    expect(balancers.pickerFor('svc', route(config, 'canary'))).toBe(canary);
  });

  it('keeps subset balancers and the split rotation across a reload that still names them, and drops them when none does', async () => {
    const { balancers, config, route } = await start(CANARY, { a: { version: 'v1' }, b: { version: 'v2' } });
    const before = counts(5, balancers.pickerFor('svc', route(config, 'canary'))!);
    const reloaded = parseConfig('g.yaml', CANARY);
    balancers.apply(reloaded);
    expect(balancers.subsetCount()).toBe(2);
    const after = counts(95, balancers.pickerFor('svc', route(reloaded, 'canary'))!);
    // Exactly one cycle in all: the rotation went on where it was, not from the start.
    expect({ a: (before.a ?? 0) + (after.a ?? 0), b: (before.b ?? 0) + (after.b ?? 0) }).toEqual({ a: 90, b: 10 });
    balancers.apply(parseConfig('g.yaml', 'routes: [{ path: /, service: svc, subset: { match: { version: v1 } } }]'));
    expect(balancers.subsetCount()).toBe(1);
    balancers.apply(parseConfig('g.yaml', 'routes: [{ path: /, service: svc }]'));
    expect(balancers.subsetCount()).toBe(0);
  });

  it('keeps subset balancers across a rebuild of the service that keeps its balancer, fed from the new build and reporting to it', async () => {
    const text = (grace: string) => `services: { svc: { removalGrace: ${grace}, outlierDetection: { consecutiveErrors: 2, maxEjectionPercent: 100 } } }\n${CANARY}`;
    const { balancers, config, list, route } = await start(text('10s'), { a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' } });
    // Smooth weighted round-robin over b and c: b, then c.
    expect(counts(1, balancers.pickerFor('svc', route(config, 'v2'))!)).toEqual({ b: 1 });
    const before = balancers.balancer('svc');
    const reloaded = parseConfig('g.yaml', text('20s'));
    balancers.apply(reloaded);
    expect(balancers.balancer('svc')).not.toBe(before);
    expect(balancers.balancer('svc')!.balancer).toBe(before!.balancer);
    expect(balancers.subsetCount()).toBe(1);
    const v2 = balancers.pickerFor('svc', route(reloaded, 'v2'))!;
    // The subset's weights went on: c is next, where a new subset balancer would start with b again.
    const failed = v2.pick({}) as PickedEndpoint;
    expect(failed.instance.id).toBe('c');
    // Its outcomes reach the new build's outlier detection (two failures in a row eject c) ...
    failed.done(FAIL);
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const pick = v2.pick({}) as PickedEndpoint;
      pick.done(pick.instance.id === 'c' ? FAIL : { ok: true, latencyMs: 1 });
    }
    expect(balancers.health('svc')?.endpoints.find((endpoint) => endpoint.instance.id === 'c')?.ejected).toBe(true);
    // ... and it follows the new build's instances.
    list({ a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' }, d: { version: 'v2' } });
    await waitFor(() => balancers.health('svc')?.endpoints.length === 4, { message: 'the new instance' });
    expect(Object.keys(counts(4, v2)).sort()).toEqual(['b', 'd']);
  });

  it('gives a route picker made before such a rebuild (a request in flight across the reload, retrying) the carried subset, which follows the registry', async () => {
    const text = (grace: string) => `services: { svc: { removalGrace: ${grace} } }\n${CANARY}`;
    const { balancers, config, list, route } = await start(text('10s'), { a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' } });
    const before = balancers.pickerFor('svc', route(config, 'v2'))!;
    balancers.apply(parseConfig('g.yaml', text('20s')));
    list({ a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' }, d: { version: 'v2' } });
    await waitFor(() => balancers.health('svc')?.endpoints.length === 4, { message: 'the new instance' });
    // The old route's picker read the subset balancer of the build the reload closed, which froze at b and c.
    expect(balancers.pickerFor('svc', route(config, 'v2'))).toBe(before);
    expect(Object.keys(counts(6, before)).sort()).toEqual(['b', 'c', 'd']);
  });

  it('gives a route picker made before a rebuild that dropped its subset (a request in flight, retrying) the subset of the new build, which follows the registry', async () => {
    const { balancers, config, list, route } = await start(CANARY, { a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' } });
    const before = balancers.pickerFor('svc', route(config, 'v2'))!;
    balancers.apply(parseConfig('g.yaml', `services: { svc: { balancer: least-connections } }\n${CANARY}`));
    list({ a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' }, d: { version: 'v2' } });
    await waitFor(() => balancers.health('svc')?.endpoints.length === 4, { message: 'the new instance' });
    // It read the subset the rebuild closed, frozen at b and c, whose loads no live balancer counts.
    const retry = balancers.pickerFor('svc', route(config, 'v2'))!;
    const held = [0, 1, 2].map(() => retry.pick({}) as PickedEndpoint);
    expect(held.map((pick) => pick.instance.id).sort()).toEqual(['b', 'c', 'd']);
    // Least-connections of the live subset counts them: the next pick goes to the one released.
    held.find((pick) => pick.instance.id === 'd')!.done({ ok: true, latencyMs: 1 });
    expect((before.pick({}) as PickedEndpoint).instance.id).toBe('d');
    // Once no route selects the subset, such a picker reads the whole service, as a request whose route a reload dropped does.
    balancers.apply(parseConfig('g.yaml', 'routes: [{ path: /, service: svc }]'));
    expect(counts(4, before)).toEqual(counts(4, balancers.pickerFor('svc')!));
  });

  it("gives a route picker made before a rebuild of its service (a request in flight, retrying) the whole service of the new build for its fallback any, which follows the registry", async () => {
    const routes = `routes: [{ name: v3, path: /v3, service: svc, subset: { match: { version: v3 } } }]`;
    const { balancers, config, list, route } = await start(routes, { a: { version: 'v1' }, b: { version: 'v2' } });
    const before = balancers.pickerFor('svc', route(config, 'v3'))!;
    balancers.apply(parseConfig('g.yaml', `services: { svc: { balancer: least-connections } }\n${routes}`));
    list({ a: { version: 'v1' }, b: { version: 'v2' }, c: { version: 'v2' } });
    await waitFor(() => balancers.health('svc')?.endpoints.length === 3, { message: 'the new instance' });
    // No v3 instance: it falls back to the service, that of the build in force (not the one the rebuild closed, frozen at a and b).
    expect(Object.keys(counts(6, before)).sort()).toEqual(['a', 'b', 'c']);
  });

  it('rebuilds the subsets of a service whose algorithm changed, with the new algorithm', async () => {
    const { balancers, route } = await start(CANARY, { a: { version: 'v1' }, b: { version: 'v2' } });
    const next = parseConfig('g.yaml', `services: { svc: { balancer: least-connections } }\n${CANARY}`);
    balancers.apply(next);
    expect(balancers.subsetCount()).toBe(0);
    expect(counts(3, balancers.pickerFor('svc', route(next, 'v2'))!)).toEqual({ b: 3 });
    expect(balancers.subsetCount()).toBe(1);
  });

  it.each([
    ['any', { a: 4 }],
    ['none', { 'none:no-instances': 4 }],
    ['{ version: v1 }', { a: 4 }],
  ])('applies fallback %s when the selection is empty', async (fallback, expected) => {
    const text = `routes: [{ name: b, path: /, service: svc, subset: { match: { zone: b }, fallback: ${fallback} } }]`;
    const { balancers, config, route } = await start(text, { a: { version: 'v1', zone: 'a' } });
    expect(counts(4, balancers.pickerFor('svc', route(config, 'b'))!)).toEqual(expected);
  });

  it('follows the registry: an instance that joins the selection takes the route from the fallback', async () => {
    const text = 'routes: [{ name: b, path: /, service: svc, subset: { match: { zone: b } } }]';
    const { balancers, config, list, route } = await start(text, { a: { zone: 'a' } });
    const picker = balancers.pickerFor('svc', route(config, 'b'))!;
    expect(counts(2, picker)).toEqual({ a: 2 });
    list({ a: { zone: 'a' }, b: { zone: 'b' } });
    await waitFor(() => balancers.health('svc')?.endpoints.length === 2, { message: 'the new instance' });
    expect(counts(4, picker)).toEqual({ b: 4 });
  });

  it('ramps an instance that joins a subset with the service slow start, as the service picker does', async () => {
    const text = `
services:
  svc: { balancer: weighted-round-robin, slowStart: { window: 60s } }
routes: [{ name: v2, path: /, service: svc, subset: { match: { version: v2 } } }]
`;
    const { balancers, config, list, route } = await start(text, { a: { version: 'v2' } });
    const picker = balancers.pickerFor('svc', route(config, 'v2'))!;
    expect(counts(2, picker)).toEqual({ a: 2 });
    list({ a: { version: 'v2' }, b: { version: 'v2' } });
    await waitFor(() => balancers.health('svc')?.endpoints.length === 2, { message: 'the new instance' });
    // b starts at 10% of its weight: about 2 of 22 picks, where an unramped b would take 11.
    expect(counts(22, picker).b).toBeLessThanOrEqual(3);
  });

  it('ramps an instance that joined before the subset was made, as the service picker does', async () => {
    const text = `
services:
  svc: { balancer: weighted-round-robin, slowStart: { window: 60s } }
routes: [{ name: v2, path: /, service: svc, subset: { match: { version: v2 } } }]
`;
    const { balancers, config, list, route } = await start(text, { a: { version: 'v2' } });
    list({ a: { version: 'v2' }, b: { version: 'v2' } });
    await waitFor(() => balancers.health('svc')?.endpoints.length === 2, { message: 'the new instance' });
    // The route's first request makes the subset, with b still ramping in the service.
    const picker = balancers.pickerFor('svc', route(config, 'v2'))!;
    expect(balancers.subsetCount()).toBe(1);
    // b is at 10% of its weight: about 2 of 22 picks, where an unramped b would take 11.
    expect(counts(22, picker).b).toBeLessThanOrEqual(3);
  });

  it('answers undefined for a subset route of a service nobody declares or lists', async () => {
    const { balancers } = await start('', { a: {} });
    const config = parseConfig('g.yaml', 'routes: [{ path: /, service: nowhere, subset: { match: { zone: b } } }]');
    balancers.apply(config);
    expect(balancers.pickerFor('nowhere', config.routes[0])).toBeUndefined();
  });
});
