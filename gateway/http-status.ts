/**
 * Whether `status` is a final status the gateway answers with: 200–599. RFC 9110 defines none
 * outside, node:http2 refuses to send one (`ERR_HTTP2_STATUS_INVALID`), and an HTTP/1.1 client may
 * not know it either. An upstream's or an auth service's answer with another status is the
 * gateway's 502, whichever protocol the client speaks.
 */
export function isValidFinalStatus(status: number): boolean {
  return status >= 200 && status <= 599;
}
