import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BehaviorSubject } from 'rxjs';
import { createServiceBalancer } from '../../src/balance/index.ts';
import type { PickOutcome, Picker, PickResult } from '../../src/balance/picker.ts';
import type { ServiceConf } from '../../src/discovery/load-balance-conf.ts';
import type { HealthSnapshot } from '../../src/health/index.ts';
import { tcpErrorsTotal } from '../telemetry/tcp-metrics.ts';
import { forwardConnection, type TcpConnectionRecord, type TcpForwardPolicy } from './tcp-forward.ts';
import { freePort } from '../../test/harness/ports.ts';

const POLICY: TcpForwardPolicy = { service: 'svc', attempts: 3, connectTimeoutMs: 2_000, idleTimeoutMs: 0, proxyProtocol: false };
const log = pino({ level: 'silent' });

/** A picker that hands out `ports` in order (the last one again when they run out) and records every outcome and every held pick's release. */
function scriptedPicker(ports: (number | 'none')[]) {
  const outcomes: { address: string; outcome: PickOutcome }[] = [];
  const holds = { held: 0, released: 0 };
  const contexts: unknown[] = [];
  let index = 0;
  const picker: Picker = {
    peek: () => ({ kind: 'none', reason: 'no-healthy-instances' }),
    pick(context): PickResult {
      // As it was at the pick: the forwarder's tried list grows after it.
      contexts.push(structuredClone(context));
      const port = ports[Math.min(index++, ports.length - 1)]!;
      if (port === 'none') return { kind: 'none', reason: 'no-healthy-instances' };
      const address = `127.0.0.1:${port}`;
      const instance = { id: address, service: 'svc', host: '127.0.0.1', port, weight: 1, protocol: 'http' as const, metadata: {} };
      const hold = () => {
        holds.held += 1;
        return () => void (holds.released += 1);
      };
      return { kind: 'endpoint', instance, address, done: (outcome) => void outcomes.push({ address, outcome }), answered: () => undefined, hold };
    },
  };
  return { picker, outcomes, contexts, holds };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function listen(onConnection: (socket: Socket) => void, options: { allowHalfOpen?: boolean; pauseOnConnect?: boolean } = {}): Promise<number> {
  const server = createServer(options, onConnection);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A gateway front whose every connection is forwarded with `picker`; returns its port and the forwards' promises. */
async function front(picker: Picker, policy: TcpForwardPolicy = POLICY, observer?: Parameters<typeof forwardConnection>[2]['observer']) {
  const forwards: Promise<TcpConnectionRecord>[] = [];
  const port = await listen((socket) => forwards.push(forwardConnection(socket, policy, { pickerFor: () => picker, log, ...(observer ? { observer } : {}) })), { allowHalfOpen: true, pauseOnConnect: true });
  return { port, forwards };
}

function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

describe('forwardConnection', () => {
  it('passes a client FIN on while the answer keeps flowing back (half-close), then releases the pick once both sides closed', async () => {
    // The upstream answers only after the client has finished sending: a half-close would lose the answer.
    const upstream = await listen(
      (socket) => {
        void readAll(socket).then((request) => socket.end(`got ${request.toString()}`));
      },
      { allowHalfOpen: true },
    );
    const { picker, outcomes } = scriptedPicker([upstream]);
    const { port, forwards } = await front(picker);
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    client.end('hello');
    expect((await readAll(client)).toString()).toBe('got hello');
    const [record] = await Promise.all(forwards);
    expect(outcomes).toEqual([{ address: `127.0.0.1:${upstream}`, outcome: { ok: true, latencyMs: expect.any(Number) } }]);
    // What its access log line is made of.
    expect(record).toEqual({ service: 'svc', startedAt: expect.any(Number), upstream: `127.0.0.1:${upstream}`, attempts: 1, connected: true, errorClass: undefined, bytes: 'got hello'.length, bytesReceived: 'hello'.length });
  });

  it('reports the connect once it opens and holds the pick while the connection is open, so least-connections counts open connections', async () => {
    const upstream = await listen((socket) => socket.pipe(socket));
    const { picker, outcomes, holds } = scriptedPicker([upstream]);
    const { port, forwards } = await front(picker);
    const client = connect({ port, host: '127.0.0.1' });
    client.write('ping');
    await new Promise((resolve) => client.once('data', resolve));
    expect(outcomes).toEqual([{ address: `127.0.0.1:${upstream}`, outcome: { ok: true, latencyMs: expect.any(Number) } }]);
    expect(holds).toEqual({ held: 1, released: 0 });
    client.end();
    await Promise.all(forwards);
    expect(outcomes).toHaveLength(1);
    expect(holds).toEqual({ held: 1, released: 1 });
  });

  it("counts a connection's connect for the instance when it opens, so outlier detection sees refusals between open connections as the streak they are not", async () => {
    // One instance that accepts, refuses (its listener closed, the open connection kept), accepts again, refuses again.
    const accepted: Socket[] = [];
    const upstreamPort = await freePort();
    let server: Server | undefined;
    const open = () => {
      const listener = createServer((socket) => {
        accepted.push(socket);
        socket.pipe(socket);
      });
      servers.push((server = listener));
      return new Promise<void>((resolve) => listener.listen(upstreamPort, '127.0.0.1', resolve));
    };
    // Stops listening at once; its accepted connection stays open (close's callback would wait for it).
    const stop = () => void server!.close();
    const instance = { id: 'only', service: 'svc', host: '127.0.0.1', port: upstreamPort, weight: 1, protocol: 'tcp' as const, metadata: {} };
    const conf$ = new BehaviorSubject<ServiceConf>({ service: 'svc', instances: [instance], sources: new Map(), version: 1 });
    const balancer = createServiceBalancer(
      { service: 'svc', conf$ },
      { balancer: { algorithm: 'least-connections' }, health: { outlier: { consecutiveErrors: 2, maxEjectionPercent: 100, baseEjectionMs: 60_000 }, panicThresholdPercent: 0 } },
    );
    let health: HealthSnapshot | undefined;
    const watch = balancer.health.endpoints$.subscribe((snapshot) => (health = snapshot));
    const clients: Socket[] = [];
    try {
      const { port, forwards } = await front(balancer.picker, { ...POLICY, attempts: 1 });
      const connection = async (expectOpen: boolean) => {
        const client = connect({ port, host: '127.0.0.1' });
        client.on('error', () => undefined);
        clients.push(client);
        if (expectOpen) {
          client.write('ping');
          await new Promise((resolve) => client.once('data', resolve));
        } else {
          await new Promise((resolve) => client.once('close', resolve));
        }
      };
      await open();
      await connection(true);
      stop();
      await connection(false);
      await open();
      await connection(true);
      stop();
      await connection(false);
      // Two refusals, each after a connect that succeeded: no two errors in a row.
      expect(health?.endpoints[0]?.ejected).toBe(false);
      for (const client of clients) client.destroy();
      await Promise.all(forwards);
    } finally {
      for (const client of clients) client.destroy();
      for (const socket of accepted) socket.destroy();
      watch.unsubscribe();
      balancer.close();
    }
  });

  it('retries a refused connect on another instance, counting the refusal against the first only, and keys the pick on the client IP', async () => {
    const refused = await freePort();
    const upstream = await listen((socket) => socket.end('served'));
    const { picker, outcomes, contexts } = scriptedPicker([refused, upstream]);
    const attempts: [string, string | undefined][] = [];
    const { port, forwards } = await front(picker, POLICY, { attempt: (_service, address, errorClass) => void attempts.push([address, errorClass]), unavailable: () => undefined });
    const client = connect({ port, host: '127.0.0.1' });
    expect((await readAll(client)).toString()).toBe('served');
    client.end();
    const [record] = await Promise.all(forwards);
    expect(record).toMatchObject({ upstream: `127.0.0.1:${upstream}`, attempts: 2, connected: true, errorClass: undefined, bytes: 'served'.length, bytesReceived: 0 });
    expect(outcomes.map(({ address, outcome }) => [address, outcome.ok, outcome.errorClass])).toEqual([
      [`127.0.0.1:${refused}`, false, 'connect-refused'],
      [`127.0.0.1:${upstream}`, true, undefined],
    ]);
    expect(attempts).toEqual([[`127.0.0.1:${refused}`, 'connect-refused'], [`127.0.0.1:${upstream}`, undefined]]);
    expect(contexts[0]).toEqual({ clientIp: '127.0.0.1' });
  });

  it("salts the client IP of a retry's picks per try, and names the tried instances on a repeat's", async () => {
    const refused = await freePort();
    const upstream = await listen((socket) => socket.end('served'));
    // The retry's pick lands on the refused instance again: released unused, and picked once more with `tried`.
    const { picker, outcomes, contexts } = scriptedPicker([refused, refused, upstream]);
    const { port } = await front(picker, { ...POLICY, attempts: 2 });
    const client = connect({ port, host: '127.0.0.1' });
    expect((await readAll(client)).toString()).toBe('served');
    expect(contexts).toEqual([{ clientIp: '127.0.0.1' }, { clientIp: '127.0.0.1#1' }, { clientIp: '127.0.0.1#2', tried: [`127.0.0.1:${refused}`] }]);
    expect(outcomes.map(({ address, outcome }) => [address, outcome.errorClass])).toEqual([
      [`127.0.0.1:${refused}`, 'connect-refused'],
      [`127.0.0.1:${refused}`, 'cancelled'],
      [`127.0.0.1:${upstream}`, undefined],
    ]);
  });

  it('moves a retry off a refusing instance that least-connections keeps choosing (repeats are held while it picks again)', async () => {
    const refused = await freePort();
    const upstream = await listen((socket) => socket.end('served'));
    // Least-connections over two instances, the good one busy with one connection of another client.
    const inFlight = new Map([[refused, 0], [upstream, 1]]);
    const picker: Picker = {
      peek: () => ({ kind: 'none', reason: 'no-healthy-instances' }),
      pick() {
        const port = inFlight.get(refused)! <= inFlight.get(upstream)! ? refused : upstream;
        inFlight.set(port, inFlight.get(port)! + 1);
        const instance = { id: String(port), service: 'svc', host: '127.0.0.1', port, weight: 1, protocol: 'http' as const, metadata: {} };
        let released = false;
        return { kind: 'endpoint', instance, address: `127.0.0.1:${port}`, done: () => void (released || inFlight.set(port, inFlight.get(port)! - 1), (released = true)), answered: () => undefined, hold: () => () => undefined };
      },
    };
    const { port } = await front(picker);
    const client = connect({ port, host: '127.0.0.1' });
    expect((await readAll(client)).toString()).toBe('served');
  });

  it('closes the client at once when no instance can take it, and reports it unavailable', async () => {
    const { picker } = scriptedPicker(['none']);
    const unavailable: string[] = [];
    const { port, forwards } = await front(picker, POLICY, { attempt: () => undefined, unavailable: (_service, reason) => void unavailable.push(reason) });
    const client = connect({ port, host: '127.0.0.1' });
    expect((await readAll(client)).length).toBe(0);
    expect(unavailable).toEqual(['no-healthy-instances']);
    expect(await forwards[0]).toMatchObject({ upstream: undefined, attempts: 0, connected: false, errorClass: 'no-healthy-instances' });
  });

  it('gives up after the attempts of the policy and closes the client', async () => {
    const refused = await freePort();
    const { picker, outcomes } = scriptedPicker([refused]);
    const { port, forwards } = await front(picker, { ...POLICY, attempts: 2 });
    const client = connect({ port, host: '127.0.0.1' });
    await readAll(client).catch(() => Buffer.alloc(0));
    const [record] = await Promise.all(forwards);
    expect(outcomes.filter(({ outcome }) => outcome.errorClass === 'connect-refused')).toHaveLength(2);
    expect(record).toMatchObject({ upstream: `127.0.0.1:${refused}`, attempts: 2, connected: false, errorClass: 'connect-refused', bytes: 0 });
  });

  it('retries on the balancer in force when a reload replaced the first one meanwhile', async () => {
    const refusing = await freePort();
    const upstream = await listen((socket) => socket.end('from the new balancer'));
    const before = scriptedPicker([refusing, 'none']);
    const after = scriptedPicker([upstream]);
    let current = before.picker;
    const forwards: Promise<TcpConnectionRecord>[] = [];
    const port = await listen(
      (socket) => {
        forwards.push(forwardConnection(socket, POLICY, { pickerFor: () => current, log }));
        // The reload lands while the first connect is out: the closed balancer would answer no-instances.
        current = after.picker;
      },
      { allowHalfOpen: true, pauseOnConnect: true },
    );
    const client = connect({ port, host: '127.0.0.1' });
    expect((await readAll(client)).toString()).toBe('from the new balancer');
    await Promise.all(forwards);
    expect(before.outcomes.map(({ outcome }) => outcome.errorClass)).toEqual(['connect-refused']);
    expect(after.outcomes.map(({ address }) => address)).toEqual([`127.0.0.1:${upstream}`]);
  });

  it('counts a client gone while connecting against no instance (cancelled)', async () => {
    const upstream = await listen((socket) => socket.end());
    const { picker, outcomes } = scriptedPicker([upstream]);
    const forwards: Promise<TcpConnectionRecord>[] = [];
    const port = await listen(
      (socket) => {
        forwards.push(forwardConnection(socket, POLICY, { pickerFor: () => picker, log }));
        // Gone before the upstream connect can complete (that needs at least one more turn of the loop).
        socket.destroy();
      },
      { allowHalfOpen: true, pauseOnConnect: true },
    );
    connect({ port, host: '127.0.0.1' }).on('error', () => undefined);
    await expect.poll(() => forwards.length).toBe(1);
    const [record] = await Promise.all(forwards);
    expect(outcomes).toEqual([{ address: `127.0.0.1:${upstream}`, outcome: { ok: false, latencyMs: 0, errorClass: 'cancelled' } }]);
    expect(record).toMatchObject({ attempts: 1, connected: false, errorClass: 'cancelled' });
  });

  it('forwards 16 MiB each way intact through a client that reads slowly (back-pressure, no loss)', async () => {
    const upstream = await listen((socket) => socket.pipe(socket), { allowHalfOpen: true });
    const { picker } = scriptedPicker([upstream]);
    const { port } = await front(picker);
    const payload = randomBytes(16 * 1024 * 1024);
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const received = createHash('sha256');
    let length = 0;
    const done = new Promise<void>((resolve) => client.once('end', resolve));
    client.on('data', (chunk: Buffer) => {
      received.update(chunk);
      length += chunk.length;
      // Reading in fits and starts makes the gateway's writes to the client back up.
      client.pause();
      setImmediate(() => client.resume());
    });
    client.end(payload);
    await done;
    expect(length).toBe(payload.length);
    expect(received.digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
  });

  it('writes the PROXY header before the first client byte', async () => {
    const upstream = await listen((socket) => void readAll(socket).then((bytes) => socket.end(bytes)), { allowHalfOpen: true });
    const { picker } = scriptedPicker([upstream]);
    const { port } = await front(picker, { ...POLICY, proxyProtocol: 1 });
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((resolve) => client.once('connect', resolve));
    const clientPort = client.localPort;
    client.end('PING\r\n');
    const echoed = (await readAll(client)).toString('latin1');
    expect(echoed).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${port}\r\nPING\r\n`);
  });

  it('closes both sides of a connection idle for the idle timeout', async () => {
    const upstream = await listen(() => undefined);
    const { picker, outcomes } = scriptedPicker([upstream]);
    const idleTimeouts = tcpErrorsTotal.cell({ service: POLICY.service, class: 'idle-timeout' });
    const before = idleTimeouts.value;
    const { port, forwards } = await front(picker, { ...POLICY, idleTimeoutMs: 200 });
    const startedAt = performance.now();
    const client = connect({ port, host: '127.0.0.1' });
    await readAll(client);
    const [record] = await Promise.all(forwards);
    // Closed by the idle timer, not at once: no earlier than the timeout (timers never fire early
    // by more than a millisecond), and counted as an idle timeout.
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(190);
    expect(idleTimeouts.value).toBe(before + 1);
    expect(record).toMatchObject({ connected: true, errorClass: 'idle-timeout' });
    expect(outcomes).toHaveLength(1);
  });
});
