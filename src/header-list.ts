/**
 * True when `expected` is a header's whole value or one of its comma-separated elements, the
 * header as node hands it over (`IncomingHttpHeaders`): a field sent on several lines arrives as
 * one value joined with ", " (RFC 9110 §5.3: the joined line means the same as the separate ones,
 * and it is what the upstream receives), `set-cookie` as an array; elements are trimmed of spaces
 * and tabs, and empty ones match nothing. So `X-Env: canary` sent twice, or beside
 * `X-Env: prod`, or as `X-Env: prod, canary`, has the value `canary`, as Traefik's Header matcher
 * finds it on any of the field's lines (Envoy compares the joined text whole, which the repeat
 * defeats). Allocates nothing; a value without a comma costs one comparison.
 */
export function headerHasValue(actual: string | readonly string[] | undefined, expected: string): boolean {
  if (actual === undefined) return false;
  if (typeof actual !== 'string') return actual.some((value) => headerHasValue(value, expected));
  if (actual === expected) return true;
  if (expected === '' || actual.indexOf(',') === -1) return false;
  for (let start = 0; start < actual.length; ) {
    let end = actual.indexOf(',', start);
    if (end === -1) end = actual.length;
    let first = start;
    let last = end;
    while (first < last && isSpace(actual.charCodeAt(first))) first += 1;
    while (last > first && isSpace(actual.charCodeAt(last - 1))) last -= 1;
    if (last - first === expected.length && actual.startsWith(expected, first)) return true;
    start = end + 1;
  }
  return false;
}

/** RFC 9110 OWS: space or horizontal tab. */
function isSpace(code: number): boolean {
  return code === 32 || code === 9;
}
