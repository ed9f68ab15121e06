import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { upstreamRequestHeaders } from '../proxy/hop-by-hop.ts';
import { classifyUpstreamError } from '../proxy/upstream-error.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { reportAttempt } from './transport-outcome.ts';

/** An upstream that answered an upgrade request with another status than 101 (code `SB_UPGRADE_REFUSED`). */
export class UpgradeRefusedError extends Error {
  readonly code = 'SB_UPGRADE_REFUSED';
  constructor(readonly status: number) {
    super(`the upstream answered the upgrade with ${status}`);
  }
}

/**
 * `Transport.upgrade` over an undici dispatcher (HTTP/1.1, cleartext or TLS as the dispatcher
 * connects): performs the handshake, answers the client's handshake with the upstream's 101, then
 * pipes bytes both ways with back-pressure and half-close. A non-101 answer is `upgrade-refused`,
 * which counts against the upstream only when it is a 5xx. Never rejects.
 */
export function dispatchUpgrade(context: GatewayContext, dispatcher: Dispatcher, pick: PickedEndpoint, timeouts: AttemptTimeouts): Promise<AttemptResult> {
  const started = performance.now();
  // undici writes `Connection: upgrade` and `Upgrade` itself from the `upgrade` option.
  const headers = upstreamRequestHeaders(context.upstream.headers) as Record<string, string | string[]>;
  if (context.upstream.host !== undefined) headers.host = context.upstream.host;
  if (context.upstream.useInstanceHost) headers.host = pick.address;
  const protocol = String(context.request.headers.upgrade ?? 'websocket');
  return new Promise((resolve) => {
    let done = false;
    const finish = (result: AttemptResult, status: number) => {
      if (done) return;
      done = true;
      // A refused upgrade is an answer: only a 5xx one says something against the upstream.
      if (!result.ok && result.error instanceof UpgradeRefusedError) reportAttempt(pick, started, result.error.status, { ok: true });
      else reportAttempt(pick, started, status, result);
      resolve(result);
    };
    const fail = (error: Error) => finish({ ok: false, errorClass: classifyUpstreamError(error, false), responseStarted: false, error }, 0);
    try {
      dispatcher.dispatch(
        { path: context.upstream.path, method: 'GET', headers, upgrade: protocol, headersTimeout: timeouts.headersTimeoutMs, body: null },
        {
          // undici recognises the controller-style handler API by this method; without it the handler is refused.
          onRequestStart() {},
          onRequestUpgrade(_controller, status, upstreamHeaders, socket) {
            splice(context, status, upstreamHeaders, socket);
            finish({ ok: true }, status);
          },
          onResponseStart(controller, status) {
            const refused = new UpgradeRefusedError(status);
            finish({ ok: false, errorClass: classifyUpstreamError(refused, false), responseStarted: false, error: refused }, status);
            controller.abort(refused);
          },
          onResponseError(_controller, error) {
            fail(error);
          },
        },
      );
    } catch (error) {
      fail(error as Error);
    }
  });
}

/** Sends the upstream's 101 to the client and joins the two sockets. */
function splice(context: GatewayContext, status: number, upstreamHeaders: IncomingHttpHeaders, upstream: Duplex): void {
  // An upgrade's response is always the HTTP/1.1 ServerResponse that runUpgrade assigned to the client socket.
  const response = context.response as ServerResponse;
  const client = response.socket;
  if (!client || client.destroyed) {
    upstream.destroy();
    return;
  }
  response.detachSocket(client);
  const outgoing: OutgoingHttpHeaders = { ...upstreamHeaders };
  for (const hook of context.responseHeaderHooks) hook(status, outgoing, context);
  let head = `HTTP/1.1 ${status} Switching Protocols\r\n`;
  for (const [name, value] of Object.entries(outgoing)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) head += `${name}: ${item}\r\n`;
  }
  client.write(`${head}\r\n`);
  context.outcome.status = status;
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  // pipe() carries back-pressure and ends the other side's writable half on EOF: half-close.
  upstream.pipe(client);
  client.pipe(upstream);
}
