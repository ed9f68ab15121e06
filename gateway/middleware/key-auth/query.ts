// Query parameters of a request target, read and removed without building a URL object per request.

/** The first value of query parameter `name` in `target` (path and query), decoded; undefined when absent. */
export function queryParam(target: string, name: string): string | undefined {
  const mark = target.indexOf('?');
  if (mark === -1) return undefined;
  const value = new URLSearchParams(target.slice(mark + 1)).get(name);
  return value ?? undefined;
}

/**
 * `target` without any `name=` parameter, but those whose value (decoded) is `keptValue`; the rest of
 * the query is kept byte for byte, in order.
 */
export function withoutQueryParam(target: string, name: string, keptValue?: string): string {
  const mark = target.indexOf('?');
  if (mark === -1) return target;
  const kept = target
    .slice(mark + 1)
    .split('&')
    .filter((pair) => {
      const equals = pair.indexOf('=');
      if (decodeComponent(equals === -1 ? pair : pair.slice(0, equals)) !== name) return true;
      return keptValue !== undefined && decodeComponent(equals === -1 ? '' : pair.slice(equals + 1)) === keptValue;
    });
  return kept.length === 0 ? target.slice(0, mark) : `${target.slice(0, mark)}?${kept.join('&')}`;
}

/** A query name or value as `URLSearchParams` reads it (`+` is a space); as it is when its escapes are malformed. */
function decodeComponent(raw: string): string {
  return safeDecode(raw.replaceAll('+', ' '));
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
