import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { applyHeaderHooks } from '../proxy/answer-headers.ts';
import { upstreamRequestHeaders } from '../proxy/hop-by-hop.ts';
import { spliceSockets } from '../proxy/socket-splice.ts';
import type { CounterCell } from '../telemetry/index.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { Http1Attempt } from './transport-http1-attempt.ts';

/**
 * `Transport.upgrade` over an undici dispatcher (HTTP/1.1, cleartext or TLS as the dispatcher
 * connects). The handshake is an HTTP/1.1 attempt like any other (`Http1Attempt`: its headers
 * timeout, and its abort when the client leaves, which is `cancelled`, never the upstream's fault),
 * except for its end: on a 101 the client gets the upstream's 101 and the two sockets are joined
 * (`spliceSockets`); any other answer (a 401, 403, 426, 503…) is relayed to the client as the
 * upstream sent it, after which the client connection closes (its response does not keep alive).
 * Such an answer counts against the upstream, and for the circuit breaker, as its status says:
 * only a 5xx does. A 101 reports the attempt at once (a success, its latency the handshake's), but
 * the pick stays held (`PickedEndpoint.hold`) until both sockets of the tunnel are closed, however it
 * ends, so that the instance's in-flight count includes its open tunnels, as Envoy counts an upgraded
 * stream and nginx's least_conn a connection. Never rejects.
 */
export function dispatchUpgrade(context: GatewayContext, dispatcher: Dispatcher, pick: PickedEndpoint, timeouts: AttemptTimeouts, tunnels?: OpenTunnels): Promise<AttemptResult> {
  // undici writes `Connection: upgrade` and `Upgrade` itself from the `upgrade` option.
  const headers = upstreamRequestHeaders(context.upstream.headers) as Record<string, string | string[]>;
  if (context.upstream.host !== undefined) headers.host = context.upstream.host;
  if (context.upstream.useInstanceHost) headers.host = pick.address;
  const protocol = String(context.request.headers.upgrade ?? 'websocket');
  return new Promise((resolve) => {
    const client = (context.response as ServerResponse).socket;
    const stopWatching = client ? watchClientEnd(client) : noop;
    const handshake = new UpgradeAttempt(context, pick, stopWatching, timeouts, (result) => {
      stopWatching();
      resolve(result);
    }, tunnels);
    try {
      // One `servername` per pool, as in `dispatchAttemptThen`.
      dispatcher.dispatch({ path: context.upstream.path, method: 'GET', headers, upgrade: protocol, body: null, servername: pick.address } as Dispatcher.DispatchOptions, handshake);
    } catch (error) {
      handshake.fail(error as Error);
    }
  });
}

/** A handshake: an `Http1Attempt` that, on a 101, splices the client to the upstream. */
class UpgradeAttempt extends Http1Attempt {
  constructor(
    context: GatewayContext,
    pick: PickedEndpoint,
    private readonly stopWatching: () => void,
    timeouts: AttemptTimeouts,
    attemptEnded: (result: AttemptResult) => void,
    private readonly tunnels: OpenTunnels | undefined,
  ) {
    super(context, pick, { attemptEnded }, timeouts, null);
  }

  onRequestUpgrade(_controller: Dispatcher.DispatchController, status: number, upstreamHeaders: IncomingHttpHeaders, socket: Duplex): void {
    this.status = status;
    this.headCame();
    this.stopWatching();
    // The tunnel keeps the instance's in-flight slot until it closes, so that least-connections,
    // p2c-ewma and bounded-load hashing count it; its outcome and latency (the handshake's) are reported now.
    const held = this.pick.hold();
    const recorded = this.tunnels?.opened();
    const release = recorded === undefined ? held : () => {
      held();
      // After the response's 'close' below it: the tunnel's access log line and metrics are out.
      queueMicrotask(recorded);
    };
    try {
      splice(this.context, status, upstreamHeaders, socket as Socket, this.timeouts.websocketIdleTimeoutMs ?? 0, release);
    } catch (error) {
      // A response header hook threw: nothing joins the sockets, and the attempt must end now, not at its headers deadline.
      release();
      socket.destroy();
      (this.context.response as ServerResponse).socket?.destroy();
      return this.fail(error as Error);
    }
    this.finish({ ok: true });
  }
}

function noop(): void {}

