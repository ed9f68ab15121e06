import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { connect, createServer, Socket, type AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../test/harness/ports.ts';
import { waitFor } from '../../test/harness/wait.ts';
import type { Picker } from '../../src/balance/picker.ts';
import type { ProxyProtocolVersion } from '../config/index.ts';
import type { EntryPoint } from '../entrypoints/entry-point.ts';
import { startTcpEntryPoint } from '../entrypoints/tcp-entry-point.ts';
import { testEntryPointConfig } from '../entrypoints/tls-testing.ts';
import { InstanceTraffic } from '../telemetry/instance-traffic.ts';
import { tcpErrorsTotal } from '../telemetry/tcp-metrics.ts';
import { singleInstanceBalancer } from './proxy-testing.ts';
import { tcpLogText } from '../middleware/access-log/access-log-line.ts';
import { forwardConnection, type TcpConnectionRecord, type TcpForwardPolicy } from './tcp-forward.ts';

const log = pino({ level: 'silent' });

/**
 * The stalled instance's program: listens with a backlog of 1, tells its port, then stops itself
 * (SIGSTOP) until the test resumes it; it answers each connection, at the connection's FIN, with
 * `got <n> bytes, sha256 <hex>` of what it received (`receipt`) and its own FIN.
 */
const STALLED_INSTANCE = `
const server = require('node:net').createServer({ allowHalfOpen: true }, (socket) => {
  let bytes = 0;
  const hash = require('node:crypto').createHash('sha256');
  socket.on('error', () => undefined);
  socket.on('data', (chunk) => ((bytes += chunk.length), hash.update(chunk)));
  socket.on('end', () => socket.end('got ' + bytes + ' bytes, sha256 ' + hash.digest('hex')));
});
server.listen(0, '127.0.0.1', 1, () => {
  process.stdout.write(server.address().port + '\\n');
  process.kill(process.pid, 'SIGSTOP');
});
`;

/** What the stalled instance answers to a connection that brought exactly `received`, in order, then its FIN. */
function receipt(received: Buffer): string {
  return `got ${received.length} bytes, sha256 ${createHash('sha256').update(received).digest('hex')}`;
}

/**
 * The version 2 PROXY header of a connection from 127.0.0.1:`clientPort` to 127.0.0.1:`gatewayPort`,
 * spelled out byte by byte from HAProxy's proxy-protocol.txt (section 2.2), not by the code under test.
 */
function proxyV2Header(clientPort: number, gatewayPort: number): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(clientPort, 0);
  ports.writeUInt16BE(gatewayPort, 2);
  // Signature; version 2, PROXY; TCP over IPv4; 12 bytes of addresses and ports; source, destination.
  return Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x11, 0x00, 0x0c, 127, 0, 0, 1, 127, 0, 0, 1]), ports]);
}

/** The process's soft limit of open files, from /proc/self/limits. */
function openFilesLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((candidate) => candidate.startsWith('Max open files'));
  return Number(line?.split(/\s+/)[3]);
}

/**
 * `picker`, whose pick leaves the process out of file descriptors (it opens /dev/null until EMFILE)
 * until that pick reports its outcome: the connect the forwarder makes right after fails with
 * EMFILE, the gateway's own failure, and the descriptors are given back at once.
 */
function exhaustingPicker(picker: Picker): Picker {
  return {
    peek: (context) => picker.peek(context),
    pick: (context) => {
      const pick = picker.pick(context);
      if (pick.kind === 'none') return pick;
      const held: number[] = [];
      const release = () => held.splice(0).forEach((descriptor) => closeSync(descriptor));
      try {
        for (;;) held.push(openSync('/dev/null', 'r'));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EMFILE') release();
      }
      return { ...pick, done: (outcome) => (release(), pick.done(outcome)) };
    },
  };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Whether the process `pid` is stopped (state T in /proc/<pid>/stat). */
function isStopped(pid: number): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
}

