/** The client connection preface of HTTP/2 (RFC 9113 §3.4), which a client with prior knowledge sends first. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** What a plaintext connection speaks, judged by its first bytes. */
export type SniffedProtocol = 'h2c' | 'http/1.1';

/**
 * For `peekSocket` on a plaintext port: `h2c` once the whole 24-byte preface has arrived,
 * `http/1.1` at the first byte that departs from it (the first byte of every HTTP/1.1 method but
 * `PRI` already does), undefined while the bytes so far are a prefix of the preface.
 */
export function sniffPreface(bytes: Buffer): SniffedProtocol | undefined {
  const length = Math.min(bytes.length, HTTP2_PREFACE.length);
  if (bytes.compare(HTTP2_PREFACE, 0, length, 0, length) !== 0) return 'http/1.1';
  return length === HTTP2_PREFACE.length ? 'h2c' : undefined;
}
