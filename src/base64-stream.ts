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

  /** The bytes of the whole groups of what is pending and `text`; empty when there are none yet. */
  decode(text: string): Buffer {
    const all = this.pending + text;
    const whole = all.length - (all.length % 4);
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
