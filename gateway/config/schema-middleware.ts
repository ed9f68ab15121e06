import { z } from 'zod';
import { DEFAULT_CACHE_MAX_BYTES } from './defaults.ts';
import type { RateLimitKey } from './types.ts';
import { hostHeaderPolicy, middlewareName, requestHeaderPolicy, responseHeaderPolicy } from './schema-route.ts';
import { ACCESS_MIDDLEWARE_KINDS } from './schema-access.ts';
import { ALLOW_UNSAFE_REGEX_KEY } from './regex-safety.ts';
import { ambiguousStatusRanges, parseStatusRange, type StatusRange } from './status-ranges.ts';
import { BODYLESS_STATUSES, byteSize, byteSizeOrZero, count, duration, headerEditProblem, headerName, longDuration, refuseUnsafeRegex, regexSource, rewriteSettings, section, sentHeaderValue } from './schema-values.ts';

const RATE_LIMIT_KEY_HINT = 'expected client-ip, route, service, consumer, header:<name> or claim:<name>';

/** `client-ip`, `route`, `service`, `consumer`, `header:<name>` or `claim:<name>` (of the JWT jwtAuth verified): what a rate limit counts requests by. */
const rateLimitKey = z.string().transform((text, context): RateLimitKey => {
  if (text === 'client-ip' || text === 'route' || text === 'service' || text === 'consumer') return { from: text };
  if (text.startsWith('header:')) {
    const name = headerName.safeParse(text.slice('header:'.length));
    if (name.success) return { from: 'header', name: name.data };
  }
  if (/^claim:[\w.:-]+$/.test(text)) return { from: 'claim', name: text.slice('claim:'.length) };
  context.addIssue({ code: 'custom', message: RATE_LIMIT_KEY_HINT });
  return z.NEVER;
});

const IPV6_SUBNET_HINT = 'expected a prefix length from 1 to 128';
const ipv6Subnet = z.int(IPV6_SUBNET_HINT).min(1, IPV6_SUBNET_HINT).max(128, IPV6_SUBNET_HINT);

