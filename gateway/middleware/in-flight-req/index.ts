import type { InFlightReqSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { requestKeyReader } from '../request-key.ts';

/** The error class of a request refused because its key already had `amount` requests in flight; no upstream was involved. */
export const IN_FLIGHT_LIMITED = 'in-flight-limit';

const DONE: Promise<void> = Promise.resolve();

/**
 * Lets at most `amount` requests of one key be in flight at once through this middleware (Traefik's
 * `inFlightReq`, nginx's `limit_conn`); the next gets 429 `in-flight-limit` at once, until one of
 * them has finished. A request is in flight until its answer has ended (or failed, or its client
 * left), and an upgraded connection (a WebSocket) has closed; work the chain does after that for
 * itself (a `cache` reading a body on into its copy) is no request of the client's. Counts are this
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
    const response = context.response;
    let holding = true;
    const free = (): void => {
      if (!holding) return;
      holding = false;
      release(key);
    };
    // The client's answer ending frees the slot even when the chain goes on after it: a `cache`
    // reading a body on for its copy once the client's 206, 304 or HEAD was sent (or the client
    // left) holds no request of the client's. An upgrade's response (a WebSocket's) closes with its tunnel.
    response.once('close', free);
    // The chain settles once the answer has ended (or the upgrade's handshake is done): a response
    // ended is free now, a tick before its 'close'.
    const settled = (): void => {
      if (response.writableEnded || response.destroyed) free();
    };
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
