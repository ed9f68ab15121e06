import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { upstreamRequestHeaders, withoutHopByHop } from '../proxy/hop-by-hop.ts';
import { classifyUpstreamError } from '../proxy/upstream-error.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { ClientGoneError, reportAttempt, sendTransformed } from './transport-outcome.ts';

/**
 * `Transport.attempt` over an undici dispatcher (HTTP/1.1, in cleartext or TLS): `dispatch`, the
 * fastest undici API, streaming the response to the client with back-pressure both ways. Reports
 * the outcome to the pick exactly once. Never rejects.
 */
export function dispatchAttempt(context: GatewayContext, dispatcher: Dispatcher, pick: PickedEndpoint, timeouts: AttemptTimeouts, body: GatewayContext['request'] | null): Promise<AttemptResult> {
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
      reportAttempt(pick, started, status, result);
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
        void sendTransformed(context, status, outgoing!, buffered).then(finish);
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
