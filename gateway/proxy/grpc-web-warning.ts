import { LogRateLimit } from '../../src/log-rate-limit.ts';
import type { GatewayContext } from '../context.ts';

/** The routes and services warned about (`route service`), each once, at most 1,024 remembered. */
const warned = new LogRateLimit(Infinity);

/** The longest `grpc-message` the warning quotes. */
const MAX_QUOTED_MESSAGE = 200;

/**
 * Warns once per route and service that an instance answered a gRPC-Web call sent as it came with
 * a plain gRPC Trailers-Only failure (`grpc-web-unsupported`), quoting what it answered: the
 * refusal of a server that cannot read gRPC-Web (grpcio, grpc-go) and the failure of a call a
 * server read (grpc-js reads gRPC-Web as gRPC: a handler that throws answers UNKNOWN) look alike,
 * so the warning says both and counts neither against the instance. Either way the route needs
 * the `grpcWeb` middleware: a browser reads no plain gRPC answer that has a body.
 */
export function warnGrpcWebUnsupported(context: GatewayContext): void {
  if (!warned.allow(`${context.routeName} ${context.service}`)) return;
  const { status, grpcStatus, grpcWebUnsupported } = context.outcome;
  const grpcMessage = (grpcWebUnsupported?.grpcMessage ?? '').slice(0, MAX_QUOTED_MESSAGE);
  context.log.warn(
    { route: context.routeName, service: context.service, status, grpcStatus, grpcMessage },
    `an instance of service ${context.service} answered a gRPC-Web call on route ${context.routeName} as plain gRPC, Trailers-Only with grpc-status ${grpcStatus} (HTTP ${status}, grpc-message ${JSON.stringify(grpcMessage)}): either the refusal of a server that cannot read gRPC-Web (grpcio: UNKNOWN "Missing :te header"; grpc-go: INVALID_ARGUMENT in an HTTP 415) or the failure of a call the server read (grpc-js reads gRPC-Web as gRPC), which look alike, so it counts against no instance (grpc-web-unsupported); a browser reads no plain gRPC answer with messages either way: add a grpcWeb middleware to the route so that the gateway translates such calls (logged once per route and service)`,
  );
}

/** The routes and services warned about for sending translated gRPC-Web calls over HTTP/1.1, each once. */
const warnedHttp1 = new LogRateLimit(Infinity);

/**
 * Warns once per route and service that `grpcWeb` translated a call for an instance spoken to over
 * HTTP/1.1 (`protocol: http`): gRPC needs HTTP/2, and its trailers do not come back translated, so
 * such calls fail; the instances of a route with `grpcWeb` must be `grpc` or `grpcs`, as Envoy's
 * filter needs an HTTP/2 cluster. The call is sent all the same, as Envoy's filter translates every one.
 */
export function warnGrpcWebOverHttp1(context: GatewayContext): void {
  if (!warnedHttp1.allow(`${context.routeName} ${context.service}`)) return;
  context.log.warn(
    { route: context.routeName, service: context.service },
    `route ${context.routeName} translates gRPC-Web calls (grpcWeb) for service ${context.service}, whose instance is spoken to over HTTP/1.1 (protocol: http): gRPC needs HTTP/2, so such calls fail; give the service's instances protocol grpc or grpcs (logged once per route and service)`,
  );
}
