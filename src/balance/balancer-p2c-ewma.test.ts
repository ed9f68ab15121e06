import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceAddress, type Instance } from '../discovery/instance.ts';
import type { Balancer } from './balancer.ts';
import { P2cEwmaBalancer } from './balancer-p2c-ewma.ts';
import { RoundRobinBalancer } from './balancer-round-robin.ts';
import { pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import type { PickedEndpoint } from './picker.ts';

const EXTRA_DELAY_MS = 50;
const REQUESTS = 300;
const CONCURRENCY = 4;

/** An HTTP server on a free port that answers 200 after `delayMs`. */
async function backend(delayMs: number): Promise<Server> {
  const server = createServer((_request, response) => {
    const answer = () => response.end('ok');
    if (delayMs === 0) answer();
    else setTimeout(answer, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function instanceOf(id: string, server: Server): Instance {
  return { id, service: 'svc', host: '127.0.0.1', port: (server.address() as AddressInfo).port, weight: 1, protocol: 'http', metadata: {} };
}

describe('P2cEwmaBalancer', () => {
  const servers: Server[] = [];
  const agent = new Agent({ connections: CONCURRENCY });
  beforeAll(async () => {
    servers.push(await backend(0), await backend(EXTRA_DELAY_MS));
  });
  afterAll(async () => {
    await agent.close();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('sends most traffic away from a real HTTP backend that answers 50 ms slower', async () => {
    const [fast, slow] = [instanceOf('fast', servers[0]!), instanceOf('slow', servers[1]!)];
    const balancer = new P2cEwmaBalancer();
    balancer.update([fast, slow].map((instance) => ({ address: instanceAddress(instance), instance, routable: true })));
    const counts = { fast: 0, slow: 0 };
    let next = 0;
    const worker = async () => {
      while (next < REQUESTS) {
        next += 1;
        const pick = balancer.picker.pick({}) as PickedEndpoint;
        const started = performance.now();
        const response = await request(`http://${pick.address}/`, { dispatcher: agent });
        await response.body.text();
        pick.done({ ok: response.statusCode < 500, latencyMs: performance.now() - started });
        counts[pick.instance.id as 'fast' | 'slow'] += 1;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(counts.fast + counts.slow).toBe(REQUESTS);
    expect(counts.fast / REQUESTS).toBeGreaterThan(0.8);
    expect(balancer.member(instanceAddress(slow))!.inFlight).toBe(0);
  });

  it('prefers the member with fewer requests in flight when latencies are equal', () => {
    let now = 0;
    const balancer = new P2cEwmaBalancer({ now: () => now, random: seededRandom(4) });
    balancer.update(testEndpoints('a', 'b'));
    for (let index = 0; index < 10; index += 1) {
      const pick = balancer.picker.pick({}) as PickedEndpoint;
      now += 1;
      pick.done({ ok: true, latencyMs: 10 });
    }
    const held = balancer.picker.pick({}) as PickedEndpoint;
    const other = pickedId(balancer.picker.pick({}));
    expect(other).not.toBe(held.instance.id);
  });

  it.each(['cancelled', 'client-body-error', 'request-rejected', 'internal'] as const)('ignores the latency of a %s failure, which says nothing about the upstream', (errorClass) => {
    let now = 0;
    const balancer = new P2cEwmaBalancer({ now: () => now });
    balancer.update(testEndpoints('a'));
    (balancer.picker.pick({}) as PickedEndpoint).done({ ok: true, latencyMs: 10 });
    (balancer.picker.pick({}) as PickedEndpoint).done({ ok: false, latencyMs: 5_000, errorClass });
    (balancer.picker.pick({}) as PickedEndpoint).done({ ok: false, latencyMs: 0, errorClass });
    now += 1;
    expect(balancer.member('a.svc.test:8080')!.ewma.latencyMs).toBe(10);
  });

  it("takes the time of a call its client's own deadline cut short as a latency sample, without the failure penalty", () => {
    let now = 0;
    const balancer = new P2cEwmaBalancer({ now: () => now });
    balancer.update(testEndpoints('a'));
    (balancer.picker.pick({}) as PickedEndpoint).done({ ok: true, latencyMs: 10 });
    now += 1;
    // The upstream took at least 200 ms (a peak is taken at once); it did not fail, so no penalty.
    (balancer.picker.pick({}) as PickedEndpoint).done({ ok: false, latencyMs: 200, errorClass: 'deadline-exceeded' });
    expect(balancer.member('a.svc.test:8080')!.ewma.latencyMs).toBe(200);
  });

  it("folds the sample in at the response head, while the request is still in flight, and keeps it when the client leaves mid-body", () => {
    let now = 0;
    const balancer = new P2cEwmaBalancer({ now: () => now });
    balancer.update(testEndpoints('a'));
    const pick = balancer.picker.pick({}) as PickedEndpoint;
    now += 1;
    pick.answered(30);
    const member = balancer.member('a.svc.test:8080')!;
    expect(member.ewma.latencyMs).toBe(30);
    expect(member.inFlight).toBe(1);
    // A second sample of the same pick is ignored.
    pick.answered(900);
    now += 1;
    pick.done({ ok: false, latencyMs: 30, errorClass: 'cancelled' });
    expect(member.ewma.latencyMs).toBe(30);
    expect(member.inFlight).toBe(0);
  });

  it('counts a sample once: the done of a pick answered at its head adds nothing, unless the upstream failed after it', () => {
    let now = 0;
    const balancer = new P2cEwmaBalancer({ now: () => now });
    balancer.update(testEndpoints('a'));
    const member = balancer.member('a.svc.test:8080')!;
    const first = balancer.picker.pick({}) as PickedEndpoint;
    first.answered(40);
    now += 10_000;
    // Read (and so decayed) since: a second observation of 40 would take it back up to 40.
    member.ewma.cost(1, now);
    const decayed = member.ewma.latencyMs;
    expect(decayed).toBeLessThan(40);
    first.done({ ok: true, latencyMs: 40 });
    expect(member.ewma.latencyMs).toBe(decayed);
    const second = balancer.picker.pick({}) as PickedEndpoint;
    second.answered(20);
    now += 1;
    second.done({ ok: false, latencyMs: 20, errorClass: 'reset-after-headers' });
    expect(member.ewma.latencyMs).toBe(1_000);
  });

  it('ignores a sample reported after done', () => {
    const balancer = new P2cEwmaBalancer({ now: () => 0 });
    balancer.update(testEndpoints('a'));
    const pick = balancer.picker.pick({}) as PickedEndpoint;
    pick.done({ ok: true, latencyMs: 10 });
    pick.answered(500);
    expect(balancer.member('a.svc.test:8080')!.ewma.latencyMs).toBe(10);
  });

  it('moves traffic away from a member that fails fast instead of treating it as the quickest', () => {
    let now = 0;
    const balancer = new P2cEwmaBalancer({ now: () => now, random: seededRandom(7) });
    balancer.update(testEndpoints('a', 'b'));
    const counts = new Map<string, number>();
    for (let index = 0; index < 2_000; index += 1) {
      const pick = balancer.picker.pick({}) as PickedEndpoint;
      counts.set(pick.address, (counts.get(pick.address) ?? 0) + 1);
      // b refuses connections at once; a answers in 5 ms.
      if (pick.address.startsWith('b')) pick.done({ ok: false, latencyMs: 0.05, errorClass: 'connect-refused' });
      else pick.done({ ok: true, latencyMs: 5 });
      now += 1;
    }
    expect(counts.get('b.svc.test:8080') ?? 0).toBeLessThan(100);
  });

  it('reports its latency estimate through the member view, which other balancers leave out', () => {
    const balancer: Balancer = new P2cEwmaBalancer({ now: () => 0 });
    balancer.update(testEndpoints('a'));
    (balancer.picker.pick({}) as PickedEndpoint).done({ ok: true, latencyMs: 12 });
    expect(balancer.member('a.svc.test:8080')?.latencyMs).toBe(12);
    const plain: Balancer = new RoundRobinBalancer();
    plain.update(testEndpoints('a'));
    expect(plain.member('a.svc.test:8080')?.latencyMs).toBeUndefined();
  });
});
