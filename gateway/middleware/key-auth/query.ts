// Query parameters of a request target, read and removed without building a URL object per request.

/** The first value of query parameter `name` in `target` (path and query), decoded; undefined when absent. */
export function queryParam(target: string, name: string): string | undefined {
  const mark = target.indexOf('?');
  if (mark === -1) return undefined;
  const value = new URLSearchParams(target.slice(mark + 1)).get(name);
  return value ?? undefined;
}

/** `target` without any `name=` parameter; the rest of the query is kept byte for byte, in order. */
export function withoutQueryParam(target: string, name: string): string {
  const mark = target.indexOf('?');
  if (mark === -1) return target;
  const kept = target
    .slice(mark + 1)
    .split('&')
    .filter((pair) => {
      const equals = pair.indexOf('=');
      const raw = equals === -1 ? pair : pair.slice(0, equals);
      return safeDecode(raw.replaceAll('+', ' ')) !== name;
    });
  return kept.length === 0 ? target.slice(0, mark) : `${target.slice(0, mark)}?${kept.join('&')}`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
