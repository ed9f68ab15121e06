import { connect as connectHttp2 } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { stickyId } from '../../src/balance/sticky.ts';
import { stickyCookieName } from '../../gateway/config/index.ts';
import { refusingPort, logOf, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

/** Who answered a request through the gateway, and the sticky cookie it was given, if any. */
interface Answer {
  readonly name: string;
  /** The value of the user service's cookie in the answer's Set-Cookie; undefined when none was set. */
  readonly cookie: string | undefined;
  readonly setCookie: readonly string[];
  /** The Cookie header the backend received. */
  readonly sent: string | undefined;
}

/** The default name of the user service's cookie (`sticky: true`). */
const COOKIE = stickyCookieName('user');

function stickyCookieOf(setCookie: readonly string[]): string | undefined {
  const line = setCookie.find((value) => value.startsWith(`${COOKIE}=`));
  return line?.slice(COOKIE.length + 1).split(';')[0];
}

describe('sticky sessions by cookie through a real gateway and two real backends', () => {
  let gateway: GatewayProcess;
  let a: BackendProcess;
  let b: BackendProcess;
  /** A port nothing listens on: an instance of `flaky` that refuses every connection. */
  let deadPort: number;
  /** The sticky id of each backend by name, as the gateway's cookies name them. */
  const ids = new Map<string, string>();

  const config = (instances: readonly BackendProcess[]) => `
entryPoints:
  web: { listen: 127.0.0.1:{{port}}, h2c: true }
accessLog: false
services:
  user:
    balancer: round-robin
    sticky: true
    healthCheck: { path: /healthz, interval: 100ms, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
    # An instance that leaves the list goes at once (else it keeps traffic, sticky clients too, while it passes).
    removalGrace: 0
    instances: [${instances.map((backend) => `"127.0.0.1:${backend.port}"`).join(', ')}]
  flaky:
    balancer: round-robin
    sticky: { cookie: { name: flaky_sticky } }
    outlierDetection: false
    retries: { attempts: 2, retryOn: [connect-failure] }
    instances: ["127.0.0.1:${deadPort}", "127.0.0.1:${b.port}"]
  cart:
    balancer: round-robin
    sticky: true
    instances: [${instances.map((backend) => `"127.0.0.1:${backend.port}"`).join(', ')}]
  # Panics as soon as one instance fails its checks: every instance stays routable then.
  crowd:
    balancer: round-robin
    sticky: { cookie: { name: crowd_sticky } }
    panicThreshold: 100
    healthCheck: { path: /healthz, interval: 100ms, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
    removalGrace: 0
    instances: [${instances.map((backend) => `"127.0.0.1:${backend.port}"`).join(', ')}]
routes:
  - { path: /app, service: user, stripPrefix: true }
  - { path: /cart, service: cart, stripPrefix: true }
  - { path: /crowd, service: crowd, stripPrefix: true }
  - { path: /flaky, service: flaky, stripPrefix: true }
`;

  async function get(cookie?: string): Promise<Answer> {
    const response = await fetch(`${gateway.url}/app/who`, { headers: cookie === undefined ? {} : { cookie: `theme=dark; ${COOKIE}=${cookie}; lang=en` } });
    expect(response.status).toBe(200);
    const { name, headers } = (await response.json()) as { name: string; headers: Record<string, string | undefined> };
    const setCookie = response.headers.getSetCookie();
    return { name, cookie: stickyCookieOf(setCookie), setCookie, sent: headers.cookie };
  }

  beforeAll(async () => {
    [a, b, deadPort] = await Promise.all([startBackend({ name: 'a' }), startBackend({ name: 'b' }), refusingPort()]);
    gateway = await startGateway(config([a, b]));
    // Round-robin over both, each answer naming the instance that gave it.
    await waitFor(
      async () => {
        const answer = await get().catch(() => undefined);
        if (answer?.cookie !== undefined) ids.set(answer.name, answer.cookie);
        return ids.size === 2;
      },
      { timeoutMs: 20_000, message: 'both backends answering through the gateway with a sticky cookie' },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([a?.process.stop(), b?.process.stop()]);
  });

  it('sets a session cookie with an opaque id on the first answer, and sends every request that carries it to the same backend', async () => {
    const first = await get();
    expect(first.setCookie).toContainEqual(`${COOKIE}=${first.cookie}; Path=/; HttpOnly`);
    expect(first.cookie).toMatch(/^[0-9a-f]{16}$/);
    expect(first.cookie).toBe(ids.get(first.name));
    for (const backend of [a, b]) expect(first.setCookie.join()).not.toContain(String(backend.port));
    const later = await Promise.all(Array.from({ length: 10 }, () => get(first.cookie)));
    expect(later.map((answer) => answer.name)).toEqual(Array(10).fill(first.name));
    // The cookie already names the instance: nothing to set again. It goes upstream as sent (not HAProxy's `indirect`).
    expect(later.every((answer) => answer.setCookie.length === 0)).toBe(true);
    expect(later[0]!.sent).toBe(`theme=dark; ${COOKIE}=${first.cookie}; lang=en`);
  });

  it('ignores a forged or unknown cookie value: the balancer picks, and the answer sets a cookie naming the instance that answered', async () => {
    for (const forged of ['ffffffffffffffff', '127.0.0.1:1', '']) {
      const answer = await get(forged);
      expect(answer.cookie).toBe(ids.get(answer.name));
    }
  });

  it('sets the cookie to the instance that answered a retry, away from the one the cookie named', async () => {
    const dead = stickyId('flaky', `127.0.0.1:${deadPort}`);
    for (let round = 0; round < 3; round += 1) {
      const response = await fetch(`${gateway.url}/flaky/who`, { headers: { cookie: `flaky_sticky=${dead}` } });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { name: string }).name).toBe('b');
      expect(response.headers.getSetCookie()).toEqual([`flaky_sticky=${stickyId('flaky', `127.0.0.1:${b.port}`)}; Path=/; HttpOnly`]);
    }
  });

  it('sticks over HTTP/2 too', async () => {
    const session = connectHttp2(gateway.url);
    try {
      const ask = (cookie: string) =>
        new Promise<{ name: string; setCookie: readonly string[] }>((resolve, reject) => {
          const stream = session.request({ ':path': '/app/who', cookie: `${COOKIE}=${cookie}` });
          let body = '';
          let setCookie: readonly string[] = [];
          stream.on('response', (headers) => (setCookie = (headers['set-cookie'] as string[] | undefined) ?? []));
          stream.setEncoding('utf8');
          stream.on('data', (chunk: string) => (body += chunk));
          stream.on('end', () => resolve({ name: (JSON.parse(body) as { name: string }).name, setCookie }));
          stream.on('error', reject);
        });
      for (const name of ['a', 'b']) {
        const answers = await Promise.all(Array.from({ length: 4 }, () => ask(ids.get(name)!)));
        expect(answers.map((answer) => answer.name)).toEqual(Array(4).fill(name));
        expect(answers.every((answer) => answer.setCookie.length === 0)).toBe(true);
      }
      const forged = await ask('0000000000000000');
      expect(stickyCookieOf(forged.setCookie)).toBe(ids.get(forged.name));
    } finally {
      session.close();
    }
  });

  it('sticks a WebSocket handshake, and sets the cookie on the 101 of one without it', async () => {
    const open = (cookie: string | undefined) =>
      new Promise<{ echo: string; setCookie: readonly string[] }>((resolve, reject) => {
        const socket = new WebSocket(`${gateway.url.replace('http', 'ws')}/app/ws`, { headers: cookie === undefined ? {} : { cookie: `${COOKIE}=${cookie}` } });
        let setCookie: readonly string[] = [];
        socket.on('upgrade', (response) => (setCookie = response.headers['set-cookie'] ?? []));
        socket.on('open', () => socket.send('hi'));
        socket.on('message', (data: Buffer) => {
          resolve({ echo: data.toString(), setCookie });
          socket.close();
        });
        socket.on('error', reject);
      });
    for (const name of ['a', 'b']) {
      for (let round = 0; round < 3; round += 1) {
        const { echo, setCookie } = await open(ids.get(name));
        expect(echo).toBe(`${name}: hi`);
        expect(setCookie).toEqual([]);
      }
    }
    const { echo, setCookie } = await open(undefined);
    expect(stickyCookieOf(setCookie)).toBe(ids.get(echo.split(':')[0]!));
  });

  it('keeps a client of two sticky services on one site on its instance of each: their default cookies have names of their own', async () => {
    // A browser's cookie jar for the site: every answer's Set-Cookie goes in, every request sends it all.
    const jar = new Map<string, string>();
    const visit = async (path: string) => {
      const response = await fetch(`${gateway.url}${path}/who`, { headers: jar.size === 0 ? {} : { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; ') } });
      expect(response.status).toBe(200);
      for (const line of response.headers.getSetCookie()) {
        const [pair] = line.split(';');
        const equals = pair!.indexOf('=');
        jar.set(pair!.slice(0, equals), pair!.slice(equals + 1));
      }
      return ((await response.json()) as { name: string }).name;
    };
    const seen = { user: new Set<string>(), cart: new Set<string>() };
    for (let round = 0; round < 4; round += 1) {
      seen.user.add(await visit('/app'));
      seen.cart.add(await visit('/cart'));
    }
    expect([seen.user.size, seen.cart.size]).toEqual([1, 1]);
    expect(jar.size).toBe(2);
  });

  it('sends the cookie of an unhealthy backend elsewhere with a new cookie, and back once it is healthy again', async () => {
    await fetch(`http://127.0.0.1:${a.port}/health/fail`, { method: 'POST' });
    try {
      const moved = await waitFor(
        async () => {
          const answer = await get(ids.get('a'));
          return answer.name === 'b' ? answer : undefined;
        },
        { timeoutMs: 10_000, message: "a's cookie to reach b once a fails its checks" },
      );
      expect(moved.cookie).toBe(ids.get('b'));
      // While a is out, its clients all go to b (the balancer has no one else).
      const meanwhile = await Promise.all(Array.from({ length: 4 }, () => get(ids.get('a'))));
      expect(meanwhile.map((answer) => [answer.name, answer.cookie])).toEqual(Array(4).fill(['b', ids.get('b')]));
      // In panic a stays routable, and the balancer still sends it a share, but a's cookie no longer takes a client there.
      const crowd = async () => {
        const response = await fetch(`${gateway.url}/crowd/who`, { headers: { cookie: `crowd_sticky=${stickyId('crowd', `127.0.0.1:${a.port}`)}` } });
        expect(response.status).toBe(200);
        return { name: ((await response.json()) as { name: string }).name, setCookie: response.headers.getSetCookie() };
      };
      const elsewhere = await waitFor(
        async () => {
          const answer = await crowd();
          return answer.name === 'b' ? answer : undefined;
        },
        { timeoutMs: 10_000, message: "crowd's cookie of a to reach b once a fails its checks in panic" },
      );
      expect(elsewhere.setCookie).toEqual([`crowd_sticky=${stickyId('crowd', `127.0.0.1:${b.port}`)}; Path=/; HttpOnly`]);
      // Round-robin over both: a keeps its share of the panic's traffic, its cookie just pins nobody there.
      const spread = [];
      for (let round = 0; round < 4; round += 1) spread.push((await crowd()).name);
      expect(new Set(spread)).toEqual(new Set(['a', 'b']));
    } finally {
      await fetch(`http://127.0.0.1:${a.port}/health/ok`, { method: 'POST' });
    }
    await waitFor(
      async () => (await get(ids.get('a'))).name === 'a',
      { timeoutMs: 10_000, message: "a's cookie to reach a again once it passes its checks" },
    );
    // Back for good: every request of a's clients goes to a again, and keeps its cookie.
    const back = [];
    for (let round = 0; round < 4; round += 1) back.push(await get(ids.get('a')));
    expect(back.map((answer) => [answer.name, answer.setCookie.length])).toEqual(Array(4).fill(['a', 0]));
  });

  it('sends the cookie of a backend that left the instance list to one that is listed, with a new cookie', async () => {
    await gateway.writeConfig(config([b]));
    const moved = await waitFor(
      async () => {
        const answer = await get(ids.get('a'));
        return answer.cookie !== undefined ? answer : undefined;
      },
      { timeoutMs: 10_000, message: "a's cookie to be replaced once a leaves the list" },
    );
    expect(moved.name).toBe('b');
    expect(moved.cookie).toBe(ids.get('b'));
    const later = await Promise.all(Array.from({ length: 4 }, () => get(ids.get('a'))));
    expect(later.map((answer) => [answer.name, answer.cookie])).toEqual(Array(4).fill(['b', ids.get('b')]));
  });
});
