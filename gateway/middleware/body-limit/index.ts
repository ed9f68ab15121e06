import type { IncomingMessage } from 'node:http';
import type { BodyLimitSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';

/** The `error` code of the gateway's answer to a body over the limit. */
export const BODY_TOO_LARGE = 'body-too-large';

const MESSAGE = 'the request body is larger than this route allows';

/** True when the request announces (`content-length`) a body of more than `maxBytes`. */
export function announcesMoreThan(headers: IncomingMessage['headers'], maxBytes: number): boolean {
  const length = headers['content-length'];
  return length !== undefined && Number(length) > maxBytes;
}

/**
 * Answers 413 `body-too-large` in the upstream's place. Over HTTP/1.1, with the body still on its
 * way, the answer says `connection: close` and the connection lingers after it, as every answer the
 * gateway gives by itself does (`closingUnreadBody`): the body is read and dropped until the client
 * stops sending, never read to its end on a kept-alive connection (nginx's client_max_body_size
 * answer closes it too).
 */
function refuse(context: GatewayContext): void {
  sendErrorAnswer(context, 413, BODY_TOO_LARGE, MESSAGE);
}

/**
 * Bounds request bodies to `maxBytes` (nginx's client_max_body_size): a request whose
 * `content-length` is over it is answered 413 `body-too-large` before any upstream is tried, and
 * none of its body is sent anywhere. A body without `content-length` passes.
 */
export function bodyLimit(settings: BodyLimitSettings): Middleware {
  const { maxBytes } = settings;
  return async function bodyLimit(context, next) {
    if (announcesMoreThan(context.request.headers, maxBytes)) return refuse(context);
    await next();
  };
}
