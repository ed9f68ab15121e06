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
