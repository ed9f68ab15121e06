import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isLoopbackHost } from '../config/index.ts';

/** How a request may prove it holds the admin token. */
export interface Credentials {
  readonly headers: IncomingHttpHeaders;
  /** `?token=`; accepted only where a client cannot set headers (EventSource). */
  readonly queryToken?: string | null;
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750), or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization ?? '');
  return match?.[1];
}

/** Compares in constant time whatever the lengths: both sides are hashed first, so the length leaks nothing either. */
export function tokenMatches(expected: string, given: string | undefined | null): boolean {
  if (given === undefined || given === null) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(expected), digest(given));
}

/** True when the request carries `token` in its Authorization header, or in the query where that is allowed. */
export function isAuthorized(token: string, credentials: Credentials): boolean {
  return tokenMatches(token, bearerToken(credentials.headers.authorization)) || tokenMatches(token, credentials.queryToken);
}

/**
 * True when the Host header names this machine (`localhost`, 127.0.0.0/8, `[::1]`, with any port).
 * Without a token, the admin API answers only such requests: a web page cannot then read it through
 * DNS rebinding (an attacker's name re-pointed at 127.0.0.1 still arrives with the attacker's name).
 */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return isLoopbackHost(name);
}
