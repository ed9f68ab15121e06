import { LogRateLimit } from '../../src/log-rate-limit.ts';
import type { GatewayContext } from '../context.ts';

/** The routes and services warned about (`route service`), each once, at most 1,024 remembered. */
const warned = new LogRateLimit(Infinity);

/**
 * Warns once per route and service that an instance answered a gRPC-Web call as plain gRPC
 * (`grpc-web-unsupported`): it cannot read gRPC-Web, so the route needs the `grpcWeb` middleware,
 * which translates such calls. Every one of them otherwise fails for its client, and no instance is to blame.
 */
export function warnGrpcWebUnsupported(context: GatewayContext): void {
  if (!warned.allow(`${context.routeName} ${context.service}`)) return;
  context.log.warn(
    { route: context.routeName, service: context.service },
    `an instance of service ${context.service} answered a gRPC-Web call on route ${context.routeName} as plain gRPC (application/grpc): it cannot read gRPC-Web; add a grpcWeb middleware to the route so that the gateway translates such calls (counted as grpc-web-unsupported, against no instance; logged once per route and service)`,
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
