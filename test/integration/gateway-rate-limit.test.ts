import { Agent, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, startBackend, startGateway, startLocalRedis, waitFor, type BackendProcess, type GatewayProcess, type LocalRedis } from '../harness/index.ts';

/** One request's outcome as the load driver saw it. */
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly latencyMs: number;
}

/** GET `path` from `localAddress` (127.0.0.x), optionally over a keep-alive agent; never rejects (status 0 on an error). */
function get(port: number, path: string, options: { localAddress?: string; agent?: Agent } = {}): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path, agent: options.agent ?? false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, latencyMs: performance.now() - started }));
      response.on('error', () => resolve({ status: 0, headers: {}, latencyMs: performance.now() - started }));
    });
    // Far above any bound the tests assert: a hang shows as a latency, not as a stuck test.
    outgoing.setTimeout(15_000, () => outgoing.destroy(new Error('timed out')));
    outgoing.on('error', () => resolve({ status: 0, headers: {}, latencyMs: performance.now() - started }));
    outgoing.end();
  });
}

/** `count` requests at once; the answers and the seconds from the first send to the last answer. */
async function burst(port: number, count: number, localAddress?: string): Promise<{ answers: Answer[]; seconds: number }> {
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: count }, () => get(port, '/limited', localAddress ? { localAddress } : {})));
  return { answers, seconds: (performance.now() - started) / 1_000 };
}

/**
 * A steady load of `perSecond` requests per second on each port for `durationMs`, paced against
 * the clock (a late tick sends what it owes, so a stalled event loop does not lower the load): per
 * port, the 2xx count, every answer, and the seconds from the first send to the last answer.
 */
async function steadyLoad(ports: readonly number[], perSecond: number, durationMs: number): Promise<{ passed: number[]; answers: Answer[][]; seconds: number }> {
  const agents = ports.map(() => new Agent({ keepAlive: true, maxSockets: 32 }));
  const answers: Promise<Answer>[][] = ports.map(() => []);
  // Each gateway gets its own Poisson arrivals (exponential gaps, `perSecond` on average). A shared
  // bucket gives each token to the first request that reaches Redis after it accrues: with requests
  // sent in simultaneous pairs, that was always the faster gateway of the moment (CI once split 185
  // and 19); with independent random arrivals it is either, whatever their speeds.
  const gap = (): number => (-Math.log(1 - Math.random()) * 1_000) / perSecond;
  const nextAt = ports.map(() => gap());
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    const now = performance.now() - started;
    for (const [index, port] of ports.entries()) {
      for (; nextAt[index]! <= now; nextAt[index]! += gap()) answers[index]!.push(get(port, '/limited', { agent: agents[index]! }));
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const settled = await Promise.all(answers.map((list) => Promise.all(list)));
  const seconds = (performance.now() - started) / 1_000;
  for (const agent of agents) agent.destroy();
  return { passed: settled.map((list) => list.filter((answer) => answer.status === 200).length), answers: settled, seconds };
}

const statuses = (answers: readonly Answer[]) => answers.map((answer) => answer.status);
const count = (answers: readonly Answer[], status: number) => answers.filter((answer) => answer.status === status).length;

describe('local rate limit (10 req/s, burst 5)', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
accessLog: false
services:
  api: { instances: [127.0.0.1:${backend.port}] }
middlewares:
  per-client: { rateLimit: { average: 10, period: 1s, burst: 5, key: client-ip } }
routes:
  - { path: /limited, service: api, middlewares: [per-client] }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  it('lets exactly the burst (plus what refilled while the burst ran) through a burst of 50, and answers the rest 429 with the limit headers', async () => {
    const { answers, seconds } = await burst(gateway.port, 50, '127.0.0.4');
    const passed = count(answers, 200);
    // The bucket starts full (5) and refills 10/s only during the burst, which the client's window contains.
    expect(passed, `${passed} passed in ${seconds.toFixed(3)} s`).toBeGreaterThanOrEqual(5);
    expect(passed, `${passed} passed in ${seconds.toFixed(3)} s`).toBeLessThanOrEqual(5 + Math.floor(10 * seconds));
    expect(count(answers, 429)).toBe(50 - passed);
    const refused = answers.find((answer) => answer.status === 429)!;
    expect(refused.headers).toMatchObject({ 'retry-after': '1', 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '0', 'ratelimit-policy': '"default";q=5;w=1' });
    expect(refused.headers.ratelimit).toMatch(/^"default";r=0;t=1$/);
    expect(Number(refused.headers['x-ratelimit-reset'])).toBe(1);
    const ok = answers.find((answer) => answer.status === 200)!;
    expect(ok.headers['x-ratelimit-limit']).toBe('5');
  });

  it('keys by client IP: two clients (127.0.0.2 and 127.0.0.3) bursting together each get their own burst', async () => {
    const [first, second] = await Promise.all([burst(gateway.port, 20, '127.0.0.2'), burst(gateway.port, 20, '127.0.0.3')]);
    for (const [name, { answers, seconds }] of [['127.0.0.2', first], ['127.0.0.3', second]] as const) {
      const passed = count(answers, 200);
      // One bucket shared by both would let 5 (+ refill) through in all, so one of them would get fewer than 5.
      expect(passed, `${name}: ${passed} passed in ${seconds.toFixed(3)} s`).toBeGreaterThanOrEqual(5);
      expect(passed, `${name}: ${passed} passed in ${seconds.toFixed(3)} s`).toBeLessThanOrEqual(5 + Math.floor(10 * seconds));
      expect(statuses(answers).every((status) => status === 200 || status === 429)).toBe(true);
    }
  });
});

