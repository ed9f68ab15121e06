import type { IncomingHttpHeaders } from 'node:http';

/**
 * Removes from a request's headers every other spelling of the names it was made for, and says
 * whether a name with `_` is left after it (one that is no other spelling of them). With `scan`
 * false (the client sent no name with `_`: `GatewayContext.underscoreNames`), only the dashed
 * spellings of names configured with `_` are looked up, and it returns false.
 */
export type SpellingRemover = (headers: IncomingHttpHeaders, scan?: boolean) => boolean;

/**
 * A function that removes from a request's headers every other spelling of `names`: a name that
 * differs from one of them only in `_` against `-` (`x_user`, `x-user_id` beside `x-user-id`).
 * CGI-style upstreams (PHP, Rack, WSGI, Django's `META`) read all of them as one variable
 * (`HTTP_X_USER`), so a client could state beside a header the gateway sets (`X-Consumer`, a claim,
 * `X-Forwarded-For`) its own value, which such an upstream may believe instead. The names
 * themselves, every spelling listed in `names`, are left for the caller, which removes or keeps
 * them by its own rule (a route that sets `X-Tenant` and removes `X_Tenant` keeps its own). Undefined
 * when `names` is empty. The usual request, with no `_` in any header name, costs one scan of the
 * names, or none when the caller knows the client sent no such name.
 */
export function otherSpellingsRemover(names: Iterable<string>): SpellingRemover | undefined {
  // Every listed spelling by its dashed spelling, which every spelling of a name shares.
  const byDashed = new Map<string, Set<string>>();
  for (const name of names) {
    const lower = name.toLowerCase();
    const dashed = lower.replaceAll('_', '-');
    let spellings = byDashed.get(dashed);
    if (!spellings) byDashed.set(dashed, (spellings = new Set()));
    spellings.add(lower);
  }
  if (byDashed.size === 0) return undefined;
  // A name listed only with `_` has its dashed spelling as another one, which the scan below skips.
  const dashedOthers = [...byDashed].filter(([dashed, spellings]) => !spellings.has(dashed)).map(([dashed]) => dashed);
  return (headers, scan = true) => {
    // Deleted only when there, which keeps the usual headers object out of dictionary mode.
    for (const name of dashedOthers) if (headers[name] !== undefined) delete headers[name];
    if (!scan) return false;
    let left = false;
    for (const name in headers) {
      if (!name.includes('_')) continue;
      const own = byDashed.get(name.replaceAll('_', '-'));
      if (own !== undefined && !own.has(name)) delete headers[name];
      else left = true;
    }
    return left;
  };
}
