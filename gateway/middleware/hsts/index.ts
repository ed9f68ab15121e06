import type { OutgoingHttpHeaders } from 'node:http';
import type { HstsSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';

const HEADER = 'strict-transport-security';

/** The Strict-Transport-Security value for `settings` (RFC 6797): `max-age` in whole seconds, then the flags. */
export function hstsValue(settings: HstsSettings): string {
  let value = `max-age=${Math.floor(settings.maxAgeMs / 1_000)}`;
  if (settings.includeSubDomains) value += '; includeSubDomains';
  if (settings.preload) value += '; preload';
  return value;
}

/**
 * Sets Strict-Transport-Security on every answer to a request that came over TLS (`context.secure`),
 * the upstream's and the gateway's own, replacing an upstream's value; plain-HTTP answers never get
 * it, as RFC 6797 §7.2 requires.
 */
export function hsts(settings: HstsSettings): Middleware {
  const value = hstsValue(settings);
  const hook = (_status: number, headers: OutgoingHttpHeaders) => {
    headers[HEADER] = value;
  };
  return async function hsts(context, next) {
    if (context.secure) {
      // The header on the response covers the gateway's own answers; the hook overrides an upstream's.
      context.response.setHeader(HEADER, value);
      context.responseHeaderHooks.push(hook);
    }
    await next();
  };
}
