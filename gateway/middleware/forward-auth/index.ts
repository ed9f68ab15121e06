import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'undici';
import { resumingConnector } from '../../transports/undici-connector.ts';
import type { ForwardAuthSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { isValidFinalStatus } from '../../http-status.ts';
import { endAnsweredByListener, recordClientGone, whileClientStays } from '../client-gone.ts';
import { denyAccess, type AccessDenial } from '../consumers/index.ts';
import { otherSpellingsRemover } from '../../proxy/header-spellings.ts';
import { REQUEST_ID_HEADER } from '../request-id/index.ts';

/** The largest answer body of a refusing auth service relayed to the client; the rest is dropped. */
const MAX_RELAYED_BODY_BYTES = 64 * 1024;

/** Headers that describe one connection or the request's body, never sent to the auth service (RFC 9110 §7.6.1). */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'content-length', 'expect', 'host']);

/** Headers of a refusing auth service's answer that reach the client (the body is relayed as sent, so its encoding too). */
const RELAYED_HEADERS = ['www-authenticate', 'location', 'content-type', 'content-encoding', 'set-cookie', 'retry-after'];

/** Connections to auth services: undici's, with its crash on a paused body at the connection's end repaired (`resumingConnector`). */
let authDispatcher: Agent | undefined;

/** The auth service's word on a request: let it on with these headers upstream, or refuse it so. */
type Verdict = { readonly pass: true; readonly headers: IncomingHttpHeaders } | { readonly pass: false; readonly denial: AccessDenial };

/**
 * Forward auth (Traefik's forwardAuth, nginx's auth_request): a GET with the request's headers as
 * the upstream would get them (`authRequestHeaders`), X-Forwarded-Method/-Proto/-Host/-Uri/-For and
 * the request's id in X-Request-Id goes to `address`. A 2xx lets the request on, with the
 * `authResponseHeaders` of that answer set upstream (replacing any the client sent, spelt with
 * underscores too); any other
 * answer is relayed to the client as the verdict. An auth service that cannot be reached, does not
 * answer in `timeout` (a 2xx counts once its body has ended), fails mid-answer or answers a status
 * outside 200–599 (which no client could be sent) is a 502 `auth-unavailable`: the request is
 * refused, never let through. A client that goes away before the verdict ends the check at once
 * (the auth service's request aborted, as a `fault` delay ends): the request is a 499 `cancelled`,
 * no refusal, and nothing goes on.
 */
export function forwardAuth(settings: ForwardAuthSettings): Middleware {
  // The client's spellings with underscores of what the gateway states: the auth service's headers
  // upstream, and X-Forwarded-Method and -Uri to the auth service (CGI-style services read
  // `X_Forwarded_Uri` as the gateway's X-Forwarded-Uri). The other forwarding headers every request loses.
  const removeSpellings = otherSpellingsRemover([...settings.authResponseHeaders, 'x-forwarded-method', 'x-forwarded-uri'])!;
  return async function forwardAuth(context, next) {
    for (const name of settings.authResponseHeaders) if (context.upstream.headers[name] !== undefined) delete context.upstream.headers[name];
    removeSpellings(context.upstream.headers, context.underscoreNames);
    // One signal ends the check at `timeout` or when the client leaves, whichever comes first; the
    // watch ends with the check, before the layers after it run.
    const watched = await whileClientStays(context, async (controller) => {
      const timer = setTimeout(() => controller.abort(CHECK_TIMED_OUT), settings.timeoutMs);
      try {
        return await check(settings, context, controller.signal);
      } finally {
        clearTimeout(timer);
      }
    });
    // Whatever the auth service said (or the abort made of its answer), nobody is left to hear it.
    if (watched === undefined || watched.clientGone) return recordClientGone(context);
    const verdict = watched.result;
    // Its listener answered 408 meanwhile (an upload that missed `limits.requestTimeout` while the
    // check held it unread), its client still connected: that answer is the request's; no verdict
    // is sent after it, and a pass must not send the cut-short upload upstream.
    if (endAnsweredByListener(context)) return;
    if (!verdict.pass) return denyAccess(context, verdict.denial);
    for (const name of settings.authResponseHeaders) {
      const value = verdict.headers[name];
      if (value !== undefined) context.upstream.headers[name] = value;
    }
    return next();
  };
}

