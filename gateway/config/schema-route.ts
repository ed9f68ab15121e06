import { z } from 'zod';
import { entryPointName } from './schema-entrypoint.ts';
import { normalisePath } from '../router/path-normalise.ts';
import { circuitBreakerSchema } from './schema-breaker.ts';
import { mirrorSchema } from './schema-route-mirror.ts';
import { canarySchema, subsetSchema } from './schema-route-traffic.ts';
import { retries } from './schema-service.ts';
import { duration, type EditedMessage, headerName, hostWithPort, matchedHeaderValue, refuseUnsafeRegex, refuseUnsendableHeaders, regexSource, rewriteSettings, section, sentHeaderValue } from './schema-values.ts';

/** A service name as registries spell it: no slash, no whitespace. */
export const serviceName = z.string().min(1).max(255).regex(/^[^\s/]+$/, 'must not contain "/" or whitespace');

const LABEL = '[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?';
const HOST_PATTERN = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*\\.?$`, 'i');

/** A route's host condition: exact (`api.example.com`) or a wildcard suffix (`*.example.com`), lowercased. */
const hostCondition = z
  .string()
  .regex(HOST_PATTERN, 'expected a host name such as api.example.com or *.example.com (no port)')
  .transform((host) => host.toLowerCase().replace(/\.$/, ''));

/**
 * A path prefix: starts with `/`, no query; written as the request paths it is matched with are
 * (`normalisePath`: `/caf%c3%a9` and `/café` as `/caf%C3%A9`, `/%7Eu` as `/~u`, dot segments
 * removed), since one written otherwise could never match; a trailing slash is dropped since
 * matching is by whole segments.
 */
const pathPrefix = z
  .string()
  .regex(/^\/[^\s?#]*$/, 'expected a path starting with / (no query, no spaces)')
  .transform((written, context) => {
    // Clients send what is not ASCII as UTF-8 escapes (a lone surrogate, which has none, as U+FFFD).
    const path = normalisePath(written.replace(/[^\p{ASCII}]+/gu, (text) => encodeURIComponent(text.replace(/\p{Surrogate}/gu, '\uFFFD'))), { mergeSlashes: false, escapedSlashes: 'keep' });
    if (typeof path !== 'string') {
      context.addIssue({ code: 'custom', message: path.error === 'nul-in-path' ? 'a path cannot hold NUL (%00)' : 'expected a path whose every % starts an escape such as %20' });
      return z.NEVER;
    }
    return path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
  });

const method = z
  .string()
  .regex(/^[A-Za-z]+$/, 'is not an HTTP method')
  .transform((name) => name.toUpperCase());

/** Header edits of a request or an answer: `{ set: { name: value }, remove: [names] }`; what `headerEditProblem` names cannot be set. */
function headerPolicy(edited: EditedMessage) {
  return section({
    set: z.record(headerName, sentHeaderValue).superRefine(refuseUnsendableHeaders(edited)).optional(),
    remove: z.array(headerName).optional(),
  });
}

/** Header edits of the request sent upstream (`requestHeaders`, a `headers` middleware's `request`). */
export const requestHeaderPolicy = headerPolicy('request');

/** Header edits of the answer sent to the client (`responseHeaders`, a `headers` middleware's `response`). */
export const responseHeaderPolicy = headerPolicy('answer');

/** What to send upstream as Host: `pass`, `upstream` or a literal host. */
export const hostHeaderPolicy = z.union([z.enum(['pass', 'upstream']), hostWithPort], { error: 'expected pass, upstream or a host name' });

/** A name in `middlewares`, as routes reference it. */
export const middlewareName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'expected letters, digits, "-", "_" or "." (starting with a letter or digit)');

/** One entry of `routes`, before the cross-field rules below. */
const routeFields = section({
  name: z.string().min(1).max(128).optional(),
  host: hostCondition.optional(),
  path: pathPrefix.optional(),
  pathRegex: regexSource.optional(),
  // Accepts a pathRegex that refuseUnsafeRegex refuses (a rewrite pattern has its own key).
  allowUnsafeRegex: z.boolean().optional(),
  methods: z.union([method.transform((name) => [name]), z.array(method).min(1)], { error: 'expected a method or a list of methods' }).optional(),
  headers: z.record(headerName, matchedHeaderValue).optional(),
  service: serviceName.optional(),
  namespace: z.union([z.literal(true), z.literal('grpc')], { error: 'expected true or grpc (leave it out for a route to one service)' }).optional(),
  grpcService: z
    .string()
    .regex(/^[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*$/, 'expected a gRPC service name such as helloworld.Greeter')
    .optional(),
  stripPrefix: z.boolean().optional(),
  rewrite: rewriteSettings.optional(),
  requestHeaders: requestHeaderPolicy.optional(),
  responseHeaders: responseHeaderPolicy.optional(),
  hostHeader: hostHeaderPolicy.optional(),
  timeouts: section({ headers: duration.optional(), idleBody: duration.optional(), websocketIdle: duration.optional() }).optional(),
  retries: retries.optional(),
  circuitBreaker: circuitBreakerSchema.optional(),
  middlewares: z.array(middlewareName).optional(),
  entryPoints: z.array(entryPointName).min(1, 'expected entry point names (leave it out for every entry point)').optional(),
  subset: subsetSchema.optional(),
  canary: canarySchema.optional(),
  mirror: mirrorSchema.optional(),
  // Takes a route out of service with a 503 and this reason; the config store sets it on a route whose middleware is missing.
  unavailable: z.string().min(1).max(1_000).optional(),
});

/** A route: one target (`service` or `namespace: true`), one path condition at most, and options that fit them. */
export const routeSchema = routeFields.superRefine((route, context) => {
  const problem = (path: string, message: string) => context.addIssue({ code: 'custom', path: [path], message });
  if (route.service === undefined && route.namespace === undefined) problem('service', 'a route needs a service, or namespace: true');
  if (route.service !== undefined && route.namespace) problem('namespace', 'a route has either a service or namespace: true, not both');
  if (route.path !== undefined && route.pathRegex !== undefined) problem('pathRegex', 'a route has either path or pathRegex, not both');
  if (!route.allowUnsafeRegex) refuseUnsafeRegex(context, route.pathRegex, ['pathRegex']);
  if (route.stripPrefix && route.path === undefined) problem('stripPrefix', 'stripPrefix needs a path prefix to strip');
  if (route.grpcService !== undefined && (route.path !== undefined || route.pathRegex !== undefined)) problem('grpcService', 'grpcService stands for path /<grpcService>/: use one of them');
  if (route.stripPrefix && route.namespace) problem('stripPrefix', 'a namespace route always strips its prefix and service segment');
  if (route.namespace && route.pathRegex !== undefined) problem('pathRegex', 'a namespace route takes a path prefix, not a regex');
  if (route.subset && route.canary) problem('canary', 'a route has either subset or canary, not both');
  // A namespace route reaches any service: its breaker would mix them; set `circuitBreaker` on the services.
  if (route.namespace && route.circuitBreaker) problem('circuitBreaker', 'a namespace route cannot have its own breaker; set circuitBreaker on the services');
  // A namespace route reaches any service, so there is no bounded set of subsets to keep balancers for.
  if (route.namespace && route.subset) problem('subset', 'a namespace route cannot select a subset; declare a route to the service');
  if (route.namespace && route.canary) problem('canary', 'a namespace route cannot split by subset; declare a route to the service');
});

/** One `routes` entry as parsed. */
export type RouteInput = z.output<typeof routeSchema>;
