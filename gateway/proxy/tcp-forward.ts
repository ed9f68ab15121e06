import { connect, type Socket } from 'node:net';
import { UNUSED_PICK, type PickedEndpoint, type Picker } from '../../src/balance/picker.ts';
import { isGatewayResourceCode, isNotUpstreamFault } from '../../src/health/upstream-outcome.ts';
import type { Logger } from '../../src/logger.ts';
import { plainIp, type ProxyProtocolVersion } from '../config/index.ts';
import { cutByDrain } from '../entrypoints/drain-cut.ts';
import { tcpServiceCells, type TcpServiceCells } from '../telemetry/index.ts';
import type { AttemptObserver } from './proxy.ts';
import { proxyProtocolHeader } from './proxy-protocol.ts';
import { distinctPick, unlessTimedOut, type RetryPickContext } from './proxy-retry-pick.ts';
import { spliceSockets } from './socket-splice.ts';

/** How one client connection is forwarded: where to, how often to try, and for how long. */
export interface TcpForwardPolicy {
  readonly service: string;
  /** Attempts in all (the first included) when connecting fails; 1 means no retry. */
  readonly attempts: number;
  /** Opening a connection to an instance; 0 waits for the OS. */
  readonly connectTimeoutMs: number;
  /** A connection with no byte either way for this long is closed; 0 never. */
  readonly idleTimeoutMs: number;
  readonly proxyProtocol: ProxyProtocolVersion | false;
}

/** What the forwarder reads of the rest of the gateway. */
export interface TcpForwardDependencies {
  /** The picker of `service`; undefined when no such service exists. */
  pickerFor(service: string): Picker | undefined;
  /** Told of every upstream connect attempt and of connections no instance could take. */
  readonly observer?: AttemptObserver;
  readonly log: Logger;
}

/** What became of one client connection, for its access log line; final once `forwardConnection` resolves. */
export interface TcpConnectionRecord {
  readonly service: string;
  /** `performance.now()` when the connection was taken. */
  readonly startedAt: number;
  /** The last instance tried, if any. */
  upstream: string | undefined;
  /** Upstream connects tried (0 when no instance could take it). */
  attempts: number;
  /** An upstream connect opened and the sockets were joined. */
  connected: boolean;
  /**
   * What ended or failed it, if anything did: the last connect's failure (`connect-refused`,
   * `connect-timeout`, `internal`), `no-instances`/`no-healthy-instances`, `cancelled` (the client
   * left while connecting), or, once joined, `reset-before-headers`/`reset-after-headers` (the
   * upstream's socket failed before/after it sent a byte) and `idle-timeout`; `drain-timeout` when
   * the entry point cut it at its drain deadline (connecting, or joined with nothing failed before).
   */
  errorClass: string | undefined;
  /** Bytes the upstream sent towards the client. */
  bytes: number;
  /** Bytes of the client's forwarded to the upstream (the PROXY header not counted). */
  bytesReceived: number;
}

/**
 * Forwards `client` (paused, nothing read yet) to an instance of `policy.service`: picks one (the
 * client IP is the consistent-hash key), connects within the connect timeout, and on a failed
 * connect, before any byte was forwarded, tries another instance within `policy.attempts`; each
 * connect the instance refused or left unanswered counts against it, while a client gone meanwhile
 * (it reset, or the entry point cut it) and a connect the gateway could not make (out of file
 * descriptors) count against none: as over HTTP, such an attempt is unsent, no attempt of the
 * instance's. While connecting, the client is read ahead into its socket's buffer (forwarded
 * first once connected), so that its reset is noticed: a socket that reads nothing never learns of
 * it. Reading stops once the buffer holds the high-water mark (16 KiB on Node 20, 64 KiB on Node 22
 * and later), but the read that crosses it takes up to 64 KiB (the buffer Node gives each libuv
 * read), so up to that mark - 1 + 64 KiB are held (measured on Node 20: 16,383 bytes read, then
 * 65,536 at once); the rest waits in the kernel (back-pressure). A client that has sent the
 * high-water mark or more and then resets is therefore not noticed
 * until the connect ends (it opens: the bytes held are forwarded, then the splice sees the reset;
 * it fails or times out: that counts against the instance), since libuv polls a socket only while
 * it reads or writes, and Node can neither peek at one nor ask for its pending error; reading on
 * would mean buffering without bound. With no instance (left) the client connection is closed at
 * once. Once connected it writes the PROXY header if asked, then joins the sockets
 * (`spliceSockets`): back-pressure and half-close (either side's FIN is passed on while the other
 * direction keeps flowing), until both sides are done, either side fails (the other is then
 * destroyed) or the idle timeout passes. The connect is reported to the pick when it opens, and
 * the pick is held, and so counted by least-connections, for the connection's whole life.
 * Resolves, with what became of the connection, when every socket it made or took is closed.
 */
