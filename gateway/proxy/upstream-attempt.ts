import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { transformBody } from '../middleware/response-transform/index.ts';
import { upstreamRequestHeaders, withoutHopByHop } from './hop-by-hop.ts';
import { classifyUpstreamError, healthClassOf, type GatewayErrorClass } from './upstream-error.ts';

/** Per-attempt timeouts (0 disables one). */
export interface AttemptTimeouts {
  /** From the request being sent to the response headers. */
  headersTimeoutMs: number;
  /** Longest silence between two response body chunks. */
  bodyTimeoutMs: number;
}

/** How one attempt ended: the response went to the client, or it failed before or while doing so. */
export type AttemptResult = { ok: true } | { ok: false; errorClass: GatewayErrorClass; responseStarted: boolean; error: Error };

/** Marks the abort the gateway causes when the client goes away, so it is classified as `cancelled`. */
class ClientGoneError extends Error {
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('the client closed the connection');
  }
}

/**
 * Sends `context.upstream` to the picked endpoint through `dispatcher` (undici `dispatch`, the
 * fastest undici API) and streams the response to the client with back-pressure both ways. Reports
 * the outcome to the pick exactly once. Never rejects.
 */
export function attemptUpstream(context: GatewayContext, dispatcher: Dispatcher, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: GatewayContext['request'] | null): Promise<AttemptResult> {
  const { response, upstream } = context;
  const started = performance.now();
  return new Promise<AttemptResult>((resolve) => {
    let responseStarted = false;
    let settled = false;
    let buffered: Buffer[] | undefined;
    let outgoing: OutgoingHttpHeaders | undefined;
    let status = 0;
    let controllerRef: Dispatcher.DispatchController | undefined;

    const onClientClose = () => {
      if (!response.writableFinished) controllerRef?.abort(new ClientGoneError());
    };
    response.once('close', onClientClose);

    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      response.off('close', onClientClose);
      const latencyMs = performance.now() - started;
      if (result.ok) pick.done(status >= 500 ? { ok: false, latencyMs, errorClass: 'http-5xx' } : { ok: true, latencyMs });
      else pick.done({ ok: false, latencyMs, errorClass: healthClassOf(result.errorClass) });
      resolve(result);
    };
    const fail = (error: Error) => finish({ ok: false, errorClass: classifyUpstreamError(error, responseStarted), responseStarted, error });

    const headers = upstreamRequestHeaders(upstream.headers) as Record<string, string | string[]>;
    if (upstream.host !== undefined) headers.host = upstream.host;
    if (upstream.useInstanceHost) headers.host = pick.address;

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller) {
        controllerRef = controller;
        if (response.destroyed) controller.abort(new ClientGoneError());
      },
      onResponseStart(controller, statusCode, upstreamHeaders: IncomingHttpHeaders) {
        responseStarted = true;
        status = statusCode;
        context.outcome.status = statusCode;
        outgoing = withoutHopByHop(upstreamHeaders);
        for (const hook of context.responseHeaderHooks) hook(statusCode, outgoing);
        if (context.responseBodyTransforms.length > 0) {
          buffered = [];
          return;
        }
        response.writeHead(statusCode, outgoing);
        if (response.destroyed) controller.abort(new ClientGoneError());
      },
      onResponseData(controller, chunk) {
        if (buffered) {
          buffered.push(chunk);
          return;
        }
        context.outcome.bytesOut += chunk.length;
        // Both client response kinds (HTTP/1.1 and HTTP/2) are writable streams with back-pressure.
        if (!(response as Writable).write(chunk)) {
          controller.pause();
          response.once('drain', () => controller.resume());
        }
      },
      onResponseEnd() {
        if (!buffered) {
          response.end();
          finish({ ok: true });
          return;
        }
        const whole = Buffer.concat(buffered);
        Promise.resolve(transformBody(whole, outgoing!, context.responseBodyTransforms)).then(
          (body) => {
            context.outcome.bytesOut += body.length;
            response.writeHead(status, outgoing);
            response.end(body);
            finish({ ok: true });
          },
          (error: Error) => finish({ ok: false, errorClass: 'internal', responseStarted: false, error }),
        );
      },
      onResponseError(_controller, error) {
        fail(error);
      },
    };

    try {
      dispatcher.dispatch(
        {
          path: upstream.path,
          method: upstream.method as Dispatcher.HttpMethod,
          headers,
          body,
          headersTimeout: timeouts.headersTimeoutMs,
          bodyTimeout: timeouts.bodyTimeoutMs,
          // A stale keep-alive socket is retried by the proxy, on another instance when there is one.
          reset: false,
        },
        handler,
      );
    } catch (error) {
      fail(error as Error);
    }
  });
}