const ORIGIN_HINT = 'expected "*" or an origin such as https://app.example.com or https://*.example.com (scheme, host, optional port; no path)';
const ORIGIN = /^(https?):\/\/((?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/;
const DEFAULT_PORT: Readonly<Record<string, string>> = { http: '80', https: '443' };

/** A CORS origin as browsers send it: lower-cased, without its scheme's default port (`https://a.example:443` is `https://a.example`). */
const corsOrigin = z.string().transform((text, context) => {
  if (text === '*') return text;
  const match = ORIGIN.exec(text.toLowerCase());
  if (!match || (match[3] !== undefined && (Number(match[3]) < 1 || Number(match[3]) > 65_535))) {
    context.addIssue({ code: 'custom', message: ORIGIN_HINT });
    return z.NEVER;
  }
  const [, scheme, host, port] = match;
  return port === undefined || port === DEFAULT_PORT[scheme!] ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
});

/** An HTTP method (an RFC 9110 token, case kept: methods are case-sensitive), or `*` for whichever a preflight asks. */
const corsMethod = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'is not a valid method');

const MEDIA_TYPE_HINT = 'expected a media type such as application/json, a whole type such as text/*, or a suffix such as application/*+json';

/** A media type, `type/*` or `type/*+suffix`, without parameters; lower-cased. */
const mediaTypePattern = z.string().transform((text, context) => {
  const type = text.trim().toLowerCase();
  if (/^[a-z0-9!#$&^_.+-]+\/(?:\*|\*\+[a-z0-9!#$&^_.-]+|[a-z0-9!#$&^_.+-]+)$/.test(type)) return type;
  context.addIssue({ code: 'custom', message: MEDIA_TYPE_HINT });
  return z.NEVER;
});

/** `compress` as written: at most one of `contentTypes` and `excludedContentTypes`, each coding once. */
const compressSection = section({
  encodings: z.array(z.enum(['br', 'gzip'])).min(1).optional(),
  minSize: byteSizeOrZero.optional(),
  contentTypes: z.array(mediaTypePattern).min(1).optional(),
  excludedContentTypes: z.array(mediaTypePattern).min(1).optional(),
  level: count(1, 9).optional(),
}).superRefine((settings, context) => {
  if (settings.contentTypes !== undefined && settings.excludedContentTypes !== undefined) {
    context.addIssue({ code: 'custom', path: ['excludedContentTypes'], message: 'cannot go with contentTypes: list the types to compress or the ones to leave out, not both' });
  }
  const encodings = settings.encodings ?? [];
  if (new Set(encodings).size !== encodings.length) context.addIssue({ code: 'custom', path: ['encodings'], message: 'lists a coding twice' });
});

/** An HTTP method as `cache` lists it: a token, upper-cased. */
const cacheMethod = z.string().regex(/^[A-Za-z]+$/, 'is not a method').transform((method) => method.toUpperCase());

/** `cache` as written: the memory bound above the one-entry bound, each method and status once. */
/** `true`, `false` or `{ timeout }`: a cache's `lock` and `backgroundUpdate` (a bare duration, `backgroundUpdate: 20s`, is refused by name, not as "Invalid input"). */
const switchWithTimeout = z.union([z.boolean(), section({ timeout: duration.refine((ms) => ms > 0, 'must be more than 0').optional() })], {
  error: 'expected true, false or { timeout }',
});

const cacheSection = section({
  maxSize: byteSize.optional(),
  maxEntrySize: byteSize.optional(),
  defaultTtl: longDuration.refine((ms) => ms >= 1_000, "must be at least 1s (freshness counts whole seconds)").optional(),
  methods: z.array(cacheMethod).min(1).optional(),
  statuses: z.array(z.int().min(200).max(599)).min(1).optional(),
  cacheStatusHeader: z.union([headerName, z.literal(false)]).optional(),
  useStale: z.union([
    z.literal(false),
    section({
      on: z.array(z.enum(['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504', 'updating'])).optional(),
      maxStale: longDuration.optional(),
    }),
  ]).optional(),
  lock: switchWithTimeout.optional(),
  convertHead: z.boolean().optional(),
  backgroundUpdate: switchWithTimeout.optional(),
}).superRefine((settings, context) => {
  // Against the default maxSize too: a bigger entry could never be kept, yet each miss would gather up to that much.
  if (settings.maxEntrySize !== undefined && settings.maxEntrySize > (settings.maxSize ?? DEFAULT_CACHE_MAX_BYTES)) {
    context.addIssue({ code: 'custom', path: ['maxEntrySize'], message: 'is above maxSize: no answer that size could be kept' });
  }
  const methods = settings.methods ?? [];
  if (methods.some((method) => method !== 'GET' && method !== 'HEAD')) {
    context.addIssue({ code: 'custom', path: ['methods'], message: 'may hold only GET and HEAD (an answer to another method is not reused for a later request)' });
  }
  if (new Set(methods).size !== methods.length) context.addIssue({ code: 'custom', path: ['methods'], message: 'lists a method twice' });
  // A HEAD not answered from the cache is never converted, and a GET's answer stored for HEADs alone would be one no GET reads.
  if (settings.convertHead === true && settings.methods !== undefined && !(methods.includes('GET') && methods.includes('HEAD'))) {
    context.addIssue({ code: 'custom', path: ['convertHead'], message: 'needs GET and HEAD in methods: it sends a HEAD miss upstream as the GET whose stored answer both read' });
  }
  // With `useStale: false` no stale answer ever goes while another request updates it (neither `updating` nor stale-while-revalidate): nothing to update in the background.
  if (settings.backgroundUpdate !== undefined && settings.backgroundUpdate !== false && settings.useStale === false) {
    context.addIssue({ code: 'custom', path: ['backgroundUpdate'], message: 'needs useStale: with useStale: false no stale answer is sent while it is updated' });
  }
  const statuses = settings.statuses ?? [];
  if (new Set(statuses).size !== statuses.length) context.addIssue({ code: 'custom', path: ['statuses'], message: 'lists a status twice' });
  // A 206 holds a part, which http-cache-semantics never lets be stored (nor should it go whole to others): listing it would do nothing.
  if (statuses.includes(206)) context.addIssue({ code: 'custom', path: ['statuses'], message: 'may not hold 206: a part of an answer is never stored (a stored 200 answers ranges)' });
  const on = settings.useStale === false ? [] : (settings.useStale?.on ?? []);
  if (new Set(on).size !== on.length) context.addIssue({ code: 'custom', path: ['useStale', 'on'], message: 'lists a failure twice' });
});

const RESPOND_STATUS_HINT = 'expected a final status from 200 to 599 (1xx are interim answers, never the answer itself)';

/** `respond` as written: a final status, at most one of `body` and `bodyFile`, none for a status that has no body. */
const respondSection = section({
  status: z.int(RESPOND_STATUS_HINT).min(200, RESPOND_STATUS_HINT).max(599, RESPOND_STATUS_HINT),
  body: z.string().optional(),
  bodyFile: z.string().min(1).optional(),
  contentType: sentHeaderValue.optional(),
  headers: z.record(headerName, sentHeaderValue).optional(),
}).superRefine((settings, context) => {
  const problem = (key: string, message: string) => context.addIssue({ code: 'custom', path: [key], message });
  if (settings.body !== undefined && settings.bodyFile !== undefined) problem('bodyFile', 'cannot go with body: give the text or the file it is in, not both');
  const hasBody = settings.body !== undefined || settings.bodyFile !== undefined;
  if (hasBody && BODYLESS_STATUSES.has(settings.status)) problem(settings.body !== undefined ? 'body' : 'bodyFile', `a ${settings.status} answer has no body (RFC 9110)`);
  if (settings.contentType !== undefined && !hasBody) problem('contentType', 'describes a body: give body or bodyFile');
  // The body's framing and the connection are the gateway's (`headerEditProblem`), the type is `contentType`'s.
  for (const [name, value] of Object.entries(settings.headers ?? {})) {
    const refused = name === 'content-type' ? 'set content-type with contentType' : headerEditProblem(name, value, 'answer');
    if (refused !== undefined) problem('headers', refused);
  }
});

const FAULT_PERCENTAGE_HINT = 'expected a percentage from 0 to 100 (fractions allowed, 0.5 is one request in 200)';

/** The share of requests a fault is injected into, in percent. */
const faultPercentage = z.number(FAULT_PERCENTAGE_HINT).min(0, FAULT_PERCENTAGE_HINT).max(100, FAULT_PERCENTAGE_HINT);

/** `fault` as written (Envoy's HTTP fault filter, APISIX's fault-injection): a delay, an abort, or both. */
const faultSection = section({
  abort: section({
    status: z.int(RESPOND_STATUS_HINT).min(200, RESPOND_STATUS_HINT).max(599, RESPOND_STATUS_HINT),
    percentage: faultPercentage.optional(),
    body: z.string().optional(),
    contentType: sentHeaderValue.optional(),
  })
    .superRefine((abort, context) => {
      if (abort.body !== undefined && BODYLESS_STATUSES.has(abort.status)) context.addIssue({ code: 'custom', path: ['body'], message: `a ${abort.status} answer has no body (RFC 9110)` });
      if (abort.contentType !== undefined && abort.body === undefined) context.addIssue({ code: 'custom', path: ['contentType'], message: 'describes a body: give body' });
    })
    .optional(),
  delay: section({
    duration: duration.refine((ms) => ms > 0, 'must be above 0'),
    percentage: faultPercentage.optional(),
  }).optional(),
  maxActive: count(1).optional(),
}).superRefine((settings, context) => {
  if (settings.abort === undefined && settings.delay === undefined) context.addIssue({ code: 'custom', message: 'injects nothing: give abort, delay or both' });
});

/**
 * `errors` as written: `pages`, status keys (`502`, `5xx`, `500-599`, within 400-599) to the file
 * each one's page is read from at load; no two keys equally specific may claim one status.
 */
const errorsSection = section({
  pages: z.record(z.string(), z.string().min(1, 'expected the path of the page file')),
  contentType: sentHeaderValue.optional(),
}).superRefine((settings, context) => {
  const keys = Object.keys(settings.pages);
  if (keys.length === 0) context.addIssue({ code: 'custom', path: ['pages'], message: 'expected at least one page, e.g. "5xx": 5xx.html' });
  const ranges = new Map<string, StatusRange>();
  for (const key of keys) {
    const range = parseStatusRange(key);
    if (typeof range === 'string') context.addIssue({ code: 'custom', path: ['pages', key], message: range });
    else ranges.set(key, range);
  }
  const ambiguous = ambiguousStatusRanges(ranges);
  if (ambiguous) context.addIssue({ code: 'custom', path: ['pages', ambiguous[1]], message: `overlaps "${ambiguous[0]}", which is as specific: a status would have two pages` });
});

/** Kinds of named middleware and their settings as written; each entry of `middlewares` sets exactly one. */
const MIDDLEWARE_KINDS = {
  rateLimit: section({
    average: z.number().positive('must be above 0'),
    period: longDuration.refine((ms) => ms > 0, 'must be above 0').optional(),
    burst: count(1).optional(),
    key: rateLimitKey.optional(),
    ipv6Subnet: ipv6Subnet.optional(),
    policy: z.enum(['local', 'redis']).optional(),
    onRedisError: z.enum(['local', 'allow', 'deny']).optional(),
    statusOnRedisError: z.int().refine((status) => status === 429 || (status >= 500 && status <= 599), 'must be 429 or a 5xx status (500 to 599): a refusal for want of a count, never a success or the client\'s error').optional(),
    delay: section({ maxWait: duration.refine((ms) => ms > 0, 'must be above 0') }).optional(),
    quota: section({ limit: count(1), per: z.enum(['hour', 'day']) }).optional(),
  }).superRefine((settings, context) => {
    // Ignored otherwise, so refused rather than taken silently: a local limit (the default policy)
    // counts in the gateway's memory and never asks Redis, and only `deny` refuses for want of it.
    const redis = settings.policy === 'redis';
    if (settings.onRedisError !== undefined && !redis) context.addIssue({ code: 'custom', path: ['onRedisError'], message: `applies only with policy: redis (what the limit does while Redis is away); this limit's policy is ${settings.policy ?? 'local (the default)'}, counted in each gateway's memory, which never asks Redis` });
    if (settings.statusOnRedisError !== undefined && (!redis || settings.onRedisError !== 'deny')) context.addIssue({ code: 'custom', path: ['statusOnRedisError'], message: 'applies only with policy: redis and onRedisError: deny (the status of the requests it refuses while Redis is away)' });
  }),
  redirectScheme: section({
    scheme: z.enum(['https', 'http']),
    port: count(1, 65_535).optional(),
    permanent: z.boolean().optional(),
  }),
  redirectRegex: section({
    regex: regexSource,
    replacement: sentHeaderValue,
    permanent: z.boolean().optional(),
    [ALLOW_UNSAFE_REGEX_KEY]: z.boolean().optional(),
  })
    .superRefine((settings, context) => {
      if (!settings.allowUnsafeRegex) refuseUnsafeRegex(context, settings.regex, ['regex']);
    })
    // The opt-out is about loading; the middleware's settings (its state key) stay the rest.
    .transform(({ regex, replacement, permanent }) => ({ regex, replacement, permanent })),
  respond: respondSection,
  hsts: section({
    maxAge: longDuration,
    includeSubDomains: z.boolean().optional(),
    preload: z.boolean().optional(),
  }),
  cors: section({
    allowOrigins: z.array(corsOrigin).min(1),
    allowMethods: z.array(corsMethod).min(1).optional(),
    allowHeaders: z.array(headerName).optional(),
    exposeHeaders: z.array(headerName).optional(),
    allowCredentials: z.boolean().optional(),
    maxAge: longDuration.optional(),
  }).superRefine((settings, context) => {
    // The Fetch standard: a credentialed request's answer may not grant `*`; echoing every origin instead would open credentials to any site.
    if (settings.allowCredentials && settings.allowOrigins.includes('*')) {
      context.addIssue({ code: 'custom', path: ['allowCredentials'], message: 'cannot go with allowOrigins "*" (browsers refuse credentials for any origin): list the origins' });
    }
    // With credentials a browser reads an exposed `*` as a header named `*` (the Fetch standard), exposing nothing.
    if (settings.allowCredentials && settings.exposeHeaders?.includes('*')) {
      context.addIssue({ code: 'custom', path: ['exposeHeaders'], message: 'cannot hold "*" with allowCredentials (browsers then read it as a header named *): list the headers' });
    }
  }),
  headers: section({
    request: requestHeaderPolicy.optional(),
    response: responseHeaderPolicy.optional(),
    host: hostHeaderPolicy.optional(),
  }),
  rewrite: rewriteSettings,
  bodyLimit: section({ maxSize: byteSize }),
  inFlightReq: section({
    amount: count(1),
    key: rateLimitKey.optional(),
    ipv6Subnet: ipv6Subnet.optional(),
  }),
  compress: compressSection,
  fault: faultSection,
  errors: errorsSection,
  cache: cacheSection,
  grpcWeb: section({}),
  ...ACCESS_MIDDLEWARE_KINDS,
};

/** The kinds a named middleware may have, in the order the docs list them. */
export const MIDDLEWARE_KIND_NAMES = Object.keys(MIDDLEWARE_KINDS) as (keyof typeof MIDDLEWARE_KINDS)[];

/** One entry of `middlewares`: exactly one kind with its settings (Traefik style). */
const middlewareEntry = section({
  rateLimit: MIDDLEWARE_KINDS.rateLimit.optional(),
  redirectScheme: MIDDLEWARE_KINDS.redirectScheme.optional(),
  redirectRegex: MIDDLEWARE_KINDS.redirectRegex.optional(),
  respond: MIDDLEWARE_KINDS.respond.optional(),
  hsts: MIDDLEWARE_KINDS.hsts.optional(),
  cors: MIDDLEWARE_KINDS.cors.optional(),
  headers: MIDDLEWARE_KINDS.headers.optional(),
  rewrite: MIDDLEWARE_KINDS.rewrite.optional(),
  bodyLimit: MIDDLEWARE_KINDS.bodyLimit.optional(),
  inFlightReq: MIDDLEWARE_KINDS.inFlightReq.optional(),
  compress: MIDDLEWARE_KINDS.compress.optional(),
  fault: MIDDLEWARE_KINDS.fault.optional(),
  errors: MIDDLEWARE_KINDS.errors.optional(),
  cache: MIDDLEWARE_KINDS.cache.optional(),
  grpcWeb: MIDDLEWARE_KINDS.grpcWeb.optional(),
  keyAuth: MIDDLEWARE_KINDS.keyAuth.optional(),
  basicAuth: MIDDLEWARE_KINDS.basicAuth.optional(),
  jwtAuth: MIDDLEWARE_KINDS.jwtAuth.optional(),
  ipAllowList: MIDDLEWARE_KINDS.ipAllowList.optional(),
  ipDenyList: MIDDLEWARE_KINDS.ipDenyList.optional(),
  forwardAuth: MIDDLEWARE_KINDS.forwardAuth.optional(),
}).superRefine((entry, context) => {
  const kinds = MIDDLEWARE_KIND_NAMES.filter((kind) => entry[kind] !== undefined);
  if (kinds.length === 1) return;
  const found = kinds.length === 0 ? 'none' : kinds.join(' and ');
  context.addIssue({ code: 'custom', message: `a middleware has exactly one kind (${MIDDLEWARE_KIND_NAMES.join(', ')}); found ${found}` });
});

/** `middlewares`: name → one middleware, declared once and referenced by routes' `middlewares` lists. */
export const middlewaresSchema = z.record(middlewareName, middlewareEntry);

/** One entry of `middlewares` as parsed. */
export type MiddlewareInput = z.output<typeof middlewareEntry>;
