import { metricsRegistry } from '../../../src/metrics.ts';
import type { GatewayContext } from '../../context.ts';
import { applyHeaderHooks } from '../../proxy/answer-headers.ts';
import { errorPageFor, withErrorPageHeaders } from '../../proxy/error-page.ts';
import { closingUnreadBody, sendErrorAnswer } from '../../proxy/error-response.ts';
import { CellCounter, type CounterCell } from '../../telemetry/metric-cells.ts';

/** Requests refused by access control, by route (empty before routing: an entry point's middleware) and reason. */
export const accessDeniedTotal = new CellCounter<'route' | 'reason'>(
  'switchboard_access_denied_total',
  'Requests refused by access control (401, 403), by route and reason.',
  ['route', 'reason'],
  metricsRegistry,
);

const cells = new Map<string, CounterCell>();

/** Why a request was refused: its status, a stable reason code, and what the client is told. */
export interface AccessDenial {
  readonly status: number;
  /** Stable code, the `error` of the JSON body and the `reason` label of the metric. */
  readonly reason: string;
  /** Said to the client; never carries the credential. */
  readonly message: string;
  /** `WWW-Authenticate` value of a 401 (RFC 7235). */
  readonly challenge?: string;
  /** `Retry-After` of a refusal the client may try again (a 503 while password checks are backed up). */
  readonly retryAfterSeconds?: number;
  /** An answer to pass on as it is (a forward-auth service's refusal) instead of the gateway's JSON. */
  readonly relayed?: { readonly headers: Readonly<Record<string, string | string[]>>; readonly body: Buffer };
}

/**
 * Answers a refused request in the gateway's JSON error shape (with the request id) and counts it.
 * Nothing is logged: a log line could carry what the client sent as a credential.
 */
export function denyAccess(context: GatewayContext, denial: AccessDenial): void {
  const key = `${context.routeName}\u0000${denial.reason}`;
  let cell = cells.get(key);
  if (!cell) {
    cell = accessDeniedTotal.cell({ route: context.routeName, reason: denial.reason });
    cells.set(key, cell);
  }
  cell.value += 1;
  if (denial.relayed) return relay(context, denial.status, denial.relayed);
  const headers: Record<string, string> = {};
  if (denial.challenge) headers['www-authenticate'] = denial.challenge;
  if (denial.retryAfterSeconds !== undefined) headers['retry-after'] = String(denial.retryAfterSeconds);
  sendErrorAnswer(context, denial.status, denial.reason, denial.message, headers);
}

function relay(context: GatewayContext, status: number, relayed: NonNullable<AccessDenial['relayed']>): void {
  context.outcome.status = status;
  context.outcome.errorClass = 'forward-auth-denied';
  const response = context.response;
  if (response.headersSent || response.destroyed) return;
  // An `errors` page for the status takes the auth service's body's place, as it does an upstream's.
  const page = errorPageFor(context, status);
  const body = page?.body ?? relayed.body;
  const headers = { ...relayed.headers, 'content-length': body.length, 'x-request-id': context.requestId, ...closingUnreadBody(context) };
  context.outcome.bytesOut = body.length;
  response.writeHead(status, applyHeaderHooks(context, status, page ? withErrorPageHeaders(headers, page) : headers));
  response.end(body);
}
