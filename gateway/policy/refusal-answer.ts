import type { GatewayContext } from '../context.ts';
import { applyHeaderHooks } from '../proxy/answer-headers.ts';
import { closingUnreadBody, sendErrorAnswer } from '../proxy/error-response.ts';
import { isGrpcRequest } from '../proxy/grpc-status.ts';
import { REFUSED_MAX_CONCURRENT, REFUSED_OPEN, type BreakerSlot, type RequestGuard } from './service-guard.ts';

/**
 * Answers a request its guard refused, at once: an open breaker's fallback (a static answer, or a
 * 503 `circuit-open` with the reason) or a 503 for a cap. A gRPC call gets a static fallback as the
 * gRPC status its status stands for (a 2xx as UNAVAILABLE), with its headers but not its body: the
 * body is no gRPC message, and an HTTP answer without `grpc-status` fails the call as UNKNOWN. Returns
 * the fallback service's name when the breaker's fallback is another service (the caller sends the
 * request there), else undefined.
 */
export function answerRefusal(context: GatewayContext, code: number, guard: RequestGuard): string | undefined {
  const slot = guard.slot;
  if (code === REFUSED_OPEN && slot) {
    const fallback = slot.settings.fallback;
    if (fallback.kind === 'service') return fallback.service;
    if (fallback.kind === 'static' && isGrpcRequest(context.request.headers)) {
      const { 'content-type': _type, 'content-length': _length, ...metadata } = fallback.headers;
      sendErrorAnswer(context, fallback.status >= 400 ? fallback.status : 503, 'circuit-open', openMessage(slot), metadata);
      return undefined;
    }
    if (fallback.kind === 'static') {
      context.outcome.status = fallback.status;
      context.outcome.errorClass = 'circuit-open';
      const response = context.response;
      if (response.headersSent || response.destroyed) return undefined;
      context.outcome.bytesOut = Buffer.byteLength(fallback.body);
      // 204 and 304 carry no Content-Length (RFC 9110 §8.6), as respond's answers; the schema refuses a body for them.
      const length = fallback.status === 204 || fallback.status === 304 ? {} : { 'content-length': context.outcome.bytesOut };
      response.writeHead(fallback.status, applyHeaderHooks(context, fallback.status, { ...length, 'x-request-id': context.requestId, ...fallback.headers, ...closingUnreadBody(context) }));
      response.end(fallback.body);
      return undefined;
    }
    const retryAt = slot.breaker.retryAt(performance.now());
    const seconds = retryAt === undefined ? 1 : Math.max(1, Math.ceil((retryAt - Date.now()) / 1_000));
    sendErrorAnswer(context, 503, 'circuit-open', openMessage(slot), { 'retry-after': String(seconds) });
    return undefined;
  }
  const reason = code === REFUSED_MAX_CONCURRENT ? 'maxConcurrentRequests' : 'maxRequests (and maxPendingRequests)';
  sendErrorAnswer(context, 503, 'concurrency-limit', `the service ${context.service} has ${reason} in flight`, { 'retry-after': '1' });
  return undefined;
}

function openMessage(slot: BreakerSlot): string {
  const scope = slot.route === null ? `service ${slot.service}` : `route ${slot.route}`;
  return `the circuit breaker of ${scope} is open after too many upstream failures`;
}
