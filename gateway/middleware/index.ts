// Built-in middleware and the chains the gateway builds from its configuration.
import type { GatewayConfig, RouteConfig } from '../config/types.ts';
import type { GatewayContext, Middleware } from '../context.ts';
import { accessLog, accessLogRecorder, refusalLogRecorder, stdoutAccessLogger, tcpLogRecorder, type AccessLogDestination } from './access-log/index.ts';
import type { ListenerRefusal } from '../entrypoints/http1-refusal.ts';
import { forwarded, forwardingStep } from './forwarded/index.ts';
import { headers } from './headers/index.ts';
import { requestId, requestIdStep } from './request-id/index.ts';
import { rewrite } from './rewrite/index.ts';

export { accessLog, accessLogDestination, accessLogLine, accessLogRecorder, accessLogText, createAccessLogger, stdoutAccessLogger } from './access-log/index.ts';
export type { AccessLogDestination, AccessLogLine, AccessLogOptions, DestinationOptions } from './access-log/index.ts';
export { compose } from './compose.ts';
export { clientFromChain, forwarded, forwardingStep, REAL_IP_HEADER, UNTRUSTED_FORWARDING_HEADERS } from './forwarded/index.ts';
export type { ForwardedOptions } from './forwarded/index.ts';
export { CONSUMER_HEADER, ConsumerKeyIndex, accessDeniedTotal, denyAccess, identify } from './consumers/index.ts';
export type { AccessDenial } from './consumers/index.ts';
export { FAULT_ABORT, fault, faultsInjectedTotal, faultsOverflowTotal } from './fault/index.ts';
export type { FaultOptions } from './fault/index.ts';
export { errors } from './errors/index.ts';
export { forwardAuth } from './forward-auth/index.ts';
export { grpcWeb } from './grpc-web/index.ts';
export { headers } from './headers/index.ts';
export type { HeadersOptions } from './headers/index.ts';
export { bodyLimit } from './body-limit/index.ts';
export { cache, primaryKey, ResponseCache, servingCachedHits } from './cache/index.ts';
export { IN_FLIGHT_LIMITED, inFlightReq } from './in-flight-req/index.ts';
export { cors } from './cors/index.ts';
export { hsts, hstsValue } from './hsts/index.ts';
export { clientAddress, ipAllowList, ipDenyList } from './ip-filter/index.ts';
export { JwksSource, jwtAuth, TokenCache } from './jwt-auth/index.ts';
export type { JwtAuthOptions } from './jwt-auth/index.ts';
export { keyAuth } from './key-auth/index.ts';
export { basicAuth } from './basic-auth/index.ts';
export { buildNamedMiddleware, canonicalJson, NamedMiddlewareRegistry } from './named-middleware.ts';
export type { MiddlewarePlacement, NamedMiddlewareFactory } from './named-middleware.ts';
export { QUOTA_EXCEEDED, RATE_LIMITED, RATE_LIMIT_MAX_KEYS, rateLimit, rateLimitChanges, TokenBucketLimiter } from './rate-limit/index.ts';
export type { LimitDecision, Limiter, RateLimitOptions, TokenBucketOptions } from './rate-limit/index.ts';
export { redirectRegex } from './redirect-regex/index.ts';
export { redirectScheme } from './redirect-scheme/index.ts';
export { respond } from './respond/index.ts';
export { REQUEST_ID_HEADER, requestId, requestIdStep } from './request-id/index.ts';
export type { RequestIdOptions } from './request-id/index.ts';
export { responseTransform, transformBody } from './response-transform/index.ts';
export { rewrite, rewritePath } from './rewrite/index.ts';
export type { RewriteOptions } from './rewrite/index.ts';
export { stripPrefix } from './strip-prefix/index.ts';

/** Options of `globalMiddleware` that do not come from the file. */
export interface GlobalMiddlewareOptions {
  /** Access log destination; `stdoutAccessLogger()` by default. */
  readonly accessLogger?: AccessLogDestination;
}

