/**
 * How one upstream attempt failed, as classified at the socket boundary. `http-5xx` is a response
 * the upstream chose to send; `cancelled` means the client went away, which says nothing about
 * the upstream and so never counts against it.
 */
export type UpstreamErrorClass =
  | 'connect-refused'
  | 'connect-timeout'
  | 'reset-before-headers'
  | 'reset-after-headers'
  | 'headers-timeout'
  | 'body-timeout'
  | 'http-5xx'
  | 'cancelled';

/** The outcome of one upstream attempt, reported once per pick by the proxy. */
export interface UpstreamOutcome {
  /** False for a 5xx response or any transport error. */
  readonly ok: boolean;
  /** From the pick to the end of the response (or the failure), in milliseconds. */
  readonly latencyMs: number;
  /** Set when `ok` is false; a failure without a class counts as a server-side error. */
  readonly errorClass?: UpstreamErrorClass;
}

/** True when the outcome should count against the upstream: any failure except a client cancel. */
export function isUpstreamFailure(outcome: UpstreamOutcome): boolean {
  return !outcome.ok && outcome.errorClass !== 'cancelled';
}
