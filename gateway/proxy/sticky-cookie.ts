import type { OutgoingHttpHeaders } from 'node:http';
import { cookieValue } from '../../src/balance/picker-subset.ts';
import type { PickContext } from '../../src/balance/picker.ts';
import { stickyId } from '../../src/balance/sticky.ts';
import type { StickyCookie } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';

/**
 * The pick context of a request to a service with sticky sessions: `sticky` holds the id its cookie
 * names, if any. Registers the response header hook that sets the cookie to the instance that
 * answered when it is not the one named (a first request, a forged or stale id, a failover, a
 * retry): HAProxy's `cookie … insert` and Traefik's sticky cookie. The cookie goes upstream as
 * the client sent it (Traefik's way, not HAProxy's `indirect`): its value is opaque, and rewriting
 * the Cookie header would touch the application's own cookies.
 */
export function stickyPickContext(context: GatewayContext, cookie: StickyCookie): PickContext {
  const headers = context.request.headers;
  const named = cookieValue(headers.cookie, cookie.name);
  context.responseHeaderHooks.push(stickyCookieHook(cookie, context.service, named));
  const base = { clientIp: context.clientIp, url: context.upstream.path, headers };
  return named === undefined || named === '' ? base : { ...base, sticky: named };
}

/**
 * Sets the sticky cookie on an upstream's answer when the instance that answered (the request's
 * last attempt) is not the one `named`; the gateway's own answers (errors, refusals) set none, so a
 * client keeps its instance across a failure the gateway answered.
 */
function stickyCookieHook(cookie: StickyCookie, service: string, named: string | undefined): (status: number, headers: OutgoingHttpHeaders, context: GatewayContext) => void {
  return (_status, headers, context) => {
    const { errorClass, upstream } = context.outcome;
    if (errorClass !== undefined || upstream === undefined) return;
    const id = stickyId(service, upstream);
    if (id === named) return;
    appendSetCookie(headers, setCookieValue(cookie, id));
  };
}

/** The `Set-Cookie` value naming instance `id` with `cookie`'s attributes. */
export function setCookieValue(cookie: StickyCookie, id: string): string {
  let value = `${cookie.name}=${id}; Path=${cookie.path}`;
  if (cookie.maxAgeSeconds !== undefined) value += `; Max-Age=${cookie.maxAgeSeconds}`;
  if (cookie.secure) value += '; Secure';
  if (cookie.httpOnly) value += '; HttpOnly';
  if (cookie.sameSite !== undefined) value += `; SameSite=${SAME_SITE[cookie.sameSite]}`;
  return value;
}

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;

/** Adds `value` to the answer's cookies, after those the upstream set. */
function appendSetCookie(headers: OutgoingHttpHeaders, value: string): void {
  const existing = headers['set-cookie'];
  if (existing === undefined) headers['set-cookie'] = [value];
  else if (Array.isArray(existing)) headers['set-cookie'] = [...existing, value];
  else headers['set-cookie'] = [String(existing), value];
}