export function forwardConnection(client: Socket, policy: TcpForwardPolicy, dependencies: TcpForwardDependencies): Promise<TcpConnectionRecord> {
  const { service } = policy;
  const cells = tcpServiceCells(service);
  cells.connections.value += 1;
  const record: TcpConnectionRecord = { service, startedAt: performance.now(), upstream: undefined, attempts: 0, connected: false, errorClass: undefined, bytes: 0, bytesReceived: 0 };
  let finish!: () => void;
  // Read once every 'close' listener has run (a connect the cut ended records `cancelled` in one):
  // the drain deadline's cut is the gateway's doing, not a client that left nor a connection that ended well, as over HTTP.
  const closed = new Promise<void>((resolve) => (finish = resolve)).then(() => {
    if (cutByDrain(client) && (record.errorClass === undefined || record.errorClass === 'cancelled')) {
      record.errorClass = 'drain-timeout';
      // Counted as the access log names it, as an HTTP request the drain cut counts among the 5xx.
      cells.error('drain-timeout');
    }
    return record;
  });
  let piping = false;
  client.once('close', () => piping || finish());
  // Errors surface as 'close' with hadError; without a listener a client reset would crash the process.
  client.on('error', () => undefined);
  const picker = dependencies.pickerFor(service);
  if (!picker) {
    record.errorClass = 'no-instances';
    unavailable(client, cells, dependencies, service, 'no-instances');
    return closed;
  }
  // Reading ahead is what makes a client's reset surface as 'close' while the connect is out (`onClientGone`).
  client.read(0);
  // The consistent-hash key: the client address as `plainIp` writes it, as the PROXY header does.
  const clientIp = client.remoteAddress === undefined ? undefined : plainIp(client.remoteAddress);
  const tried: string[] = [];
  // Instances whose connect timed out: never tried again for this connection (`unlessTimedOut`).
  let timedOut: string[] | undefined;
  let lastError: string | undefined;

  const attempt = (number: number) => {
    if (client.destroyed) return;
    // A retry picks from the balancer in force (a reload may have replaced or closed the first one), as HTTP retries do.
    const current = number === 1 ? picker : (dependencies.pickerFor(service) ?? picker);
    const context = saltedContext(clientIp, tried.length);
    const pick = unlessTimedOut(current, context, distinctPick(current, context, current.pick(context(0)), tried), timedOut);
    if (pick.kind === 'none') {
      if (lastError !== undefined) return void client.destroy();
      record.errorClass = pick.reason;
      return unavailable(client, cells, dependencies, service, pick.reason);
    }
    tried.push(pick.address);
    record.upstream = pick.address;
    record.attempts = number;
    const startedAt = performance.now();
    const upstream = connect({ host: pick.instance.host, port: pick.instance.port, allowHalfOpen: true, noDelay: true });
    upstream.on('error', () => undefined);
    let settled = false;
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      client.off('close', onClientGone);
      upstream.off('error', onConnectError);
    };
    const fail = (errorClass: 'connect-refused' | 'connect-timeout' | 'internal', error?: Error) => {
      settle();
      upstream.destroy();
      pick.done({ ok: false, latencyMs: performance.now() - startedAt, errorClass });
      // Unsent (the gateway's own failure): no attempt of the instance's, as over HTTP; the service still counts it.
      if (!isNotUpstreamFault(errorClass)) dependencies.observer?.attempt(service, pick.address, errorClass);
      cells.error(errorClass);
      lastError = record.errorClass = errorClass;
      if (errorClass === 'connect-timeout') (timedOut ??= []).push(pick.address);
      dependencies.log.debug({ service, upstream: pick.address, errorClass, err: error?.message, attempt: number }, 'tcp connect failed');
      if (number < policy.attempts) attempt(number + 1);
      else client.destroy();
    };
    // The client went away while we were connecting (it reset, or the entry point cut it on drain): nothing says anything about the upstream.
    const onClientGone = () => {
      settle();
      upstream.destroy();
      pick.done(UNUSED_PICK);
      record.errorClass = 'cancelled';
    };
    // The gateway out of file descriptors (EMFILE) never reached the instance: its own failure.
    const onConnectError = (error: NodeJS.ErrnoException) => fail(isGatewayResourceCode(error.code) ? 'internal' : 'connect-refused', error);
    const timer = policy.connectTimeoutMs > 0 ? setTimeout(() => fail('connect-timeout'), policy.connectTimeoutMs) : undefined;
    client.once('close', onClientGone);
    upstream.once('error', onConnectError);
    upstream.once('connect', () => {
      if (settled) return;
      settle();
      piping = true;
      record.connected = true;
      record.errorClass = undefined;
      dependencies.observer?.attempt(service, pick.address, undefined);
      pipeBoth(client, upstream, policy, cells, pick, performance.now() - startedAt, record, finish);
    });
  };
  attempt(1);
  return closed;
}

