import { describe, expect, it } from 'vitest';
import type { EndpointHealth, HealthSnapshot, UpstreamOutcome } from '../../src/health/index.ts';
import { parseConfig } from '../config/index.ts';
import { ServiceBalancers } from '../service-registry.ts';
import { PrimaryFeed } from './cluster-feed.ts';

function endpoint(port: number, routable: boolean): EndpointHealth {
  const instance = { id: String(port), service: 'user', host: '10.0.0.1', port, weight: 1, protocol: 'http' as const, metadata: {} };
  return { address: `10.0.0.1:${port}`, instance, inRegistry: true, active: routable ? 'healthy' : 'unhealthy', ejected: false, routable };
}

function snapshot(...endpoints: EndpointHealth[]): HealthSnapshot {
  return { service: 'user', endpoints, panic: false };
}

function pickAddress(balancers: ServiceBalancers): string {
  const result = balancers.pickerFor('user')!.pick({});
  if (result.kind !== 'endpoint') return result.reason;
  result.done({ ok: true, latencyMs: 1 });
  return result.address;
}

describe('PrimaryFeed', () => {
  it('lets go of a service the primary no longer lists: the balancer goes, then its view', () => {
    const feed = new PrimaryFeed(() => undefined);
    const balancers = new ServiceBalancers(feed, parseConfig('g.yaml', 'routes: [{ namespace: true }]'));
    const forgotten: string[] = [];
    balancers.forgotten$.subscribe((service) => forgotten.push(service));
    feed.services(['user']);
    feed.health(snapshot(endpoint(1, true)));
    expect(pickAddress(balancers)).toBe('10.0.0.1:1');
    feed.services([]);
    expect(forgotten).toEqual(['user']);
    expect(feed.latest('user')).toBeUndefined();
    expect(balancers.pickerFor('user')).toBeUndefined();
    balancers.close();
  });

  it("balances over the primary's routable endpoints only, and follows each new snapshot", () => {
    const feed = new PrimaryFeed(() => undefined);
    const balancers = new ServiceBalancers(feed, parseConfig('g.yaml', 'services: { user: { balancer: round-robin } }'));
    expect(pickAddress(balancers)).toBe('no-instances');
    feed.services(['user']);
    feed.health(snapshot(endpoint(1, true), endpoint(2, false), endpoint(3, true)));
    const picked = new Set(Array.from({ length: 6 }, () => pickAddress(balancers)));
    expect([...picked].sort()).toEqual(['10.0.0.1:1', '10.0.0.1:3']);
    feed.health(snapshot(endpoint(1, false), endpoint(2, true), endpoint(3, false)));
    expect(pickAddress(balancers)).toBe('10.0.0.1:2');
    balancers.close();
  });

  it('reports every pick outcome with its service, for the primary to feed passive health', () => {
    const outcomes: [string, string, UpstreamOutcome][] = [];
    const feed = new PrimaryFeed((service, address, outcome) => outcomes.push([service, address, outcome]));
    const balancers = new ServiceBalancers(feed, parseConfig('g.yaml', ''));
    feed.services(['user']);
    feed.health(snapshot(endpoint(7, true)));
    const result = balancers.pickerFor('user')!.pick({});
    if (result.kind !== 'endpoint') throw new Error(result.reason);
    result.done({ ok: false, latencyMs: 2, errorClass: 'http-5xx' });
    expect(outcomes).toEqual([['user', '10.0.0.1:7', { ok: false, latencyMs: 2, errorClass: 'http-5xx' }]]);
    balancers.close();
  });

  it('gives a balancer rebuilt after a reload the latest snapshot at once', () => {
    const feed = new PrimaryFeed(() => undefined);
    const balancers = new ServiceBalancers(feed, parseConfig('g.yaml', 'services: { user: { balancer: round-robin } }'));
    feed.services(['user']);
    feed.health(snapshot(endpoint(1, true)));
    balancers.apply(parseConfig('g.yaml', 'services: { user: { balancer: least-connections } }'));
    expect(balancers.balancer('user')?.balancer.algorithm).toBe('least-connections');
    expect(pickAddress(balancers)).toBe('10.0.0.1:1');
    balancers.close();
  });

  it('names the registries the primary says are not yet connected, for a service no registry gives an instance set', () => {
    const feed = new PrimaryFeed(() => undefined);
    const balancers = new ServiceBalancers(feed, parseConfig('g.yaml', 'routes: [{ namespace: true }]'));
    const registries = ['zk:127.0.0.1:2181/services', 'etcd:http://127.0.0.1:2379/services'];
    feed.services(['user', 'cart']);
    // Until the primary says, none: the plain answer rather than a guess.
    expect(balancers.unconnectedRegistriesOf('order')).toEqual([]);
    // `cart` was listed, then every registry said it is gone: what it has says nothing again.
    feed.unconnected({ registries, unlisted: ['cart'] });
    expect(['order', 'user', 'cart'].map((service) => balancers.unconnectedRegistriesOf(service))).toEqual([registries, [], registries]);
    feed.services(['user', 'cart', 'order']);
    expect(balancers.unconnectedRegistriesOf('order')).toEqual([]);
    feed.unconnected({ registries: [], unlisted: [] });
    expect(balancers.unconnectedRegistriesOf('cart')).toEqual([]);
    balancers.close();
  });
});
