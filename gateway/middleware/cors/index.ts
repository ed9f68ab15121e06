import type { OutgoingHttpHeaders } from 'node:http';
import type { CorsSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware, ResponseHeadersHook } from '../../context.ts';
import { closingUnreadBody, sendOwnAnswer } from '../../proxy/error-response.ts';

/** The response headers CORS grants with: the gateway sets them, an upstream's are dropped. */
const GRANTS = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers'] as const;

/** Where a listed origin came from: `https://app.example.com` exactly, or `https://*.example.com` (any subdomain, at any depth). */
interface OriginPattern {
  readonly scheme: string;
  /** `.example.com` for a wildcard, else undefined. */
  readonly suffix: string;
  /** The port as written after the host (`:8443`), or ''. */
  readonly port: string;
}

/** `scheme://*.host[:port]`, lower-cased, as the schema left it. */
const WILDCARD = /^(https?):\/\/\*(\.[^:/]+)(:\d+)?$/;

/**
 * Answers CORS for the routes it is on (Traefik's and Envoy's CORS, the Fetch standard's protocol):
 * a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here, 204
 * with what `settings` allow for a listed origin and 403 for any other, and never reaches the
 * upstream; a request with a listed `Origin` gets `Access-Control-Allow-Origin` (and credentials,
 * exposed headers) on its answer, the upstream's and the gateway's own. The gateway is the one that
 * grants: an upstream's `Access-Control-Allow-Origin`, `-Credentials` and `-Expose-Headers` are
 * dropped on these routes, so a backend cannot open an origin the configuration does not list.
 * `Vary: Origin` goes on every answer whose grant depends on the origin.
 */
export function cors(settings: CorsSettings): Middleware {
  const anyOrigin = settings.allowOrigins.includes('*');
  const exact = new Set(settings.allowOrigins.filter((origin) => !origin.includes('*')));
  const patterns = settings.allowOrigins.flatMap((origin): OriginPattern[] => {
    const match = WILDCARD.exec(origin);
    return match ? [{ scheme: match[1]!, suffix: match[2]!, port: match[3] ?? '' }] : [];
  });
  // `*` answers every origin alike unless credentials are allowed (which the schema refuses with `*`).
  const variesByOrigin = !anyOrigin || settings.allowCredentials;
  const allowed = (origin: string) => anyOrigin || exact.has(origin.toLowerCase()) || patterns.some((pattern) => matchesPattern(origin.toLowerCase(), pattern));
  const exposed = settings.exposeHeaders.join(', ');
  const methods = settings.allowMethods.includes('*') ? undefined : settings.allowMethods.join(', ');
  const allowHeaders = settings.allowHeaders.includes('*') ? undefined : settings.allowHeaders.join(', ');
  const maxAge = settings.maxAgeMs === undefined ? undefined : String(Math.floor(settings.maxAgeMs / 1_000));
  // The `Access-Control-Allow-Origin` of a listed origin, on an answer and on a preflight alike.
  const allowOriginOf = (origin: string) => (variesByOrigin ? origin : '*');

  const grant = (headers: OutgoingHttpHeaders, origin: string | undefined) => {
    for (const name of GRANTS) delete headers[name];
    if (variesByOrigin) headers.vary = withVary(headers.vary, 'Origin');
    if (origin === undefined) return;
    headers['access-control-allow-origin'] = allowOriginOf(origin);
    if (settings.allowCredentials) headers['access-control-allow-credentials'] = 'true';
    if (exposed !== '') headers['access-control-expose-headers'] = exposed;
  };
  // One hook for every request: the origin it grants is the context's own. A `*` grant goes on every
  // answer, Origin or not: one without it and without `Vary: Origin` would be cached and handed to a
  // page (the Fetch standard's "CORS protocol and HTTP caches").
  const onAnswer: ResponseHeadersHook = (_status, headers, context) => grant(headers, variesByOrigin ? grantedOrigin(context, allowed) : '*');

  return async function cors(context, next) {
    const origin = originOf(context);
    const requestedMethod = context.request.headers['access-control-request-method'];
    if (origin !== undefined && context.request.method === 'OPTIONS' && typeof requestedMethod === 'string') {
      return answerPreflight(context, origin, requestedMethod);
    }
    // Header hooks run on the upstream's answer and on the gateway's own (errors, refusals,
    // fallbacks), so a page can read a 429 or a 502 too.
    context.responseHeaderHooks.push(onAnswer);
    await next();
  };

  /**
   * Answers a preflight itself, 204 or 403. One sent with a body still arriving over HTTP/1.1 is
   * answered as every answer the gateway gives by itself (`closingUnreadBody`): a small body is read
   * and dropped within a bound, any other closes the connection after the answer.
   * The response header hooks of the layers before it (a `headers` middleware's `response`, `hsts`)
   * apply to it as to the gateway's other answers (`sendOwnAnswer`).
   */
  function answerPreflight(context: GatewayContext, origin: string, requestedMethod: string): void {
    // No Content-Length on the 204: RFC 9110 §8.6 forbids it there.
    const headers: OutgoingHttpHeaders = { vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers', 'x-request-id': context.requestId, ...closingUnreadBody(context) };
    if (!allowed(origin)) return sendOwnAnswer(context, 403, { ...headers, 'content-length': 0 });
    headers['access-control-allow-origin'] = allowOriginOf(origin);
    if (settings.allowCredentials) headers['access-control-allow-credentials'] = 'true';
    headers['access-control-allow-methods'] = methods ?? requestedMethod;
    const requestedHeaders = context.request.headers['access-control-request-headers'];
    const headerList = allowHeaders ?? (typeof requestedHeaders === 'string' ? requestedHeaders : '');
    if (headerList !== '') headers['access-control-allow-headers'] = headerList;
    if (maxAge !== undefined) headers['access-control-max-age'] = maxAge;
    sendOwnAnswer(context, 204, headers);
  }
}

/** The request's `Origin`, when it sent one. */
function originOf(context: GatewayContext): string | undefined {
  const origin = context.request.headers.origin;
  return typeof origin === 'string' && origin !== '' ? origin : undefined;
}

function grantedOrigin(context: GatewayContext, allowed: (origin: string) => boolean): string | undefined {
  const origin = originOf(context);
  return origin !== undefined && allowed(origin) ? origin : undefined;
}

/** Whether a lower-cased `Origin` is a subdomain of `pattern` on its scheme and port. */
function matchesPattern(origin: string, pattern: OriginPattern): boolean {
  const prefix = `${pattern.scheme}://`;
  if (!origin.startsWith(prefix)) return false;
  const rest = origin.slice(prefix.length);
  const colon = rest.lastIndexOf(':');
  const host = pattern.port === '' ? rest : rest.slice(0, colon);
  if (pattern.port !== '' && rest.slice(colon) !== pattern.port) return false;
  if (pattern.port === '' && rest.includes(':')) return false;
  return host.length > pattern.suffix.length && host.endsWith(pattern.suffix) && !host.includes('/');
}

/** `vary` with `name` added, unless it is there already (or `*`). */
function withVary(vary: OutgoingHttpHeaders[string], name: string): string {
  const current = Array.isArray(vary) ? vary.join(', ') : vary === undefined ? '' : String(vary);
  if (current === '') return name;
  const names = current.split(',').map((part) => part.trim().toLowerCase());
  return names.includes('*') || names.includes(name.toLowerCase()) ? current : `${current}, ${name}`;
}