/**
 * The context of a connection's picks after `tries` attempts: the client IP is the consistent-hash
 * key, and every later pick, a retry's or a repeat's, hashes a different one (`<client ip>#<n>`, n
 * the attempts made plus the repeats of this search), which moves consistent-hash to another ring
 * position; `distinctPick` adds `tried` to the repeats.
 */
function saltedContext(clientIp: string | undefined, tries: number): RetryPickContext {
  return (again) => {
    if (clientIp === undefined) return {};
    const salt = tries + again;
    return { clientIp: salt === 0 ? clientIp : `${clientIp}#${salt}` };
  };
}

function unavailable(client: Socket, cells: TcpServiceCells, dependencies: TcpForwardDependencies, service: string, reason: 'no-instances' | 'no-healthy-instances'): void {
  dependencies.observer?.unavailable(service, reason);
  cells.error(reason);
  client.destroy();
}

/**
 * Joins `client` and `upstream` (`spliceSockets`) after the PROXY header, if asked, until both are
 * closed. Following Envoy's TCP proxy, only the connect counts for the instance's health: what
 * happens on an open connection is the application's. The connect's success is reported at once
 * (passive health, p2c-ewma's sample: the connect time), as a WebSocket's 101 is,
 * while the pick stays held (`PickedEndpoint.hold`) until both sockets are closed, so that
 * least-connections counts the open connection.
 */
function pipeBoth(client: Socket, upstream: Socket, policy: TcpForwardPolicy, cells: TcpServiceCells, pick: PickedEndpoint, connectMs: number, record: TcpConnectionRecord, finish: () => void): void {
  const release = pick.hold();
  pick.done({ ok: true, latencyMs: connectMs });
  cells.opened();
  let headerBytes = 0;
  if (policy.proxyProtocol) {
    const header = proxyProtocolHeader(policy.proxyProtocol, {
      sourceAddress: client.remoteAddress,
      sourcePort: client.remotePort,
      destinationAddress: client.localAddress,
      destinationPort: client.localPort,
    });
    headerBytes = header.length;
    upstream.write(header);
  }
  const failed = (errorClass: string) => {
    cells.error(errorClass);
    // The first is what ended it: an idle cut makes the sockets close with errors of their own.
    record.errorClass ??= errorClass;
  };
  spliceSockets(client, upstream, policy.idleTimeoutMs, {
    bytesIn: cells.bytesIn,
    bytesOut: cells.bytesOut,
    upstreamFailed: (spoke) => failed(spoke ? 'reset-after-headers' : 'reset-before-headers'),
    idled: () => failed('idle-timeout'),
    closed: () => {
      // The upstream socket is plain TCP on both entry point kinds: its counts are the payload's.
      record.bytes = upstream.bytesRead;
      record.bytesReceived = Math.max(0, upstream.bytesWritten - headerBytes);
      cells.closed();
      release();
      finish();
    },
  });
}
