import type { RedirectRegexSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { originalTarget, requestHost, sendRedirect } from '../redirect-scheme/redirect.ts';

/**
 * Redirects a request whose URL as the client sent it (`http[s]://host[:port]/path?query`) matches
 * `regex` to that URL with its first match replaced by `replacement` (`$1`, `$<name>` groups, as
 * `String.prototype.replace` reads them): Traefik's redirectRegex, nginx's `rewrite … redirect`.
 * The status is `sendRedirect`'s (`permanent`: 301/308). A request that does not match passes
 * through, and so does one whose replacement gives back the same URL (it would redirect to itself
 * forever), and one whose Host is no host name (no URL can be built from it).
 */
export function redirectRegex(settings: RedirectRegexSettings): Middleware {
  const regex = new RegExp(settings.regex);
  const { replacement, permanent } = settings;
  return async function redirectRegex(context, next) {
    const host = requestHost(context);
    if (!host) return next();
    const url = `${context.secure ? 'https' : 'http'}://${host.name}${host.port}${originalTarget(context.request.url ?? '/')}`;
    if (!regex.test(url)) return next();
    const location = url.replace(regex, replacement);
    if (location === url) return next();
    sendRedirect(context, location, permanent);
  };
}
