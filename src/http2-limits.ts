/**
 * node:http2's `maxHeaderListPairs` for an upstream's answers (proxied traffic and health checks
 * alike): past this many fields in a response head or its trailers it resets the stream, which the
 * gateway saw as the instance's reset before headers (502, a gRPC call UNAVAILABLE, counted against
 * it; a gRPC health check failed). Its default, 128, refused a gRPC server's answer of some 125
 * metadata entries, which an HTTP/1.1 upstream's would pass with; the size of a head stays bounded by
 * the session's maxHeaderListSize (node's 64 KiB), which fits about this many of the smallest fields
 * (32 bytes each, RFC 7541 §4.1).
 */
export const UPSTREAM_HEADER_PAIRS = 2_000;

/**
 * node:http2's default `maxHeaderListPairs`, pseudo-headers included: a server with its defaults
 * resets a request head of more fields with ENHANCE_YOUR_CALM before any handler sees it.
 */
export const NODE_DEFAULT_HEADER_PAIRS = 128;

/**
 * The RFC 7541 size past which a request head is large: node:http's default `maxHeaderSize` (an
 * HTTP/1.1 upstream answers a larger head 431) and the gateway's own default `limits.maxHeaderSize`.
 */
export const LARGE_HEADER_LIST_SIZE = 16_384;

/** RFC 7541 §4.1's size of one header field: its name and value plus 32, as node:http2 counts it against maxHeaderListSize. */
function fieldSize(name: string, value: string): number {
  // node's header strings hold one character per byte.
  return name.length + value.length + 32;
}

/** RFC 7541 §4.1's size of a header list received (`rawHeaders`, name and value in turn, pseudo-headers included). */
export function headerListSize(rawHeaders: readonly string[]): number {
  let size = 0;
  for (let index = 0; index < rawHeaders.length; index += 2) size += fieldSize(rawHeaders[index]!, rawHeaders[index + 1]!);
  return size;
}

/** The fields of a head node:http2 is to send (an array value is a field per element) and their RFC 7541 size, as `headerListSize` counts them. */
export function outgoingHeaderList(headers: Readonly<Record<string, string | number | readonly string[] | undefined>>): { fields: number; size: number } {
  let fields = 0;
  let size = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'object') {
      for (const element of value) size += fieldSize(name, element);
      fields += value.length;
    } else {
      size += fieldSize(name, String(value));
      fields += 1;
    }
  }
  return { fields, size };
}

/**
 * The most node:http2 sends as one header block: its `maxSendHeaderBlockLength`, 64 KiB by default,
 * which the gateway's upstream sessions keep. A request head past it is not sent: nghttp2 refuses
 * the stream (REFUSED_STREAM) and node:http2 then closes the whole session.
 */
export const SEND_HEADER_BLOCK_LENGTH = 65_536;

/**
 * The size nghttp2 holds a request head of `fields` fields and RFC 7541 `size` to against
 * `SEND_HEADER_BLOCK_LENGTH`, before compressing it: `nghttp2_hd_deflate_bound` (12, and each
 * field's name and value plus 12) and the 5 bytes of a priority, whatever HPACK would make of it.
 */
export function requestHeaderBlockBound(head: { readonly fields: number; readonly size: number }): number {
  return 17 + head.size - 20 * head.fields;
}

/** Whether a head of `fields` fields and RFC 7541 `size` is large: past node:http2's default field limit or `LARGE_HEADER_LIST_SIZE`. */
export function isLargeHead(head: { readonly fields: number; readonly size: number }): boolean {
  return head.fields > NODE_DEFAULT_HEADER_PAIRS || head.size > LARGE_HEADER_LIST_SIZE;
}