/**
 * The tunnels open through one transport, counted until each has closed and recorded its end (its
 * access log line, its metrics): the shutdown cuts them at the drain deadline and then closes the
 * access log, which would drop the line of a tunnel whose upstream socket closes a tick later.
 */
export class OpenTunnels {
  private count = 0;
  private readonly waiters: Array<() => void> = [];

  /** Whether a tunnel is open or has not yet recorded its end. */
  get open(): boolean {
    return this.count > 0;
  }

  /** Counts a tunnel open; the returned function, called once, counts it recorded. */
  opened(): () => void {
    this.count += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.count -= 1;
      if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
    };
  }

  /** Resolves once no tunnel is open, or after `deadlineMs`, whichever comes first. */
  async allRecorded(deadlineMs: number): Promise<void> {
    if (this.count === 0) return;
    let bound: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      bound = setTimeout(resolve, deadlineMs);
    });
    clearTimeout(bound);
  }
}

/** Early bytes (sent before the 101) held for the splice; past this, the socket's back-pressure holds the rest. */
const MAX_EARLY_BYTES = 64 * 1024;

/**
 * Until the returned function is called, closes `client` when it sends its FIN, so that the
 * handshake's attempt hears of it through the response's 'close' (a reset closes the socket by
 * itself). After the upgrade request nobody reads the socket, so without this a client that leaves
 * during the handshake goes unnoticed until the upstream answers. A stream ends only once its
 * buffer is read, so the bytes the client sends early (its first frames) are read too, up to
 * `MAX_EARLY_BYTES`, and put back in order for the splice when watching stops.
 */
function watchClientEnd(client: Socket): () => void {
  const early: Buffer[] = [];
  let earlyBytes = 0;
  const onReadable = () => {
    for (let chunk: Buffer | null; earlyBytes < MAX_EARLY_BYTES && (chunk = client.read() as Buffer | null) !== null; ) {
      early.push(chunk);
      earlyBytes += chunk.length;
    }
  };
  const onEnd = () => client.destroy();
  client.on('readable', onReadable);
  client.once('end', onEnd);
  return () => {
    client.off('readable', onReadable);
    client.off('end', onEnd);
    if (early.length > 0 && !client.destroyed) client.unshift(Buffer.concat(early.splice(0)));
  };
}

/**
 * Sends the upstream's 101 to the client and joins the two sockets, closing both after
 * `idleTimeoutMs` without a byte (0: never); `closed` is called once both are closed (at once when
 * the client is already gone), however the tunnel ends.
 */
function splice(context: GatewayContext, status: number, upstreamHeaders: IncomingHttpHeaders, upstream: Socket, idleTimeoutMs: number, closed: () => void): void {
  // An upgrade's response is always the HTTP/1.1 ServerResponse that runUpgrade assigned to the client socket.
  const response = context.response as ServerResponse;
  const client = response.socket;
  if (!client || client.destroyed) {
    upstream.destroy();
    closed();
    return;
  }
  // Before the client socket leaves the response: a hook that throws leaves it there for the caller to close.
  const outgoing: OutgoingHttpHeaders = { ...upstreamHeaders };
  applyHeaderHooks(context, status, outgoing);
  // The protocol the tunnel speaks from here, as `connection` (`applyHeaderHooks`): an edit that
  // removes `upgrade` from the route's answers (only `set` refuses it) had the client refuse the 101.
  if (upstreamHeaders.upgrade !== undefined) outgoing.upgrade = upstreamHeaders.upgrade;
  response.detachSocket(client);
  let head = `HTTP/1.1 ${status} Switching Protocols\r\n`;
  for (const [name, value] of Object.entries(outgoing)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) head += `${name}: ${item}\r\n`;
  }
  client.write(`${head}\r\n`);
  context.outcome.status = status;
  // The response ends with its tunnel: its socket left it, so Node never closes it. The access log
  // waits for that 'close' (as nginx and Envoy, it writes a WebSocket's line once it has closed,
  // with the tunnel's life and the bytes the upstream sent through it).
  const sent: CounterCell = { value: 0 };
  const tunnelClosed = () => {
    context.outcome.bytesOut += sent.value;
    closed();
    response.emit('close');
  };
  spliceSockets(client, upstream, idleTimeoutMs, { closed: tunnelClosed, bytesOut: sent });
}
