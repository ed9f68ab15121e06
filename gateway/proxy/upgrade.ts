import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { sendGatewayError } from './error-response.ts';
import { upstreamRequestHeaders } from './hop-by-hop.ts';
import type { ProxyDependencies } from './proxy.ts';
import { classifyUpstreamError, healthClassOf } from './upstream-error.ts';

/**
 * The centre of the onion for `Upgrade` requests (WebSocket): picks an instance, performs the
 * handshake through undici, answers the client's handshake with the upstream's 101, then pipes
 * bytes both ways with back-pressure and half-close. `context.response` must be a ServerResponse
 * assigned to the client socket, so that failures answer like any other request.
 */
export function createUpgradeProxy(dependencies: ProxyDependencies): (context: GatewayContext) => Promise<void> {
  return async function upgradeProxy(context) {
    const picker = dependencies.pickerFor(context.service);
    const observer = dependencies.observer;
    if (!picker) {
      observer?.unavailable(context.service, 'no-instances');
      return sendGatewayError(context, 'no-instances');
    }
    const pick = picker.pick({ clientIp: context.clientIp, url: context.upstream.path, headers: context.request.headers });
    if (pick.kind === 'none') {
      observer?.unavailable(context.service, pick.reason);
      return sendGatewayError(context, pick.reason);
    }
    context.outcome.attempts = 1;
    context.outcome.upstream = pick.address;
    const policy = dependencies.policyFor(context);
    const result = await handshake(context, dependencies.pools.get(pick.instance, pick.address, policy.connectTimeoutMs), pick, policy.headersTimeoutMs);
    if ('error' in result) {
      context.log.debug({ err: result.error.message, upstream: pick.address }, 'upgrade failed');
      const errorClass = classifyUpstreamError(result.error, false);
      observer?.attempt(context.service, pick.address, errorClass);
      return sendGatewayError(context, errorClass);
    }
    observer?.attempt(context.service, pick.address, undefined);
    splice(context, result.status, result.headers, result.socket);
  };
}

function handshake(
  context: GatewayContext,
  dispatcher: Dispatcher,
  pick: PickedEndpoint,
  headersTimeoutMs: number,
): Promise<{ status: number; headers: IncomingHttpHeaders; socket: Duplex } | { error: Error }> {
  const started = performance.now();
  // undici writes `Connection: upgrade` and `Upgrade` itself from the `upgrade` option.
  const headers = upstreamRequestHeaders(context.upstream.headers) as Record<string, string | string[]>;
  if (context.upstream.host !== undefined) headers.host = context.upstream.host;
  if (context.upstream.useInstanceHost) headers.host = pick.address;
  const protocol = String(context.request.headers.upgrade ?? 'websocket');
  return new Promise((resolve) => {
    let done = false;
    const finish = (value: { status: number; headers: IncomingHttpHeaders; socket: Duplex } | { error: Error }) => {
      if (done) return;
      done = true;
      const latencyMs = performance.now() - started;
      pick.done('error' in value ? { ok: false, latencyMs, errorClass: healthClassOf(classifyUpstreamError(value.error, false)) } : { ok: true, latencyMs });
      resolve(value);
    };
    try {
      dispatcher.dispatch(
        { path: context.upstream.path, method: 'GET', headers, upgrade: protocol, headersTimeout: headersTimeoutMs, body: null },
        {
          // undici recognises the controller-style handler API by this method; without it the handler is refused.
          onRequestStart() {},
          onRequestUpgrade(_controller, status, upstreamHeaders, socket) {
            finish({ status, headers: upstreamHeaders, socket });
          },
          onResponseStart(controller, status) {
            controller.abort(new Error(`upstream answered the upgrade with ${status}`));
          },
          onResponseError(_controller, error) {
            finish({ error });
          },
        },
      );
    } catch (error) {
      finish({ error: error as Error });
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
  for (const hook of context.responseHeaderHooks) hook(status, outgoing);
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
