// The one rule both listeners (HTTP/1.1 and HTTP/2) apply to a request's `Expect` field, and when they send `100 Continue`.
import type { Readable } from 'node:stream';

/**
 * Whether the gateway meets the expectation of a request whose `Expect` field is `value`: true when
 * each of its members (a comma-separated list, empty members skipped, spaces around them trimmed)
 * is `100-continue` in any case (RFC 9110 §10.1.1: the only expectation defined, its token
 * case-insensitive), the gateway then sending `100 Continue`; false, for a 417, when any member is
 * something else, `100-continue` with parameters included (RFC 9110 lets a server answer 417 to an
 * expectation it does not support). Stricter than node:http, whose regular expression takes any
 * field that holds `100-continue` between non-word characters (`100-continue, foo`, `x-100-continue`),
 * as node:http2 takes only `100-continue` exactly.
 */
export function meetsExpectation(value: string | readonly string[] | undefined): boolean {
  const members = (typeof value === 'string' ? [value] : (value ?? [])).flatMap((field) => field.split(','));
  let continues = false;
  for (const member of members) {
    const expectation = member.trim();
    if (expectation === '') continue;
    if (expectation.toLowerCase() !== '100-continue') return false;
    continues = true;
  }
  return continues;
}

/** What `continueOnFirstRead` needs of a response, HTTP/1.1's or HTTP/2's. */
interface ContinuableResponse {
  readonly headersSent: boolean;
  writeContinue(): unknown;
}

/**
 * Sends the `100 Continue` of a request whose expectation is met when its body is first read (the
 * proxy sending it upstream), as nginx sends it when it starts reading the body, not at once: an
 * answer the gateway gives before that (bodyLimit's 413 to a `Content-Length` over `maxSize`, an
 * access refusal, a 404) goes without one, and a client that waits for it never sends the body it
 * announced (RFC 9110 §10.1.1). Never once the answer's head is out: node reads an unread body on
 * by itself after an answer ends.
 */
export function continueOnFirstRead(request: Readable, response: ContinuableResponse): void {
  const read = request._read;
  request._read = function readAfterContinue(this: Readable, size: number): void {
    this._read = read;
    if (!response.headersSent) response.writeContinue();
    read.call(this, size);
  };
}