/** Why a check was aborted at its deadline; the reason of its signal (`CLIENT_GONE` when its client left). */
const CHECK_TIMED_OUT = new Error('the authentication service did not answer in time');

/** Asks the auth service about the request, the whole answer read within `signal`; never rejects. */
async function check(settings: ForwardAuthSettings, context: GatewayContext, signal: AbortSignal): Promise<Verdict> {
  let answer;
  try {
    answer = await request(settings.address, {
      method: 'GET',
      headers: authRequestHeaders(context),
      headersTimeout: settings.timeoutMs,
      bodyTimeout: settings.timeoutMs,
      signal,
      dispatcher: (authDispatcher ??= new Agent({ connect: resumingConnector({}) })),
    });
  } catch {
    return unavailable('the authentication service did not answer');
  }
  if (answer.statusCode >= 200 && answer.statusCode < 300) {
    // The verdict is the whole answer, as Traefik reads it: a 2xx cut off (the auth service
    // failed mid-answer) or not finished within `timeout` is no pass. undici's `dump()` settled
    // alike for a body that ended and for one that failed, so either let the request on.
    try {
      await drain(answer.body);
    } catch {
      return unavailable('the authentication service did not finish its answer');
    }
    return { pass: true, headers: answer.headers };
  }
  if (!isValidFinalStatus(answer.statusCode)) {
    await answer.body.dump().catch(() => undefined);
    return unavailable(`the authentication service answered with status ${answer.statusCode}, outside 200-599`);
  }
  const body = await boundedBody(answer.body).catch(() => Buffer.alloc(0));
  // A redirect (to a login page) is relayed as it is, like a refusal; counted like the gateway's own refusals.
  return { pass: false, denial: { status: answer.statusCode, reason: 'forward-auth-denied', message: '', relayed: { headers: pick(answer.headers), body } } };
}

function unavailable(message: string): Verdict {
  return { pass: false, denial: { status: 502, reason: 'auth-unavailable', message } };
}

/**
 * The request's headers as the upstream would get them at this point, as Traefik's forwardAuth
 * sends its request after the middleware before it: the gateway's `X-Consumer` and claim headers,
 * never the client's own (read from the client's headers, a spoofed `X-Consumer: root` or `X-User`
 * reached an auth service placed after `keyAuth` or `jwtAuth` that the upstream never got), the
 * forwarding headers of the trusted-proxy rule, and without what earlier layers removed.
 */
function authRequestHeaders(context: GatewayContext): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(context.upstream.headers)) if (value !== undefined && !NOT_FORWARDED.has(name) && !name.startsWith(':')) headers[name] = value;
  headers['x-forwarded-method'] = context.request.method ?? 'GET';
  headers['x-forwarded-proto'] ??= context.secure ? 'https' : 'http';
  if (headers['x-forwarded-host'] === undefined && context.request.headers.host !== undefined) headers['x-forwarded-host'] = context.request.headers.host;
  // The path as the gateway reads it at this point (normalised, and as rewritten by the layers
  // before), which is what the upstream gets, as Traefik sends its request's URI after its own
  // path sanitising and middleware: the client's raw `/guarded/x/../admin` let an auth service that
  // decides by path allow what the upstream then served as `/guarded/admin`.
  headers['x-forwarded-uri'] = context.upstream.path;
  headers['x-forwarded-for'] = context.clientIp;
  // The request's id as the upstream and the access log have it (the client's when it was sane,
  // else the one the gateway made), so the auth service's log lines meet the gateway's.
  if (context.requestId !== '') headers[REQUEST_ID_HEADER] = context.requestId;
  return headers;
}

/** Reads `body` to its end, keeping none of it; rejects when it fails or is aborted before its end. */
async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of body) void chunk;
}

async function boundedBody(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size >= MAX_RELAYED_BODY_BYTES) continue;
    chunks.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(chunks).subarray(0, MAX_RELAYED_BODY_BYTES);
}

function pick(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const picked: Record<string, string | string[]> = {};
  for (const name of RELAYED_HEADERS) if (headers[name] !== undefined) picked[name] = headers[name];
  return picked;
}
