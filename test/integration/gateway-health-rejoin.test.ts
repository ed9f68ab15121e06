import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** A real HTTP backend: `/health` answers `health`, any other path `traffic` with the backend's port as body. */
interface RejoinBackend {
  readonly port: number;
  health: number;
  traffic: number;
  close(): Promise<void>;
}

async function startRejoinBackend(health: number, traffic: number): Promise<RejoinBackend> {
  const backend = { health, traffic } as RejoinBackend;
  const server: Server = createServer((request, response) => {
    const status = request.url === '/health' ? backend.health : backend.traffic;
    response.writeHead(status, { 'content-type': 'text/plain' }).end(String(backend.port));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(backend, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

describe('an instance that leaves the registry unhealthy and comes back', () => {
  /** Fails its health checks. */
  let failing: RejoinBackend;
  /** Passes its checks, answers traffic 500: outlier detection ejects it. */
  let erring: RejoinBackend;
  let good: RejoinBackend;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const config = (backends: readonly RejoinBackend[], balancer = 'weighted-round-robin', check = { path: '/health', interval: '1s' }) => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  web:
    retries: false
    balancer: ${balancer}
    panicThreshold: 0
    healthCheck: { path: ${check.path}, interval: ${check.interval}, unhealthyThreshold: 3, healthyThreshold: 2 }
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: 120s, maxEjectionPercent: 100 }
    instances: [${backends.map((backend) => `127.0.0.1:${backend.port}`).join(', ')}]
routes:
  - { path: /, service: web }
`;
  const view = async (port: number) => (await admin.services()).find((service) => service.name === 'web')?.instances.find((instance) => instance.port === port);
  const balancerIs = (name: string) => waitFor(async () => (await admin.services()).find((service) => service.name === 'web')?.balancer === name, { timeoutMs: 10_000, message: `the reload to ${name}` });
  const reasons = async () => new Map((await admin.services()).find((service) => service.name === 'web')?.instances.map((instance) => [instance.port, instance.health.reason]) ?? []);

  beforeAll(async () => {
    [failing, erring, good] = await Promise.all([startRejoinBackend(503, 200), startRejoinBackend(200, 500), startRejoinBackend(200, 200)]);
    gateway = await startGateway(config([failing, erring, good]));
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([failing, erring, good].map((backend) => backend?.close()));
  });

  /**
   * Waits until `failing` fails its checks and `erring` is ejected (at once when a case before left
   * them so: its 120 s ejection outlasts the file), with all three registered; the ejection's end.
   */
  const untilVerdicts = async () => {
    await gateway.writeConfig(config([failing, erring, good]));
    await waitFor(async () => (await reasons()).get(failing.port) === 'check-failing', { timeoutMs: 15_000, message: 'the failing instance to fail its checks' });
    await waitFor(
      async () => {
        if ((await reasons()).get(erring.port) === 'ejected') return true;
        await fetch(`${gateway.url}/x`).then((response) => response.text());
        return false;
      },
      { timeoutMs: 15_000, message: 'the erring instance to be ejected' },
    );
    return (await view(erring.port))?.health.ejectedUntil;
  };

  it('is still failing its checks or ejected, and gets no traffic until it earns it back', async () => {
    const ejectedUntil = await untilVerdicts();

    // A registry flap: both leave, then come back (as after an agent's expired session).
    await gateway.writeConfig(config([good]));
    await waitFor(async () => (await reasons()).size === 1, { timeoutMs: 10_000, message: 'the two to leave' });
    await gateway.writeConfig(config([failing, erring, good]));
    const back = await waitFor(async () => ((await reasons()).size === 3 ? reasons() : undefined), { timeoutMs: 10_000, message: 'the two to come back' });

    // A fresh start would be `check-pending` and routable (for three failed checks) and `registered`-healthy.
    expect(back.get(failing.port)).toBe('check-failing');
    expect(back.get(erring.port)).toBe('ejected');
    const erringView = (await admin.services()).find((service) => service.name === 'web')?.instances.find((instance) => instance.port === erring.port);
    expect(erringView).toMatchObject({ routable: false, health: { ejectedUntil } });
    const answeredBy = new Set<string>();
    for (let request = 0; request < 12; request += 1) answeredBy.add(await fetch(`${gateway.url}/x`).then((response) => response.text()));
    expect([...answeredBy]).toEqual([String(good.port)]);
  });

  it('is still failing or ejected when a reload that changed only the balancer came while it was away', async () => {
    const ejectedUntil = await untilVerdicts();
    expect(await reasons()).toEqual(new Map([[failing.port, 'check-failing'], [erring.port, 'ejected'], [good.port, expect.any(String)]]));

    await gateway.writeConfig(config([good]));
    await waitFor(async () => (await reasons()).size === 1, { timeoutMs: 10_000, message: 'the two to leave' });
    // The balancer alone changes while they are away: the service is rebuilt.
    await gateway.writeConfig(config([good], 'least-connections'));
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'web')?.balancer === 'least-connections', { timeoutMs: 10_000, message: 'the new balancer' });
    await gateway.writeConfig(config([failing, erring, good], 'least-connections'));
    const back = await waitFor(async () => ((await reasons()).size === 3 ? reasons() : undefined), { timeoutMs: 10_000, message: 'the two to come back' });

    // A rebuild that made a new health set would show them `check-pending` and `registered`, routable.
    expect(back.get(failing.port)).toBe('check-failing');
    expect(back.get(erring.port)).toBe('ejected');
    expect(await view(erring.port)).toMatchObject({ routable: false, health: { ejectedUntil } });
    const answeredBy = new Set<string>();
    for (let request = 0; request < 12; request += 1) answeredBy.add(await fetch(`${gateway.url}/x`).then((response) => response.text()));
    expect([...answeredBy]).toEqual([String(good.port)]);
  });

  it('is still failing or ejected when a reload that changed how often checks run came while it was away', async () => {
    const ejectedUntil = await untilVerdicts();
    expect(await reasons()).toEqual(new Map([[failing.port, 'check-failing'], [erring.port, 'ejected'], [good.port, expect.any(String)]]));

    await gateway.writeConfig(config([good], 'least-connections'));
    await waitFor(async () => (await reasons()).size === 1, { timeoutMs: 10_000, message: 'the two to leave' });
    // The check interval changes while they are away (the balancer too, to see the reload land): a new health set.
    const slower = { path: '/health', interval: '1100ms' };
    await gateway.writeConfig(config([good], 'random', slower));
    await balancerIs('random');
    await gateway.writeConfig(config([failing, erring, good], 'random', slower));
    const back = await waitFor(async () => ((await reasons()).size === 3 ? reasons() : undefined), { timeoutMs: 10_000, message: 'the two to come back' });

    // Had the new set forgotten what the old one remembered, they would be `check-pending` and `registered`, routable.
    expect(back.get(failing.port)).toBe('check-failing');
    expect(back.get(erring.port)).toBe('ejected');
    expect(await view(erring.port)).toMatchObject({ routable: false, health: { ejectedUntil } });
    const answeredBy = new Set<string>();
    for (let request = 0; request < 12; request += 1) answeredBy.add(await fetch(`${gateway.url}/x`).then((response) => response.text()));
    expect([...answeredBy]).toEqual([String(good.port)]);
  });

  it('is judged by the first answer of its new check, present or away, after a reload that changed the path its checks ask, and stays ejected', async () => {
    const ejectedUntil = await untilVerdicts();
    expect(await reasons()).toEqual(new Map([[failing.port, 'check-failing'], [erring.port, 'ejected'], [good.port, expect.any(String)]]));

    // Away: they leave, the path changes to /ready (which the failing one answers 200), they come back.
    await gateway.writeConfig(config([good], 'least-connections'));
    await waitFor(async () => (await reasons()).size === 1, { timeoutMs: 10_000, message: 'the two to leave' });
    // Checks 30 s apart: the first answer comes within the jitter, a second one only after 30 s.
    const ready = { path: '/ready', interval: '30s' };
    await gateway.writeConfig(config([good], 'round-robin', ready));
    await balancerIs('round-robin');
    await gateway.writeConfig(config([failing, erring, good], 'round-robin', ready));
    const back = await waitFor(async () => ((await reasons()).size === 3 ? reasons() : undefined), { timeoutMs: 10_000, message: 'the two to come back' });
    // A verdict of /health holds it out only until /ready first answers: one pass, not healthyThreshold (two: 30 s).
    await waitFor(async () => (await reasons()).get(failing.port) === 'check-passing', { timeoutMs: 10_000, message: 'the failing instance to pass its first check of /ready' });
    // An ejection is a verdict of traffic, whatever the check asks.
    expect(back.get(erring.port)).toBe('ejected');
    expect(await view(erring.port)).toMatchObject({ routable: false, health: { ejectedUntil } });

    // Present: failing /health again, then a reload to /ready: a verdict of /health says nothing of /ready.
    await gateway.writeConfig(config([failing, erring, good], 'random'));
    await balancerIs('random');
    await waitFor(async () => (await reasons()).get(failing.port) === 'check-failing', { timeoutMs: 15_000, message: 'the failing instance to fail /health again' });
    await gateway.writeConfig(config([failing, erring, good], 'weighted-round-robin', ready));
    await balancerIs('weighted-round-robin');
    // Held as of the same check, the failing verdict would last two passing checks (30 s); its first answer decides.
    await waitFor(async () => (await reasons()).get(failing.port) === 'check-passing', { timeoutMs: 10_000, message: 'the failing instance to pass its first check of /ready' });
    await waitFor(async () => (await fetch(`${gateway.url}/x`).then((response) => response.text())) === String(failing.port), { timeoutMs: 10_000, message: 'traffic to the instance that passes /ready' });
  });

  it('is judged by the first answer of its new check when, away, the path changed and then only how often checks run', async () => {
    await untilVerdicts();
    await gateway.writeConfig(config([good], 'least-connections'));
    await waitFor(async () => (await reasons()).size === 1, { timeoutMs: 10_000, message: 'the two to leave' });
    // Two reloads while it is away: the path changes, then only the interval (the same question).
    await gateway.writeConfig(config([good], 'round-robin', { path: '/ready', interval: '30s' }));
    await balancerIs('round-robin');
    const ready = { path: '/ready', interval: '31s' };
    await gateway.writeConfig(config([good], 'random', ready));
    await balancerIs('random');
    await gateway.writeConfig(config([failing, erring, good], 'random', ready));
    await waitFor(async () => (await reasons()).size === 3, { timeoutMs: 10_000, message: 'the two to come back' });
    // Its failing verdict still answers /health, which /ready never asked: the first answer decides,
    // where taking it for one of /ready kept it out for two passing checks (31 s).
    await waitFor(async () => (await reasons()).get(failing.port) === 'check-passing', { timeoutMs: 10_000, message: 'the failing instance to pass its first check of /ready' });
    await waitFor(async () => (await fetch(`${gateway.url}/x`).then((response) => response.text())) === String(failing.port), { timeoutMs: 10_000, message: 'traffic to the instance that passes /ready' });
  });
});

describe('an instance ejected before, that leaves the registry and comes back', () => {
  /** Answers traffic 500: outlier detection ejects it (one per case, so that each starts with no past ejections). */
  let erring: RejoinBackend;
  let good: RejoinBackend;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const opened: RejoinBackend[] = [];
  const BASE_EJECTION_MS = 3_000;
  const config = (backends: readonly RejoinBackend[], balancer = 'weighted-round-robin', panicThreshold = 0) => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  web:
    retries: false
    balancer: ${balancer}
    panicThreshold: ${panicThreshold}
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: ${BASE_EJECTION_MS}ms, maxEjectionPercent: 100, decayInterval: 120s }
    instances: [${backends.map((backend) => `127.0.0.1:${backend.port}`).join(', ')}]
routes:
  - { path: /, service: web }
`;
  const erringView = async () => (await admin.services()).find((service) => service.name === 'web')?.instances.find((instance) => instance.port === erring.port);
  const members = async () => (await admin.services()).find((service) => service.name === 'web')?.instances.length ?? 0;
  /** Sends traffic until `erring` is ejected; how long after the first request its ejection ends (at least the ejection's length). */
  const ejectionFromNow = async () => {
    const start = Date.now();
    const until = await waitFor(
      async () => {
        const ejectedUntil = (await erringView())?.health.ejectedUntil;
        if (ejectedUntil) return ejectedUntil;
        await fetch(`${gateway.url}/x`).then((response) => response.text());
        return undefined;
      },
      { timeoutMs: 10_000, message: 'the erring instance to be ejected' },
    );
    return Date.parse(until) - start;
  };
  const setMembers = async (backends: readonly RejoinBackend[], balancer?: string) => {
    await gateway.writeConfig(config(backends, balancer));
    await waitFor(async () => (await members()) === backends.length, { timeoutMs: 10_000, message: `${backends.length} members` });
  };
  /** Starts a fresh `erring` backend, makes it a member beside `good` and ejects it; returns what ejectionFromNow said. */
  const addErringAndEject = async () => {
    erring = await startRejoinBackend(200, 500);
    opened.push(erring);
    await setMembers([erring, good]);
    return ejectionFromNow();
  };
  const ejectionOver = () => waitFor(async () => (await erringView())?.health.ejectedUntil === null, { timeoutMs: 10_000, message: 'the ejection to end' });

  beforeAll(async () => {
    good = await startRejoinBackend(200, 200);
    opened.push(good);
    gateway = await startGateway(config([good]));
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all(opened.map((backend) => backend.close()));
  });

  it.each([
    { when: 'left while ejected and came back after its ejection ended', leftEjected: true },
    { when: 'left after its ejection ended', leftEjected: false },
  ])('keeps its count of past ejections when it $when (a registry flap)', async ({ leftEjected }) => {
    const first = await addErringAndEject();
    const ejectionEnd = Date.now() + first;
    if (!leftEjected) await ejectionOver();
    await setMembers([good]);
    await waitFor(() => Date.now() > ejectionEnd, { timeoutMs: 15_000, message: 'the ejection to run out' });
    await setMembers([erring, good]);
    expect((await erringView())?.health.ejectedUntil).toBeNull();
    // Its second ejection lasts twice the base; a fresh start would eject it for the base again.
    expect(await ejectionFromNow()).toBeGreaterThanOrEqual(2 * BASE_EJECTION_MS);
  });

  it.each([
    { where: 'present', away: false },
    { where: 'away', away: true },
  ])('keeps its count of past ejections across a reload that rebuilds the service for other health settings, $where', async ({ away }) => {
    await addErringAndEject();
    await ejectionOver();
    if (away) await setMembers([good]);
    // panicThreshold is a health setting: a new health set (the balancer changes too, to see the reload land).
    await gateway.writeConfig(config(away ? [good] : [erring, good], 'round-robin', 1));
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'web')?.balancer === 'round-robin', { timeoutMs: 10_000, message: 'the reload' });
    if (away) await setMembers([erring, good], 'round-robin');
    // A new health set that started every count afresh would eject it for the base again.
    expect(await ejectionFromNow()).toBeGreaterThanOrEqual(2 * BASE_EJECTION_MS);
  });
});
