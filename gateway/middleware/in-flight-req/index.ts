import type { InFlightReqSettings } from '../../config/types.ts';
import { afterResponse, type Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { requestKeyReader } from '../request-key.ts';

/** The error class of a request refused because its key already had `amount` requests in flight; no upstream was involved. */
export const IN_FLIGHT_LIMITED = 'in-flight-limit';

const DONE: Promise<void> = Promise.resolve();

/**
 * Lets at most `amount` requests of one key be in flight at once through this middleware (Traefik's
 * `inFlightReq`, nginx's `limit_conn`); the next gets 429 `in-flight-limit` at once, until one of
 * them has finished. A request is in flight until the chain inside has finished with it: its answer
 * has ended (or failed), and an upgraded connection (a WebSocket) has closed. Counts are this
 * process's own and only keys with a request in flight are held, so memory follows the requests
 * in flight, not the clients seen.
 */
export function inFlightReq(settings: InFlightReqSettings): Middleware {
  const { amount } = settings;
  const keyOf = requestKeyReader(settings.key, settings.ipv6Subnet);
  const counts = new Map<string, number>();
  const release = (key: string): void => {
    const left = (counts.get(key) ?? 1) - 1;
    if (left <= 0) counts.delete(key);
    else counts.set(key, left);
  };
  return function inFlightReq(context, next) {
    const key = keyOf(context);
    const held = counts.get(key) ?? 0;
    if (held >= amount) {
      sendErrorAnswer(context, 429, IN_FLIGHT_LIMITED, `too many requests in flight (${amount} at most); retry once one has finished`);
      return DONE;
    }
    counts.set(key, held + 1);
    // The chain settles once the answer has ended, but an upgrade's (a WebSocket's) at its handshake:
    // its response closes with the tunnel, as the access log waits for it too.
    const settled = (): void => afterResponse(context.response, release, key);
    let inner: Promise<void>;
    try {
      inner = next();
    } catch (error) {
      settled();
      throw error;
    }
    return inner.then(settled, (error: unknown) => {
      settled();
      throw error;
    });
  };
}
