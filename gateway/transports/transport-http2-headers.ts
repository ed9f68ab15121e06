import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { constants, type ClientHttp2Session, type IncomingHttpHeaders as Http2Headers, type OutgoingHttpHeaders as Http2OutgoingHeaders } from 'node:http2';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import { isLargeHead, outgoingHeaderList, requestHeaderBlockBound, SEND_HEADER_BLOCK_LENGTH } from '../../src/http2-limits.ts';
import type { GatewayContext } from '../context.ts';
import { upstreamRequestHeaders, withoutHopByHop } from '../proxy/hop-by-hop.ts';
import { HeadTooLargeError } from './transport-outcome.ts';

const { HTTP2_HEADER_AUTHORITY, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_SCHEME } = constants;

/**
 * HTTP/2 request headers: pseudo-headers from `context.upstream`, and no connection-specific ones
 * (RFC 9113 §8.2.2). A client's empty Host (RFC 9112 §3.2 allows one) makes no `:authority`:
 * nghttp2, node:http2's included, resets a stream whose `:authority` is empty with PROTOCOL_ERROR,
 * which counts against the instance, so a client could eject healthy instances; the instance's
 * address goes in its place, as for an HTTP/1.0 request without Host.
 */
export function requestHeaders(context: GatewayContext, pick: PickedEndpoint, scheme: 'http' | 'https'): Http2OutgoingHeaders {
  const { upstream, request } = context;
  const headers = upstreamRequestHeaders(upstream.headers) as Http2OutgoingHeaders;
  const authority = upstream.useInstanceHost ? pick.address : upstream.host || (headers.host as string | undefined) || pick.address;
  delete headers.host;
  // `te: trailers` is the one TE value HTTP/2 allows, and gRPC requires it (a gRPC-Web call `grpcWeb` translates has none).
  if (/\btrailers\b/i.test(String(request.headers.te ?? '')) || context.grpcWeb !== undefined) headers.te = 'trailers';
  headers[HTTP2_HEADER_METHOD] = upstream.method;
  headers[HTTP2_HEADER_PATH] = upstream.path;
  headers[HTTP2_HEADER_SCHEME] = scheme;
  headers[HTTP2_HEADER_AUTHORITY] = authority;
  return headers;
}

/** What node:http2 reports as a peer's maxHeaderListSize when the peer advertised none (RFC 9113 §6.5.2: unlimited). */
const UNADVERTISED_HEADER_LIST_SIZE = 2 ** 32 - 1;

/**
 * The failure of `headers` when they are not to be sent on `session`, else undefined: over the
 * SETTINGS_MAX_HEADER_LIST_SIZE its peer advertised, or larger than node:http2 sends in one header
 * block (`SEND_HEADER_BLOCK_LENGTH`). The setting is advisory (RFC 9113 §6.5.2), yet a head past it
 * is refused (node:http2 resets it with ENHANCE_YOUR_CALM); a head past the block length node:http2
 * would refuse itself, closing the session under every other stream on it. Not sent, either is the
 * client's 431 at once, as Go's and Netty's HTTP/2 clients fail such a request before writing it.
 */
export function unsendableHead(session: ClientHttp2Session, headers: Http2OutgoingHeaders): HeadTooLargeError | undefined {
  const head = outgoingHeaderList(headers);
  const limit = session.remoteSettings.maxHeaderListSize;
  if (limit !== undefined && limit < UNADVERTISED_HEADER_LIST_SIZE && head.size > limit) {
    return new HeadTooLargeError(`the request head (${head.size} bytes as RFC 7541 counts them) is over the ${limit} the upstream advertised as its SETTINGS_MAX_HEADER_LIST_SIZE`);
  }
  const bound = requestHeaderBlockBound(head);
  if (bound > SEND_HEADER_BLOCK_LENGTH) return new HeadTooLargeError(`the request head (${bound} bytes as nghttp2 bounds it) is larger than node:http2 sends in one header block (${SEND_HEADER_BLOCK_LENGTH})`);
  return undefined;
}

/**
 * The class of an upstream's refusal of the request before its answer (`upstream-refused`) that
 * sent `headers`: `header-too-large` (431) when the head is large (`isLargeHead`), which is what
 * such a refusal means from node:http2 with its defaults; else the refusal as it is (502).
 */
export function refusalClassOf(headers: Http2OutgoingHeaders): 'header-too-large' | 'upstream-refused' {
  return isLargeHead(outgoingHeaderList(headers)) ? 'header-too-large' : 'upstream-refused';
}

/** The upstream's response headers for the client: without pseudo-headers and hop-by-hop ones. */
export function responseHeaders(headers: Http2Headers): OutgoingHttpHeaders {
  const result = withoutHopByHop(headers as IncomingHttpHeaders);
  for (const name of Object.keys(result)) if (name.startsWith(':')) delete result[name];
  return result;
}
