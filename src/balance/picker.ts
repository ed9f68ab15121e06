import type { Instance } from '../discovery/instance.ts';
import type { UpstreamOutcome } from '../health/upstream-outcome.ts';

/** What a picker may read of a request. Every field is optional: a balancer that needs a missing one falls back to its own choice. */
export interface PickContext {
  /** The client address as the gateway sees it (after trusted `X-Forwarded-For` handling). */
  readonly clientIp?: string;
  /** The request target: path and optional query, e.g. `/users/7?tenant=a`. */
  readonly url?: string;
  /** Request headers with lower-case names, as node:http gives them. */
  readonly headers?: Readonly<Record<string, string | readonly string[] | undefined>>;
  /**
   * Addresses this request has tried already, set only on a retry's pick that first landed on one
   * of them: the balancer then chooses an eligible member not among them when there is one
   * (least-connections and p2c the least loaded such member; random a weighted draw among them;
   * weighted round-robin by nginx's smooth step over them; consistent hash the next owner clockwise
   * on its ring, or without a key a weighted draw; round-robin the first after its cursor, which
   * moves past it; the subset and canary pickers go past a subset that has only tried members).
   * Absent on a request's usual picks.
   */
  readonly tried?: readonly string[];
  /**
   * The sticky id (`stickyId`) the request's sticky cookie names: a balancer made with a sticky salt
   * picks that member when it may take traffic, counted as any pick; others ignore it.
   */
  readonly sticky?: string;
}

/** The outcome the proxy reports for a pick; alias of the health layer's `UpstreamOutcome`. */
export type PickOutcome = UpstreamOutcome;

/** What a pick released unused reports: `cancelled` frees its in-flight slot without feeding latency or health. */
export const UNUSED_PICK: PickOutcome = Object.freeze({ ok: false, latencyMs: 0, errorClass: 'cancelled' });

/** A chosen endpoint. The caller must call `done` exactly once when the attempt ends, however it ends. */
export interface PickedEndpoint {
  readonly kind: 'endpoint';
  readonly instance: Instance;
  /** `instanceAddress(instance)`. */
  readonly address: string;
  /**
   * Reports how the attempt went: releases the in-flight slot, feeds latency estimates and
   * passive health. Calls after the first are ignored, so a cleanup path may call it again safely.
   * A pick that is not used (a retry wanting another address) is released with `UNUSED_PICK`
   * (`{ ok: false, latencyMs: 0, errorClass: 'cancelled' }`), which counts neither for nor against it.
   */
  done(outcome: PickOutcome): void;
  /**
   * Reports the attempt's latency sample as the upstream's response head comes (`latencyMs`: from
   * when the request went out to that head), before `done`: p2c-ewma folds it in now rather than at
   * the end of the body, so a long download does not hold its estimate back, and a client that
   * leaves after the head (`done` then says `cancelled`) does not throw it away. Not called for a
   * failing answer (a 5xx), which `done` samples as a failure. Once per pick; calls
   * after the first, or after `done`, are ignored. Balancers without a latency estimate ignore it.
   */
  answered(latencyMs: number): void;
  /**
   * Keeps the in-flight slot past `done`, for a connection that outlives its attempt (a WebSocket
   * tunnel after its 101, counted as Envoy counts an upgraded stream and nginx's least_conn a
   * connection): `done` then reports the outcome at once but leaves the slot taken, and the returned
   * function releases it, once (later calls do nothing), whether before or after `done`. Call it
   * before `done`; called after `done`, or again, it holds nothing and returns a function that does
   * nothing. `done` must still be called exactly once.
   */
  hold(): () => void;
}

/**
 * Why nothing was picked: the service lists no instances (`no-instances`), or none may take
 * traffic now because of health or weight 0 (`no-healthy-instances`). The proxy answers 503.
 */
export interface NoEndpoint {
  readonly kind: 'none';
  readonly reason: 'no-instances' | 'no-healthy-instances';
}

/** The answer of a pick: never thrown, always one of these. */
export type PickResult = PickedEndpoint | NoEndpoint;

/** The endpoint a pick would choose now, without an attempt to report (nothing to `done`). */
export interface PeekedEndpoint {
  readonly kind: 'endpoint';
  readonly instance: Instance;
  readonly address: string;
}

/** The answer of a peek: what `pick` would answer now, with nothing counted. */
export type PeekResult = PeekedEndpoint | NoEndpoint;

/**
 * The data-path face of a balancer (grpc-js style). A picker's endpoint set never changes; a new
 * set means a new picker. Per-endpoint counters it shares with its balancer (in-flight counts,
 * latency, smooth-WRR weights) do move, which is how state survives from one picker to the next.
 */
export interface Picker {
  /** Chooses an endpoint for one attempt; synchronous, never throws. */
  pick(context: PickContext): PickResult;
  /**
   * The endpoint `pick(context)` would choose now, leaving every counter, cursor and weight as it
   * was (for the admin API's explain): for deterministic algorithms exactly the next pick; for
   * random ones (`random`, `p2c-ewma`, a hash without a key) one draw of the same distribution.
   */
  peek(context: PickContext): PeekResult;
}

/** A peek answer naming `endpoint` (a member or a pick's endpoint). */
export function peekedEndpoint(endpoint: { readonly instance: Instance; readonly address: string }): PeekedEndpoint {
  return { kind: 'endpoint', instance: endpoint.instance, address: endpoint.address };
}

const NO_INSTANCES: NoEndpoint = Object.freeze({ kind: 'none', reason: 'no-instances' });
const NO_HEALTHY_INSTANCES: NoEndpoint = Object.freeze({ kind: 'none', reason: 'no-healthy-instances' });

/** A picker that always answers `none` for `reason`; shared, allocation-free. */
export function nonePicker(reason: NoEndpoint['reason']): Picker {
  const result = reason === 'no-instances' ? NO_INSTANCES : NO_HEALTHY_INSTANCES;
  return { pick: () => result, peek: () => result };
}
