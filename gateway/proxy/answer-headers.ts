import type { OutgoingHttpHeaders } from 'node:http';
import type { GatewayContext } from '../context.ts';

/**
 * Runs the request's response header hooks over one of the gateway's own answers (an error, a
 * refusal, a fallback), as the transports run them over an upstream's: `headers` is edited in
 * place and returned.
 */
export function applyHeaderHooks(context: GatewayContext, status: number, headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  for (const hook of context.responseHeaderHooks) hook(status, headers, context);
  return headers;
}