/**
 * The layers every request passes, outermost first: request id, forwarding headers (which set
 * `clientIp`), then the access log (which needs both and logs after the response ended). Build it
 * once per configuration; it sits outside routing so that 404s are logged too.
 */
export function globalMiddleware(config: GatewayConfig, options: GlobalMiddlewareOptions = {}): Middleware[] {
  const chain = [requestId(), forwarded({ trustedProxies: config.forwarding.trustedProxies })];
  if (config.accessLog) chain.push(accessLog({ ...(options.accessLogger ? { logger: options.accessLogger } : {}), hiddenQueryParams: credentialQueryParams(config) }));
  return chain;
}

/** The global layers as plain steps around the rest of the onion: what `globalMiddleware` does, without three middleware frames per request. */
export interface GlobalSteps {
  /** Request id and forwarding headers, before routing. */
  before(context: GatewayContext): void;
  /** The access log, once the inner layers have settled (`failed`: one threw); undefined when `accessLog` is off. */
  readonly after: ((context: GatewayContext, failed: boolean) => void) | undefined;
}

/**
 * `globalMiddleware` for the request runner: the same layers in the same order, run as two plain
 * calls instead of async middleware (each of which costs a promise and closures per request).
 */
export function globalSteps(config: GatewayConfig, options: GlobalMiddlewareOptions = {}): GlobalSteps {
  const assignId = requestIdStep();
  const forwarding = forwardingStep({ trustedProxies: config.forwarding.trustedProxies });
  return {
    before(context) {
      assignId(context);
      forwarding(context);
    },
    after: config.accessLog ? accessLogRecorder(options.accessLogger ?? stdoutAccessLogger(), credentialQueryParams(config)) : undefined,
  };
}

/**
 * The access log of a listener's own answers to malformed requests under `config` (its credential
 * query parameters hidden, as in every request's line); undefined when `accessLog` is off.
 */
export function refusalLogStep(config: GatewayConfig, options: GlobalMiddlewareOptions = {}): ((refusal: ListenerRefusal) => void) | undefined {
  return config.accessLog ? refusalLogRecorder(options.accessLogger ?? stdoutAccessLogger(), credentialQueryParams(config)) : undefined;
}

/** The access log of tcp entry points' connections under `config`, if it logs (`accessLog`). */
export function tcpLogStep(config: GatewayConfig, options: GlobalMiddlewareOptions = {}): ReturnType<typeof tcpLogRecorder> | undefined {
  return config.accessLog ? tcpLogRecorder(options.accessLogger ?? stdoutAccessLogger()) : undefined;
}

/** The query parameters `keyAuth` and `jwtAuth` middleware read credentials from, each once. */
export function credentialQueryParams(config: GatewayConfig): string[] {
  const names = new Set<string>();
  for (const { kind, settings } of config.middlewares.values()) {
    if (kind === 'keyAuth' && settings.query !== undefined) names.add(settings.query);
    if (kind === 'jwtAuth' && settings.from.query !== undefined) names.add(settings.from.query);
  }
  return [...names];
}

const routeChains = new WeakMap<RouteConfig, readonly Middleware[]>();

/**
 * The layers of one route, from its config: the regex rewrite, then header and Host policy. Path
 * prefix stripping and namespace mapping are not here: the router returns the upstream path with
 * them applied. Built once per route object and cached, so calling it per request is cheap.
 */
export function routeMiddleware(route: RouteConfig, _config?: GatewayConfig): readonly Middleware[] {
  const cached = routeChains.get(route);
  if (cached) return cached;
  const chain: Middleware[] = [];
  if (route.rewrite) chain.push(rewrite(route.rewrite));
  if (route.requestHeaders || route.responseHeaders || route.hostHeader !== 'pass') {
    chain.push(headers({ request: route.requestHeaders, response: route.responseHeaders, host: route.hostHeader }));
  }
  routeChains.set(route, chain);
  return chain;
}