/**
 * An instance whose connect stays out until the test says: a stopped process listening with a
 * backlog of 1, whose accept queue two connections fill (Linux queues backlog + 1); the kernel then
 * drops every further SYN, so a connect to it neither opens nor fails before the connect timeout.
 * `resume` lets it accept again (the connect opens at the SYN's next retransmission, 1 to 3 s later).
 * Killed after the test.
 */
async function stalledInstance() {
  const child: ChildProcess = spawn(process.execPath, ['-e', STALLED_INSTANCE], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once('error', reject);
  });
  await waitFor(() => isStopped(child.pid!), { message: 'the stalled instance stopped' });
  const fillers: Socket[] = [];
  for (let filled = 0; filled < 2; filled += 1) {
    const filler = connect(port, '127.0.0.1').on('error', () => undefined);
    fillers.push(filler);
    await new Promise((resolve) => filler.once('connect', resolve));
  }
  cleanups.push(() => {
    for (const filler of fillers) filler.destroy();
    child.kill('SIGKILL');
  });
  return { port, resume: () => void child.kill('SIGCONT') };
}

/**
 * A tcp entry point forwarding service `svc`, whose one instance listens on `port`, through a real
 * least-connections balancer with outlier detection ejecting at one failure
 * (`singleInstanceBalancer`, its picker wrapped by `wrap`) and the real per-instance counters
 * (InstanceTraffic: the admin API's and the flow statistics' `requests` and `errors`); `reports`
 * keeps what each connect attempt told its pick, `records` what became of each connection (for its
 * access log line), `ended` tells whether the gateway read the client's FIN, `readAhead` how many
 * bytes of the client its socket holds unread.
 */
async function tcpGatewayFor(
  port: number,
  connectTimeoutMs: number,
  { wrap = (picker) => picker, proxyProtocol = false }: { wrap?: (picker: Picker) => Picker; proxyProtocol?: ProxyProtocolVersion | false } = {},
) {
  const balancer = singleInstanceBalancer('tcp', port, 'least-connections');
  cleanups.push(balancer.close);
  const picker = wrap(balancer.picker);
  const traffic = new InstanceTraffic();
  const policy: TcpForwardPolicy = { service: 'svc', attempts: 1, connectTimeoutMs, idleTimeoutMs: 0, proxyProtocol };
  let ended = false;
  let accepted: Socket | undefined;
  const records: TcpConnectionRecord[] = [];
  const entryPoint: EntryPoint = await startTcpEntryPoint(
    testEntryPointConfig('tcp', undefined, { service: 'svc', sni: new Map(), proxyProtocol: undefined, idleTimeoutMs: 0 }),
    (socket) => {
      accepted = socket;
      socket.once('end', () => (ended = true));
      return forwardConnection(socket, policy, { pickerFor: () => picker, observer: traffic, log }).then((record) => records.push(record));
    },
    5_000,
    log,
  );
  cleanups.push(() => entryPoint.drain(0));
  return {
    entryPoint,
    reports: balancer.reports,
    records,
    /** The instance's `requests` and `errors`. */
    counts: () => traffic.counts('svc', `127.0.0.1:${port}`),
    ejected: balancer.ejected,
    ended: () => ended,
    readAhead: () => accepted?.readableLength ?? 0,
    /** A client of the entry point, connected and handed to the forwarder (which picks at once). */
    client: async () => {
      const socket = connect(entryPoint.port, '127.0.0.1').on('error', () => undefined);
      await new Promise((resolve) => socket.once('connect', resolve));
      await waitFor(() => entryPoint.inFlight === 1, { message: 'the connection reached the forwarder' });
      return socket;
    },
  };
}

/** `switchboard_tcp_errors_total` of the tests' service for `errorClass`. */
async function tcpErrors(errorClass: string): Promise<number> {
  const { values } = await tcpErrorsTotal.get();
  return values.find((sample) => sample.labels.service === 'svc' && sample.labels.class === errorClass)?.value ?? 0;
}

