import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Picker } from '../../src/balance/picker.ts';
import { forwardConnection } from '../proxy/tcp-forward.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { cutByDrain } from './drain-cut.ts';
import type { EntryPoint } from './entry-point.ts';
import { startTcpEntryPoint } from './tcp-entry-point.ts';
import { selfSignedPair, testEntryPointConfig } from './tls-testing.ts';

const log = pino({ level: 'silent' });
const TCP = { service: 'svc', sni: new Map<string, string>(), proxyProtocol: undefined, idleTimeoutMs: 0 };

let certificate: { certFile: string; keyFile: string };
let upstream: Server;
let upstreamPort: number;
const running: EntryPoint[] = [];

/** A picker of the one upstream. */
const picker: Picker = {
  peek: () => ({ kind: 'none', reason: 'no-healthy-instances' }),
  pick: () => ({
    kind: 'endpoint',
    address: `127.0.0.1:${upstreamPort}`,
    instance: { id: 'up', service: 'svc', host: '127.0.0.1', port: upstreamPort, weight: 1, protocol: 'http', metadata: {} },
    done: () => undefined,
    answered: () => undefined,
    hold: () => () => undefined,
  }),
};

/** A tcp entry point (TLS-terminating with `tls`) that forwards every connection to the upstream. */
async function start(tls: boolean): Promise<EntryPoint> {
  const config = testEntryPointConfig('tcp', tls ? certificate : undefined, TCP);
  const policy = { service: 'svc', attempts: 1, connectTimeoutMs: 2_000, idleTimeoutMs: 0, proxyProtocol: false as const };
  const entryPoint = await startTcpEntryPoint(config, (socket) => forwardConnection(socket, policy, { pickerFor: () => picker, log }), 5_000, log);
  running.push(entryPoint);
  return entryPoint;
}

/** A client of `port`, connected (and past the handshake with `tls`). */
async function client(port: number, tls: boolean): Promise<Socket> {
  const socket = tls ? connectTls({ host: '127.0.0.1', port, servername: 'tcp.test', rejectUnauthorized: false }) : connect({ host: '127.0.0.1', port });
  await new Promise((resolve, reject) => socket.once(tls ? 'secureConnect' : 'connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  return socket;
}

/** Writes `text` on `socket` and resolves with the next chunk it reads. */
function exchange(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    socket.once('close', () => reject(new Error(`closed before an answer to ${text}`)));
    socket.write(text);
  });
}

beforeAll(async () => {
  certificate = selfSignedPair('tcp.test');
  // Echoes what it reads, as two writes a moment apart (the second from a later turn of the loop).
  upstream = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      socket.write(chunk.subarray(0, 1));
      setTimeout(() => socket.write(chunk.subarray(1)), 1);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as AddressInfo).port;
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((entryPoint) => entryPoint.drain(0)));
});

afterAll(async () => {
  await new Promise((resolve) => upstream.close(resolve));
});

/** Resolves with the whole echo of `text` (it comes back in two writes). */
function echo(socket: Socket, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString();
      if (received.length < text.length) return;
      socket.off('data', onData).off('close', onClose);
      resolve();
    };
    const onClose = () => reject(new Error('closed before the whole echo'));
    socket.on('data', onData).once('close', onClose);
    socket.write(text);
  });
}

describe('startTcpEntryPoint', () => {
  it.each([
    ['in the clear', false],
    ['over TLS', true],
  ])('on drain keeps an open connection flowing %s until the deadline, refuses new ones, then cuts it', async (_name, tls) => {
    const entryPoint = await start(tls);
    const socket = await client(entryPoint.port, tls);
    expect(await exchange(socket, 'x')).toBe('x');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const startedAt = performance.now();
    const drained = entryPoint.drain(600);
    // The open connection still carries bytes both ways while the gateway drains (a TLS one was cut at once).
    await echo(socket, 'during the drain');
    await expect(client(entryPoint.port, false)).rejects.toThrow();
    await drained;
    await closed;
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(590);
  });

  it('at the drain deadline marks as cut (drain-timeout) the connections still open, not one that closed by itself and is still being recorded', async () => {
    const accepted: Socket[] = [];
    let release!: () => void;
    const recorded = new Promise<void>((resolve) => (release = resolve));
    // Each connection's record is written once the test releases it: one closed meanwhile is still the entry point's.
    const entryPoint = await startTcpEntryPoint(testEntryPointConfig('tcp', undefined, TCP), (socket) => (accepted.push(socket), recorded), 5_000, log);
    await client(entryPoint.port, false);
    await client(entryPoint.port, false);
    await waitFor(() => accepted.length === 2, { message: 'both connections accepted' });
    const [ended, open] = accepted as [Socket, Socket];
    ended.destroy();
    await new Promise((resolve) => ended.once('close', resolve));
    await entryPoint.drain(0);
    release();
    expect(open.destroyed).toBe(true);
    expect(cutByDrain(open)).toBe(true);
    expect(cutByDrain(ended)).toBe(false);
  });

  it("passes on an answer's second write at once, not after the client's delayed ACK (TCP_NODELAY towards the client)", async () => {
    // With Nagle's algorithm on the client side, the second write waits for the ACK of the first,
    // which the client delays by 40 ms or more: every round took ~44 ms instead of ~3.
    const entryPoint = await start(false);
    const socket = await client(entryPoint.port, false);
    socket.setNoDelay(true);
    const rounds: number[] = [];
    for (let round = 0; round < 9; round += 1) {
      const startedAt = performance.now();
      await echo(socket, 'ping');
      rounds.push(performance.now() - startedAt);
    }
    socket.destroy();
    rounds.sort((a, b) => a - b);
    // 35 ms: far above a loaded machine's loopback round, below the 40 ms minimum of a delayed ACK.
    expect(rounds[4]).toBeLessThan(35);
  });
});