describe('local rate limit with workers: 2 (burst 5, refilling one a day)', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
workers: 2
services:
  api: { instances: [127.0.0.1:${backend.port}] }
middlewares:
  odd: { rateLimit: { average: 1, period: 24h, burst: 5, key: route } }
routes:
  - { path: /limited, service: api, middlewares: [odd] }
`);
    const listening = async () => ((await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/workers`)).json()) as { state: string }[]).filter((worker) => worker.state === 'listening').length;
    await waitFor(async () => (await listening()) === 2 || undefined, { timeoutMs: 20_000, message: 'both workers to listen' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  // Each worker took burst / 2 rounded down, 2 and 2: a fifth of the burst was lost.
  it('lets the whole burst through, dealt out 3 and 2 between the workers, over connections spread across both', async () => {
    // A connection each: node:cluster hands them to the workers in turn, so each worker sees 10.
    const { answers } = await burst(gateway.port, 20);
    expect(statuses(answers).sort()).toEqual([...Array<number>(5).fill(200), ...Array<number>(15).fill(429)]);
    const limits = new Set(answers.map((answer) => answer.headers['x-ratelimit-limit']));
    expect([...limits].sort()).toEqual(['2', '3']);
  });
});

describe('redis rate limit shared by two gateway processes (20 req/s)', () => {
  const RATE = 20;
  // Above the 100 ms default: on a loaded 2-core CI machine a 100 ms deadline is sometimes missed.
  const TIMEOUT_MS = 250;
  let redis: LocalRedis;
  let backend: BackendProcess;
  const gateways: GatewayProcess[] = [];
  const admins: AdminClient[] = [];

  beforeAll(async () => {
    [redis, backend] = await Promise.all([startLocalRedis(), startBackend({ name: 'api' })]);
    for (let index = 0; index < 2; index += 1) {
      // redis.gateways stays 1: each gateway's fallback bucket is the whole limit, so a combined
      // rate of twice the limit shows the fallback, and the limit again shows shared counting.
      const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
redis: { url: "${redis.url}/0", timeout: ${TIMEOUT_MS}ms, keyPrefix: "test:" }
services:
  api: { instances: [127.0.0.1:${backend.port}] }
middlewares:
  shared: { rateLimit: { average: ${RATE}, period: 1s, burst: ${RATE}, key: route, policy: redis, onRedisError: local } }
  hourly: { rateLimit: { average: 1000, key: route, policy: redis, quota: { limit: 3, per: hour } } }
  delayed: { rateLimit: { average: 10, period: 1s, burst: 1, key: route, policy: redis, delay: { maxWait: 300ms } } }
routes:
  - { path: /limited, service: api, middlewares: [shared] }
  - { path: /quota, service: api, middlewares: [hourly] }
  - { path: /delayed, service: api, middlewares: [delayed] }
`);
      gateways.push(gateway);
      admins.push(adminClient(`http://127.0.0.1:${gateway.adminPort}`));
    }
    // Both connected and the script cached in Redis (a first command may still miss the deadline
    // and fall back for a moment): later tests then start on Redis.
    for (const gateway of gateways) await get(gateway.port, '/limited');
    await onRedis();
  });
  afterAll(async () => {
    await Promise.all(gateways.map((gateway) => gateway.process.stop()));
    await backend?.process.kill();
    await redis?.close();
  });

  /** Fallback and recovery events the gateway reported after event `sinceId`, in order. */
  const limitEvents = async (admin: AdminClient, sinceId = 0) => {
    const stream = await admin.events(String(sinceId));
    // The replay is written at once, then a heartbeat or live events follow: a short poll collects it.
    await waitFor(() => stream.messages.length > 0 || stream.comments.length > 0 || undefined, { timeoutMs: 3_000, message: 'replayed events' }).catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    stream.close();
    return stream.messages
      .filter((message) => message.event.startsWith('rate-limit-'))
      .map((message) => ({ id: Number(message.id), type: message.event, data: JSON.parse(message.data).data as { downMs?: number } }));
  };
  const lastEventId = async (admin: AdminClient) => {
    const stream = await admin.events('0');
    await waitFor(() => stream.messages.length > 0 || undefined, { timeoutMs: 3_000, message: 'replayed events' });
    stream.close();
    return Number(stream.messages.at(-1)!.id);
  };
  /** Waits until both gateways decide by Redis (each one's latest limit event, if any, is a recovery). */
  const onRedis = () =>
    waitFor(async () => (await Promise.all(admins.map((admin) => limitEvents(admin)))).every((events) => events.at(-1)?.type !== 'rate-limit-fallback') || undefined, {
      timeoutMs: 15_000,
      message: 'both gateways on redis',
    });
  /**
   * What fallback episodes since `sinceIds` may have added beyond the shared budget: each lets its
   * gateway decide alone with a local bucket (here the whole limit: burst + rate × its length).
   */
  const fallbackAllowance = async (sinceIds: readonly number[], windowSeconds: number) => {
    let allowance = 0;
    const episodes: string[] = [];
    for (const [index, admin] of admins.entries()) {
      const events = await limitEvents(admin, sinceIds[index]);
      for (const [position, event] of events.entries()) {
        if (event.type !== 'rate-limit-fallback') continue;
        const recovered = events.slice(position + 1).find((later) => later.type === 'rate-limit-recovered');
        const seconds = recovered ? (recovered.data.downMs ?? 0) / 1_000 : windowSeconds;
        allowance += RATE + Math.ceil(RATE * seconds);
        episodes.push(`gateway ${index}: ${seconds.toFixed(2)} s`);
      }
    }
    return { allowance, episodes };
  };

  /**
   * A window of steady load on both gateways, with what fallback episodes in it may have added. On a
   * loaded machine a Redis command sometimes misses the timeout, and the gateways then decide alone
   * for a while: the code's right answer to a slow Redis, but a window with much of that says
   * nothing about sharing. Such a window is measured again, up to three in all.
   */
  const sharedWindow = async (ports: number[], durationMs: number) => {
    const skipped: string[] = [];
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await onRedis();
      const sinceIds = await Promise.all(admins.map(lastEventId));
      const load = await steadyLoad(ports, 2 * RATE, durationMs);
      const { allowance, episodes } = await fallbackAllowance(sinceIds, load.seconds);
      if (allowance < RATE * load.seconds * 0.5) return { ...load, allowance, episodes, skipped };
      skipped.push(`passed ${load.passed.join(' + ')} in ${load.seconds.toFixed(2)} s with fallback episodes ${episodes.join(', ')}`);
    }
    throw new Error(`every window fell back to local buckets too much to judge sharing: ${skipped.join('; ')}`);
  };

  it('counts a quota in Redis across both gateways and refuses past it with quota-exceeded', async () => {
    const answers: Answer[] = [];
    for (let index = 0; index < 5; index += 1) answers.push(await get(gateways[index % 2]!.port, '/quota'));
    expect(statuses(answers)).toEqual([200, 200, 200, 429, 429]);
    expect(answers[2]!.headers['ratelimit-policy']).toMatch(/"hourly";q=3;w=3600$/);
    expect(answers[2]!.headers.ratelimit).toMatch(/"hourly";r=0;t=\d+$/);
    expect(answers[3]!.headers['x-ratelimit-limit']).toBe('3');
    expect(Number(answers[3]!.headers['retry-after'])).toBeGreaterThan(0);
    const body = await new Promise<string>((resolve, reject) => {
      const outgoing = httpRequest({ host: '127.0.0.1', port: gateways[0]!.port, path: '/quota', agent: false }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve(text));
        // A connection closed mid-body aborts the response with neither 'end' nor (unlisted) 'error'; after 'end' this is a no-op.
        response.on('close', () => reject(new Error('GET /quota: the connection closed before the whole answer')));
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
    expect(JSON.parse(body)).toMatchObject({ error: 'quota-exceeded', status: 429 });
  });

  it('holds requests whose shared token is due within maxWait instead of refusing them', async () => {
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 8 }, (_, index) => get(gateways[index % 2]!.port, '/delayed')));
    const seconds = (performance.now() - started) / 1_000;
    const passed = answers.filter((answer) => answer.status === 200);
    const detail = `${statuses(answers).join(',')} in ${seconds.toFixed(3)} s; latencies ${answers.map((answer) => answer.latencyMs.toFixed(0)).join(',')}`;
    // One token at once and three lent ahead (100, 200, 300 ms at 10/s), plus what refilled meanwhile.
    expect(passed.length, detail).toBeGreaterThanOrEqual(4);
    expect(passed.length, detail).toBeLessThanOrEqual(4 + Math.floor(10 * seconds));
    expect(count(answers, 429), detail).toBe(8 - passed.length);
    // The last token lent was due 300 ms after the first: its request was held at least that long (less rounding).
    expect(Math.max(...passed.map((answer) => answer.latencyMs)), detail).toBeGreaterThanOrEqual(280);
  });

  it('passes 20 ± 2 requests per second in total over 10 s, however the load splits between the gateways', async () => {
    const ports = gateways.map((gateway) => gateway.port);
    // Warm-up: both connected, the script loaded and the code paths hot, so that a slow first
    // command (a fallback episode) is unlikely inside the window.
    await steadyLoad(ports, RATE, 2_000);
    // An unshared (per-gateway) limiter passes about twice the budget: the window is one the test can judge that by.
    const { passed, answers, seconds, allowance, episodes, skipped } = await sharedWindow(ports, 10_000);
    const total = passed[0]! + passed[1]!;
    const detail = `passed ${passed.join(' + ')} = ${total} in ${seconds.toFixed(2)} s; refused ${answers.map((list) => count(list, 429)).join(' + ')}; fallback episodes: ${episodes.join(', ') || 'none'}; windows measured again: ${skipped.length}`;
    console.info(`shared redis limit: ${detail}`);
    // At most one full bucket (20) plus 20/s over the measured window (which contains Redis'
    // window), plus what fallback episodes (a Redis command over the timeout) let through locally.
    expect(total, detail).toBeLessThanOrEqual(RATE + Math.ceil(RATE * seconds) + allowance);
    // Offered 80/s against 20/s: the bucket never overflows, so at least 18/s made it through.
    expect(total, detail).toBeGreaterThanOrEqual(Math.floor((RATE - 2) * seconds));
    // Both gateways drew from the budget: it is one budget, not one gateway passing everything.
    expect(Math.min(...passed), detail).toBeGreaterThan(RATE);
    expect(answers.flat().every((answer) => answer.status === 200 || answer.status === 429), detail).toBe(true);
  });

  it('falls back to local buckets within the Redis timeout while Redis is stopped (no request hangs), and shares one budget again once it is back', async () => {
    const ports = gateways.map((gateway) => gateway.port);
    redis.pause();
    let paused: Awaited<ReturnType<typeof steadyLoad>>;
    try {
      paused = await steadyLoad(ports, 2 * RATE, 4_000);
      await waitFor(async () => (await Promise.all(admins.map((admin) => limitEvents(admin)))).every((events) => events.at(-1)?.type === 'rate-limit-fallback') || undefined, { timeoutMs: 10_000, message: 'rate-limit-fallback from both gateways' });
    } finally {
      redis.resume();
    }
    const slowest = Math.max(...paused.answers.flat().map((answer) => answer.latencyMs));
    const detail = `paused: passed ${paused.passed.join(' + ')} in ${paused.seconds.toFixed(2)} s, slowest answer ${slowest.toFixed(0)} ms`;
    // Every request answered: at most one Redis timeout of waiting, plus a generous margin for a loaded machine.
    expect(paused.answers.flat().every((answer) => answer.status === 200 || answer.status === 429), detail).toBe(true);
    expect(slowest, detail).toBeLessThan(TIMEOUT_MS + 2_500);
    // Each gateway decided alone with a whole local bucket: together well above the shared 20/s.
    expect(paused.passed[0]! + paused.passed[1]!, detail).toBeGreaterThan(Math.ceil(RATE * paused.seconds * 1.3));

    await onRedis().catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateways[0]!.process)}`);
    });
    const resumed = await sharedWindow(ports, 5_000);
    const { allowance, episodes } = resumed;
    const total = resumed.passed[0]! + resumed.passed[1]!;
    const resumedDetail = `${detail}; resumed: passed ${resumed.passed.join(' + ')} = ${total} in ${resumed.seconds.toFixed(2)} s; fallback episodes since: ${episodes.join(', ') || 'none'}; windows measured again: ${resumed.skipped.length}`;
    console.info(`redis stopped and resumed: ${resumedDetail}`);
    expect(total, resumedDetail).toBeLessThanOrEqual(RATE + Math.ceil(RATE * resumed.seconds) + allowance);
    expect(total, resumedDetail).toBeGreaterThanOrEqual(Math.floor((RATE - 2) * resumed.seconds));
    const fallbacks = (await admins[0]!.metrics()).get('switchboard_rate_limit_fallback_total');
    expect(fallbacks?.samples.find((sample) => sample.labels.middleware === 'shared' && sample.labels.mode === 'local')?.value).toBeGreaterThan(0);
  });
});
