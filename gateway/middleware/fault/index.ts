import type { FaultAbortSettings, FaultSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { isGrpcRequest } from '../../proxy/grpc-status.ts';
import { delayUnlessClientGone, endAnsweredByListener, recordClientGone } from '../client-gone.ts';
import { respond } from '../respond/index.ts';
import { faultCounters } from './fault-metrics.ts';

export { faultsInjectedTotal, faultsOverflowTotal } from './fault-metrics.ts';

/** The error class of a request a `fault` middleware aborted: the gateway's own answer, never an upstream's failure. */
export const FAULT_ABORT = 'fault-abort';

const ABORT_MESSAGE = 'aborted by fault injection';

/** Options of `fault` that do not come from the configuration. */
export interface FaultOptions {
  /** The name the middleware is declared under: its metrics' `middleware` label. */
  readonly name?: string;
  /** A number in [0, 1) per call, `Math.random` by default; tests pass a seeded source. */
  readonly random?: () => number;
}

/**
 * Injects faults (Envoy's HTTP fault filter, APISIX's fault-injection): each request draws once for
 * the delay and once for the abort (in that order; percentage 0 never, 100 always). A delayed request
 * waits `delay.durationMs` before the layers after it run, and one whose client goes away meanwhile
 * ends there (its timer cleared, nothing sent on). Then an aborted one gets the gateway's own answer
 * (`abort.status`, its body or the JSON error shape, a gRPC status to a gRPC caller) and never reaches
 * the layers after it, so no upstream is picked, tried or blamed; it is recorded with the error class
 * `fault-abort`. With `maxActive`, a request chosen while that many are delayed passes untouched.
 */
export function fault(settings: FaultSettings, options: FaultOptions = {}): Middleware {
  const { abort, delay } = settings;
  const maxActive = settings.maxActive ?? Number.POSITIVE_INFINITY;
  const random = options.random ?? Math.random;
  const counters = faultCounters(options.name ?? '');
  const answerAbort = abort && abortAnswer(abort);
  let active = 0;
  return async function fault(context, next) {
    const delayed = delay !== undefined && random() * 100 < delay.percentage;
    const aborted = answerAbort !== undefined && random() * 100 < abort!.percentage;
    if (!delayed && !aborted) return next();
    if (active >= maxActive) {
      counters.overflow.inc();
      return next();
    }
    active += 1;
    try {
      if (delayed) {
        counters.delay.inc();
        if (!(await delayUnlessClientGone(context, delay.durationMs))) return recordClientGone(context);
        // Its listener answered in its place meanwhile (a body that missed `limits.requestTimeout`
        // while the delay held it unread): that answer is the request's, and nothing goes on.
        if (endAnsweredByListener(context)) return;
      }
      if (aborted) {
        counters.abort.inc();
        return answerAbort(context);
      }
    } finally {
      active -= 1;
    }
    return next();
  };
}

/**
 * The abort's answer: with a `body` (or a status that has none) the status, body and Content-Type as
 * configured, sent as `respond` sends them; without one the gateway's JSON error shape with `fault-abort`;
 * to a gRPC caller a Trailers-Only gRPC status mapped from the HTTP status (Envoy's abort answers gRPC
 * calls with a gRPC status too), so a real gRPC client reads it as the failure it stands for.
 */
function abortAnswer(abort: FaultAbortSettings): (context: GatewayContext) => Promise<void> {
  const { status } = abort;
  const ownShape = abort.body !== undefined || status === 204 || status === 205 || status === 304;
  const own = respond({ status, body: abort.body, bodyFile: undefined, fileBody: undefined, contentType: abort.contentType, headers: {} });
  return async (context) => {
    if (!ownShape || isGrpcRequest(context.request.headers)) return sendErrorAnswer(context, status, FAULT_ABORT, ABORT_MESSAGE);
    await own(context, NO_INNER_LAYER);
    // A header hook that failed the answer made it a 500 `internal`: that class stays.
    context.outcome.errorClass ??= FAULT_ABORT;
  };
}

/** `respond` never calls the layers after it. */
const NO_INNER_LAYER = (): Promise<void> => Promise.resolve();
