/**
 * Decodes base64 text that arrives in pieces cut anywhere (`application/grpc-web-text` bodies):
 * the whole 4-character groups of what came so far are decoded at once, the rest (fewer than 4
 * characters) waits for the next piece. A group with padding ends a run and the text after it
 * decodes on its own, since each piece written may carry its own padding (Envoy and the gateway
 * encode each chunk of an answer so); Node's decoder alone would stop at the first `=`.
 */
export class Base64Stream {
  /** Characters of the last piece past its whole groups, not decoded yet. */
  pending = '';

  /**
   * The bytes of the whole groups of what is pending and `text`; empty when there are none yet.
   * Characters outside base64 are skipped, as Node's decoder skips them, unless `strict`: then a
   * whole group that is not base64 (a character outside it, padding anywhere but at the group's
   * end) throws a `Base64Error`, as Envoy refuses such a body.
   */
  decode(text: string, strict = false): Buffer {
    const all = this.pending + text;
    const whole = all.length - (all.length % 4);
    if (strict) {
      const bad = firstBadGroup(all, whole);
      if (bad !== -1) throw new Base64Error(`a character outside base64, or padding within a group, at or after offset ${bad} of the base64`);
    }
    this.pending = all.slice(whole);
    // Each run is written into one buffer: joined as they came, a body of padded groups
    // ("AA==AA==…") cost time in the square of its length.
    const decoded = Buffer.allocUnsafe((whole / 4) * 3);
    let length = 0;
    let start = 0;
    while (start < whole) {
      const padding = all.indexOf('=', start);
      const end = padding === -1 || padding >= whole ? whole : padding + 4 - (padding % 4);
      length += decoded.write(all.slice(start, end), length, 'base64');
      start = end;
    }
    return decoded.subarray(0, length);
  }
}

/** A base64 text that is not (`Base64Stream.decode`, strict). */
export class Base64Error extends Error {}

/** A character outside base64's alphabet and its padding. */
const NOT_BASE64 = /[^A-Za-z0-9+/=]/;

/**
 * The offset of the first of `text`'s first `whole` characters' 4-character groups that is not
 * base64 (a character outside it, padding anywhere but `xx==` or `xxx=`), -1 when all are: one
 * search for a foreign character, then a look at each `=`, so a plain body costs one scan.
 */
function firstBadGroup(text: string, whole: number): number {
  const head = whole === text.length ? text : text.slice(0, whole);
  const foreign = head.search(NOT_BASE64);
  if (foreign !== -1) return foreign - (foreign % 4);
  for (let padding = head.indexOf('='); padding !== -1; padding = head.indexOf('=', padding + 1)) {
    const place = padding % 4;
    // `=` first or second in its group, or third without a fourth after it.
    if (place < 2 || (place === 2 && head.charCodeAt(padding + 1) !== 61)) return padding - place;
    if (place === 2) padding += 1;
  }
  return -1;
}