/** What a pick released unused reports: no latency sample, no failure. */
const UNUSED = { ok: false, latencyMs: 0, errorClass: 'cancelled' };

describe('a tcp connection whose connect to the instance fails for a reason not the instance\'s counts against no instance (unsent, as over HTTP)', () => {
  it('a client that resets while the connect is still out: the pick is released unused at once, the instance takes no attempt and stays in', async () => {
    const instance = await stalledInstance();
    // A connect timeout far beyond the test's waits: only the client's reset can end the attempt.
    const gateway = await tcpGatewayFor(instance.port, 60_000);
    const client = await gateway.client();
    client.resetAndDestroy();
    await waitFor(() => gateway.reports.length === 1, { timeoutMs: 5_000, message: 'the pick reported' });
    expect(gateway.reports).toEqual([UNUSED]);
    await waitFor(() => gateway.entryPoint.inFlight === 0, { message: 'the forward ended' });
    expect(gateway.counts()).toEqual({ requests: 0, errors: 0 });
    expect(gateway.ejected()).toBe(false);
  });

  it('a client the entry point cuts at its drain deadline while the connect is still out: the same, logged as the drain\'s cut (503 drain-timeout), not as a client that left (499)', async () => {
    const instance = await stalledInstance();
    const gateway = await tcpGatewayFor(instance.port, 60_000);
    const drainCutsBefore = await tcpErrors('drain-timeout');
    await gateway.client();
    await gateway.entryPoint.drain(0);
    await waitFor(() => gateway.reports.length === 1, { message: 'the pick reported' });
    expect(gateway.reports).toEqual([UNUSED]);
    expect(gateway.entryPoint.inFlight).toBe(0);
    expect(gateway.counts()).toEqual({ requests: 0, errors: 0 });
    expect(gateway.ejected()).toBe(false);
    expect(gateway.records).toMatchObject([{ connected: false, errorClass: 'drain-timeout' }]);
    expect(JSON.parse(tcpLogText(gateway.records[0]!, 'tcp', '127.0.0.1', undefined))).toMatchObject({ status: 503, errorClass: 'drain-timeout' });
    // The metric counts what the line names.
    expect(await tcpErrors('drain-timeout')).toBe(drainCutsBefore + 1);
  });

  // Filling the descriptor table of a process allowed far more would take too long and too much memory.
  it.skipIf(openFilesLimit() > 65_536)('a connect the gateway cannot make, out of file descriptors (EMFILE): internal, and no attempt of the instance\'s', async () => {
    const gateway = await tcpGatewayFor(await freePort(), 60_000, { wrap: exhaustingPicker });
    await gateway.client();
    await waitFor(() => gateway.reports.length === 1, { message: 'the pick reported' });
    expect(gateway.reports).toMatchObject([{ ok: false, errorClass: 'internal' }]);
    await waitFor(() => gateway.entryPoint.inFlight === 0, { message: 'the forward ended' });
    expect(gateway.counts()).toEqual({ requests: 0, errors: 0 });
    expect(gateway.ejected()).toBe(false);
  });

  it.each([
    ['a connect the instance leaves unanswered past the connect timeout', 'connect-timeout', async () => (await stalledInstance()).port],
    ['a connect the instance refuses', 'connect-refused', freePort],
  ] as const)('%s still counts against it (%s): one failed attempt, and it is ejected', async (_name, errorClass, instancePort) => {
    const port = await instancePort();
    const gateway = await tcpGatewayFor(port, 300);
    await gateway.client();
    await waitFor(() => gateway.reports.length === 1, { message: 'the pick reported' });
    await waitFor(() => gateway.entryPoint.inFlight === 0, { message: 'the forward ended' });
    expect(gateway.reports).toMatchObject([{ ok: false, errorClass }]);
    expect(gateway.counts()).toEqual({ requests: 1, errors: 1 });
    expect(gateway.ejected()).toBe(true);
  });

  it("passes on a client's FIN read while the connect was out (no data before it) once the connection opens", async () => {
    const instance = await stalledInstance();
    const gateway = await tcpGatewayFor(instance.port, 60_000);
    const client = await gateway.client();
    const answer = new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (chunk: Buffer) => (text += chunk.toString()));
      client.once('end', () => resolve(text));
    });
    client.end();
    await waitFor(() => gateway.ended(), { message: "the gateway read the client's FIN" });
    instance.resume();
    expect(await answer).toBe(receipt(Buffer.alloc(0)));
    await waitFor(() => gateway.reports.length === 1, { message: 'the pick reported' });
    expect(gateway.reports).toMatchObject([{ ok: true }]);
    expect(gateway.counts()).toEqual({ requests: 1, errors: 0 });
  });

  it.each([
    ['without a PROXY header', false, () => Buffer.alloc(0)],
    ['after the PROXY header (version 1)', 1, (clientPort: number, gatewayPort: number) => Buffer.from(`PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${gatewayPort}\r\n`, 'latin1')],
    ['after the PROXY header (version 2)', 2, proxyV2Header],
  ] as const)("forwards 1 MiB and the FIN a client sent while the connect was out, %s: exactly those bytes in order, then the FIN", async (_name, proxyProtocol, header) => {
    const instance = await stalledInstance();
    const gateway = await tcpGatewayFor(instance.port, 60_000, { proxyProtocol });
    const client = await gateway.client();
    const expectedHeader = header(client.localPort!, gateway.entryPoint.port);
    const answer = new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (chunk: Buffer) => (text += chunk.toString()));
      client.once('end', () => resolve(text));
    });
    // Each 4-byte word holds its own index (big-endian), so a chunk lost, repeated or out of order changes the hash.
    const sent = Buffer.alloc(1_048_576);
    for (let offset = 0; offset < sent.length; offset += 4) sent.writeUInt32BE(offset / 4, offset);
    client.write(sent);
    client.end();
    // The gateway reads ahead while connecting, within its bound (a socket's high-water mark, 16 KiB
    // on Node 20 and 64 KiB on Node 22 and later, crossed by one read of at most 64 KiB); the rest waits.
    const highWaterMark = new Socket().readableHighWaterMark;
    await waitFor(() => gateway.readAhead() >= highWaterMark, { message: 'the gateway read the client ahead' });
    expect(gateway.readAhead()).toBeLessThanOrEqual(highWaterMark - 1 + 65_536);
    instance.resume();
    expect(await answer).toBe(receipt(Buffer.concat([expectedHeader, sent])));
    await waitFor(() => gateway.reports.length === 1, { message: 'the pick reported' });
    expect(gateway.reports).toMatchObject([{ ok: true }]);
    expect(gateway.counts()).toEqual({ requests: 1, errors: 0 });
  });
});

describe('a tcp connection the entry point cuts at its drain deadline once joined', () => {
  it('is logged with the status of a connection that reached its instance (200) and drain-timeout, the cut that ended it', async () => {
    const echo = createServer((socket) => socket.on('error', () => undefined).pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => echo.close(resolve)));
    const gateway = await tcpGatewayFor((echo.address() as AddressInfo).port, 5_000);
    const client = await gateway.client();
    const echoed = new Promise((resolve) => client.once('data', resolve));
    client.write('ping');
    await echoed;
    const drainCutsBefore = await tcpErrors('drain-timeout');
    await gateway.entryPoint.drain(0);
    await waitFor(() => gateway.records.length === 1, { message: 'the connection recorded' });
    expect(gateway.records).toMatchObject([{ connected: true, errorClass: 'drain-timeout', bytes: 4, bytesReceived: 4 }]);
    expect(JSON.parse(tcpLogText(gateway.records[0]!, 'tcp', '127.0.0.1', undefined))).toMatchObject({ status: 200, errorClass: 'drain-timeout' });
    expect(await tcpErrors('drain-timeout')).toBe(drainCutsBefore + 1);
  });
});
