import type { KeyAuthSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { otherSpellingsRemover } from '../../proxy/header-spellings.ts';
import { ConsumerKeyIndex, denyAccess, identify } from '../consumers/index.ts';
import { queryParam, withoutQueryParam } from './query.ts';

export { queryParam, withoutQueryParam } from './query.ts';

/**
 * API keys (Kong's and APISIX's key-auth): the key from the header or, failing that, the query
 * parameter must belong to a consumer, who is then published as the `consumer` context variable
 * and named upstream in `X-Consumer`. No key or an unknown key answers 401 with a `WWW-Authenticate`
 * challenge. A key in the query is always removed from the request target the access log
 * writes; with `strip`, the header and the query parameter are both removed from the upstream
 * request, whichever of them the key was taken from. The client's other spellings of the header
 * (`X_API_Key`), which CGI-style upstreams read as the same variable, are never passed on: beside
 * the key the gateway checked (`strip: false`), or in its place, they would stand for it unchecked.
 */
export function keyAuth(settings: KeyAuthSettings): Middleware {
  const index = new ConsumerKeyIndex(settings.consumers);
  const removeKeyHeaderSpellings = settings.header === undefined ? undefined : otherSpellingsRemover([settings.header]);
  const challenge = `ApiKey realm="switchboard"${settings.header ? `, header="${settings.header}"` : ''}`;
  return async function keyAuth(context, next) {
    const key = readKey(context, settings);
    if (key === undefined || key === '') return denyAccess(context, { status: 401, reason: 'missing-credentials', message: 'an API key is required', challenge });
    const consumer = index.find(key);
    if (!consumer) return denyAccess(context, { status: 401, reason: 'invalid-key', message: 'the API key is not valid', challenge });
    identify(context, consumer);
    removeKeyHeaderSpellings?.(context.upstream.headers, context.underscoreNames);
    await next();
  };
}

/**
 * The key a request carries, the header's before the query's. Whichever holds it, a key in the
 * query parameter is removed from the request target the access log writes and, with `strip`, from
 * the upstream request, as a header key is: a client that sends both must not get either past.
 * Without `strip`, the query's values other than the checked key are removed upstream.
 */
function readKey(context: GatewayContext, settings: KeyAuthSettings): string | undefined {
  let key: string | undefined;
  if (settings.header !== undefined) {
    const value = context.upstream.headers[settings.header];
    if (value !== undefined) {
      if (settings.strip) delete context.upstream.headers[settings.header];
      key = Array.isArray(value) ? value[0] : value;
    }
  }
  if (settings.query === undefined) return key;
  const queryKey = queryParam(context.upstream.path, settings.query);
  if (queryKey !== undefined) {
    // Without `strip`, only the key checked goes on: another value beside it (a second parameter, or
    // a query key beside a header key) would stand for it unchecked before an upstream that reads
    // that one (PHP and Rack read a parameter's last value). The checked key itself stays where it is.
    context.upstream.path = withoutQueryParam(context.upstream.path, settings.query, settings.strip ? undefined : (key ?? queryKey));
    // The access log writes the client's request target after the response: it must not hold the
    // key, whether or not the upstream is to see it.
    context.request.url = withoutQueryParam(context.request.url ?? '/', settings.query);
  }
  return key ?? queryKey;
}
