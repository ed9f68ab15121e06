import type { TokenSources } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { queryParam, withoutQueryParam } from '../key-auth/query.ts';

/**
 * The token a request carries: from the header (`Bearer <token>`; a header other than
 * Authorization may also hold the bare token), else the cookie, else the query parameter. The query
 * parameter is removed from the upstream path and from the request target the access log writes
 * whichever source the token came from: one beside a header token (or a repeat after the one read)
 * would reach the upstream unchecked, and an upstream that decodes a JWT without verifying it
 * (or reads a parameter's last value, as PHP and Rack do) would take it.
 */
export function readToken(context: GatewayContext, from: TokenSources): string | undefined {
  const token = tokenOf(context, from);
  if (from.query !== undefined && context.upstream.path.includes('?')) {
    context.upstream.path = withoutQueryParam(context.upstream.path, from.query);
    context.request.url = withoutQueryParam(context.request.url ?? '/', from.query);
  }
  return token;
}

function tokenOf(context: GatewayContext, from: TokenSources): string | undefined {
  if (from.header !== undefined) {
    const raw = context.request.headers[from.header];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value !== undefined) {
      const bearer = /^bearer\s+(\S+)\s*$/i.exec(value);
      if (bearer) return bearer[1];
      if (from.header !== 'authorization') return value.trim();
    }
  }
  if (from.cookie !== undefined) {
    const token = cookieValue(context.request.headers.cookie, from.cookie);
    if (token !== undefined) return token;
  }
  if (from.query !== undefined) {
    const token = queryParam(context.upstream.path, from.query);
    if (token !== undefined) return token;
  }
  return undefined;
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §5.4: `; `-separated pairs). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals !== -1 && pair.slice(0, equals).trim() === name) return pair.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return undefined;
}
