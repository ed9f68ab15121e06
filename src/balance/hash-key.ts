import type { PickContext } from './picker.ts';

/** Where the consistent-hash key of a request comes from. Header names match case-insensitively, cookie and query names exactly. */
export type HashKeySource =
  | { readonly from: 'client-ip' }
  | { readonly from: 'header'; readonly name: string }
  | { readonly from: 'cookie'; readonly name: string }
  | { readonly from: 'path' }
  | { readonly from: 'query'; readonly name: string };

/** Reads the hash key of a request, or undefined when the request does not carry it. */
export function hashKeyOf(source: HashKeySource, context: PickContext): string | undefined {
  switch (source.from) {
    case 'client-ip':
      return context.clientIp || undefined;
    case 'header':
      return headerValue(context, source.name.toLowerCase());
    case 'cookie':
      return cookieValue(headerValue(context, 'cookie'), source.name);
    case 'path': {
      const url = context.url;
      if (!url) return undefined;
      const query = url.indexOf('?');
      return query === -1 ? url : url.slice(0, query);
    }
    case 'query': {
      const url = context.url;
      const query = url?.indexOf('?') ?? -1;
      if (!url || query === -1) return undefined;
      return new URLSearchParams(url.slice(query + 1)).get(source.name) ?? undefined;
    }
  }
}

function headerValue(context: PickContext, name: string): string | undefined {
  const value = context.headers?.[name];
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : value.join(name === 'cookie' ? '; ' : ', ');
  return text === '' ? undefined : text;
}

/** The raw value of cookie `name` from a Cookie header (RFC 6265 `name=value` pairs split by `;`). */
function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue;
    const value = pair.slice(equals + 1).trim();
    return value === '' ? undefined : value;
  }
  return undefined;
}
