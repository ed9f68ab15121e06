/** A span of HTTP statuses, both ends included. */
export interface StatusRange {
  readonly from: number;
  readonly to: number;
}

/** The lowest status an error page may stand for: pages replace error answers only (4xx, 5xx). */
export const ERROR_PAGE_MIN_STATUS = 400;
/** The highest status an error page may stand for. */
export const ERROR_PAGE_MAX_STATUS = 599;

const STATUS_RANGE_HINT = 'expected a status (502), a class (5xx) or a range (500-599), within 400-599';

/**
 * The statuses an `errors` page key stands for: one status (`502`), a class (`5xx`, `4xx`) or a
 * range (`500-599`, Traefik's `status` form), all within 400–599; or why it is refused.
 */
export function parseStatusRange(text: string): StatusRange | string {
  const key = text.trim().toLowerCase();
  let range: StatusRange | undefined;
  if (/^\d{3}$/.test(key)) range = { from: Number(key), to: Number(key) };
  else if (/^[45]xx$/.test(key)) range = { from: Number(key[0]) * 100, to: Number(key[0]) * 100 + 99 };
  else {
    const match = /^(\d{3})\s*-\s*(\d{3})$/.exec(key);
    if (match) range = { from: Number(match[1]), to: Number(match[2]) };
  }
  if (range === undefined) return `"${text}": ${STATUS_RANGE_HINT}`;
  if (range.from > range.to) return `"${text}": the range ends before it starts`;
  if (range.from < ERROR_PAGE_MIN_STATUS || range.to > ERROR_PAGE_MAX_STATUS) return `"${text}": ${STATUS_RANGE_HINT} (1xx, 2xx and 3xx answers keep their bodies)`;
  return range;
}

/** The number of statuses `range` holds: the smaller, the more specific. */
export function statusRangeSpan(range: StatusRange): number {
  return range.to - range.from + 1;
}

/**
 * Two keys of the same span whose ranges overlap (`500-549` and `520-569`): no status may be
 * claimed by two pages equally specific, so which one it gets never depends on key order.
 * Returns the pair of keys, or undefined when the ranges are clear.
 */
export function ambiguousStatusRanges(ranges: ReadonlyMap<string, StatusRange>): readonly [string, string] | undefined {
  const entries = [...ranges];
  for (let i = 0; i < entries.length; i++) {
    for (let j = i + 1; j < entries.length; j++) {
      const [keyA, a] = entries[i]!;
      const [keyB, b] = entries[j]!;
      if (statusRangeSpan(a) === statusRangeSpan(b) && a.from <= b.to && b.from <= a.to) return [keyA, keyB];
    }
  }
  return undefined;
}
