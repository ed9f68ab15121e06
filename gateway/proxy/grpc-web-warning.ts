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
