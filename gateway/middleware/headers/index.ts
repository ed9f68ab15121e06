import type { OutgoingHttpHeaders } from 'node:http';
import type { HeaderPolicy, HostHeaderPolicy } from '../../config/types.ts';
import type { Middleware, ResponseHeadersHook } from '../../context.ts';
import { otherSpellingsRemover } from '../../proxy/header-spellings.ts';

/** Settings of the headers middleware; header names are matched case-insensitively. */
export interface HeadersOptions {
  /** Edits of the request sent upstream. */
  readonly request?: Partial<HeaderPolicy>;
  /** Edits of the response sent to the client: the upstream's answer, and the gateway's own (errors, refusals) as every response header hook does. */
  readonly response?: Partial<HeaderPolicy>;
  /** `pass` (default) keeps the client's Host, `upstream` sends the instance's `host:port`, anything else is sent as is. */
  readonly host?: HostHeaderPolicy;
}

/**
 * Sets, then removes, headers on the upstream request (and a client's spellings of them with
 * underscores, looked for only when the client sent a name with `_`) and, through a response header hook, on the response; applies the route's Host policy. Everything is prepared once: a request costs the
 * edits only.
 */
export function headers(options: HeadersOptions): Middleware {
  const requestSet = entries(options.request?.set);
  const requestRemove = names(options.request?.remove);
  // A client's spellings with underscores of what is set or removed go too: CGI-style upstreams read
  // `X_Tenant` as the `X-Tenant` the route set, or as the one it removed.
  const removeSpellings = otherSpellingsRemover([...requestSet.map(([name]) => name), ...requestRemove]);
  const responseHook = responseHeadersHook(options.response);
  const host = options.host ?? 'pass';
  return async function headers(context, next) {
    const upstream = context.upstream;
    for (const [name, value] of requestSet) upstream.headers[name] = value;
    for (const name of requestRemove) delete upstream.headers[name];
    removeSpellings?.(upstream.headers, context.underscoreNames);
    if (host === 'upstream') upstream.useInstanceHost = true;
    else if (host !== 'pass') upstream.host = host;
    if (responseHook) context.responseHeaderHooks.push(responseHook);
    await next();
  };
}

/** A hook applying `policy` to response headers, or undefined when the policy changes nothing. */
function responseHeadersHook(policy: Partial<HeaderPolicy> | undefined): ResponseHeadersHook | undefined {
  const set = entries(policy?.set);
  const remove = names(policy?.remove);
  if (set.length === 0 && remove.length === 0) return undefined;
  return (_status: number, headers: OutgoingHttpHeaders) => {
    for (const [name, value] of set) headers[name] = value;
    for (const name of remove) delete headers[name];
  };
}

function entries(set: Readonly<Record<string, string>> | undefined): (readonly [string, string])[] {
  return Object.entries(set ?? {}).map(([name, value]) => [name.toLowerCase(), value] as const);
}

function names(remove: readonly string[] | undefined): string[] {
  return (remove ?? []).map((name) => name.toLowerCase());
}
