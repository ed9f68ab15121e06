import type { IncomingMessage } from 'node:http';
import type { PathSettings } from '../config/types.ts';
import type { GatewayContext } from '../context.ts';
import { sendErrorAnswer } from '../proxy/error-response.ts';
import { normalisePath, type PathErrorCode } from './path-normalise.ts';

/** Why the gateway refused a request target or its Host; each answers 400. */
export type RequestTargetErrorCode = PathErrorCode | 'duplicate-host' | 'invalid-host';

const MESSAGES: Readonly<Record<RequestTargetErrorCode, string>> = {
  'invalid-percent-encoding': 'the request path holds a % not followed by two hex digits',
  'nul-in-path': 'the request path holds a NUL character',
  'escaped-slash': 'the request path holds an encoded slash (%2F or %5C) or a backslash, which this gateway refuses',
  'duplicate-host': 'the request carries more than one Host header',
  'invalid-host': 'the Host header is not a host and optional port',
};

/**
 * Checks what routing relies on before the router sees it: exactly one Host header, whose value is
 * a host and optional port (RFC 9112 §3.2: a server MUST answer 400 to an invalid one, as nginx
 * does), and a normalised path (`normalisePath`), which replaces `context.upstream.path`
 * so that the route, its middleware and the upstream all see the same path. Answers 400 (JSON
 * with the request id, as other gateway answers) and returns false when the request is refused.
 */
export function prepareRequestTarget(context: GatewayContext, settings: PathSettings): boolean {
  if (hasSeveralHosts(context.request.rawHeaders)) return refuse(context, 'duplicate-host');
  const host = context.request.headers.host;
  if (host !== undefined && !isAuthorityText(host)) return refuse(context, 'invalid-host');
  const path = normalisePath(context.upstream.path, settings);
  if (typeof path !== 'string') return refuse(context, path.error);
  context.upstream.path = path;
  return true;
}

/**
 * Turns an absolute-form request (`GET http://a/x`, as sent to a proxy) into origin-form in place:
 * `url` becomes `/x` and the Host header becomes the target's authority, as RFC 9112 §3.2.2 asks
 * (the received Host is ignored). Everything downstream (routing, forwarding headers, the
 * upstream request) then sees one consistent request. Other targets are left alone.
 */
export function toOriginForm(request: IncomingMessage): void {
  const target = request.url;
  if (target === undefined || target.charCodeAt(0) === 47 /* / */) return;
  const absolute = splitAbsoluteTarget(target);
  if (!absolute) return;
  request.url = absolute.path;
  request.headers.host = absolute.authority;
}

/** `http(s)://authority/path?query` split into the authority (without userinfo) and an origin-form path; undefined for anything else. */
export function splitAbsoluteTarget(target: string): { authority: string; path: string } | undefined {
  const schemeEnd = target.indexOf('://');
  if (schemeEnd !== 4 && schemeEnd !== 5) return undefined;
  const scheme = target.slice(0, schemeEnd).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return undefined;
  const { host, end } = authorityBounds(target, schemeEnd + 3);
  const authority = target.slice(host, end);
  if (authority === '') return undefined;
  const rest = target.slice(end);
  return { authority, path: rest.charCodeAt(0) === 47 ? rest : `/${rest}` };
}

/**
 * Where the authority that begins at `start` in `target` ends (at the first `/`, `?` or `#`, or the
 * end) and where its host begins: after the last `@` of the authority, so that userinfo
 * (`alice:secret@`) is skipped, or at `start` when there is none.
 */
export function authorityBounds(target: string, start: number): { host: number; end: number } {
  let end = start;
  while (end < target.length) {
    const code = target.charCodeAt(end);
    if (code === 47 || code === 63 || code === 35) break;
    end += 1;
  }
  const at = target.lastIndexOf('@', end - 1);
  return { host: at >= start ? at + 1 : start, end };
}

/**
 * The bytes RFC 3986's `host [":" port]` is made of: unreserved, sub-delims, `%` (pct-encoded),
 * `:` and the brackets of an IP literal. Everything else (a space, `/`, a backslash, `@` of userinfo,
 * `?`, `#`, controls, non-ASCII) makes no authority: the upstream, its logs and the links it
 * builds from Host (or X-Forwarded-Host) would take it for one all the same.
 */
const AUTHORITY_BYTES = ((): Uint8Array => {
  const table = new Uint8Array(128);
  for (const char of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%:[]") table[char.charCodeAt(0)] = 1;
  return table;
})();

/** Whether `host` holds only `AUTHORITY_BYTES` (empty included: RFC 9112 §3.2 lets a client send an empty Host). */
export function isAuthorityText(host: string): boolean {
  for (let index = 0; index < host.length; index += 1) {
    const code = host.charCodeAt(index);
    if (code >= 128 || AUTHORITY_BYTES[code] === 0) return false;
  }
  return true;
}

function hasSeveralHosts(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (seen) return true;
    seen = true;
  }
  return false;
}

function refuse(context: GatewayContext, code: RequestTargetErrorCode): false {
  // The request was refused before its body was read: close rather than read an unknown body.
  sendErrorAnswer(context, 400, code, MESSAGES[code], { connection: 'close' });
  return false;
}
