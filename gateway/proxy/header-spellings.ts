import type { IncomingHttpHeaders } from 'node:http';

/**
 * A function that removes from a request's headers every other spelling of `names`: a name that
 * differs from one of them only in `_` against `-` (`x_user`, `x-user_id` beside `x-user-id`).
 * CGI-style upstreams (PHP, Rack, WSGI, Django's `META`) read all of them as one variable
 * (`HTTP_X_USER`), so a client could state beside a header the gateway sets (`X-Consumer`, a claim,
 * `X-Forwarded-For`) its own value, which such an upstream may believe instead. The names
 * themselves are left for the caller, which removes or keeps them by its own rule. Undefined when
 * `names` is empty. The usual request, with no `_` in any header name, costs one scan of the names.
 */
export function otherSpellingsRemover(names: Iterable<string>): ((headers: IncomingHttpHeaders) => void) | undefined {
  // Each name by its dashed spelling, which every spelling of it shares.
  const byDashed = new Map<string, string>();
  for (const name of names) {
    const lower = name.toLowerCase();
    byDashed.set(lower.replaceAll('_', '-'), lower);
  }
  if (byDashed.size === 0) return undefined;
  // A name spelt with `_` itself has its dashed spelling as another one, which the scan below skips.
  const dashedOthers = [...byDashed].filter(([dashed, name]) => dashed !== name).map(([dashed]) => dashed);
  return (headers) => {
    // Deleted only when there, which keeps the usual headers object out of dictionary mode.
    for (const name of dashedOthers) if (headers[name] !== undefined) delete headers[name];
    for (const name in headers) {
      if (!name.includes('_')) continue;
      const own = byDashed.get(name.replaceAll('_', '-'));
      if (own !== undefined && own !== name) delete headers[name];
    }
  };
}
