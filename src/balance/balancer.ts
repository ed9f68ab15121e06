import type { Instance } from '../discovery/instance.ts';
import type { HostLoads } from './host-load.ts';
import type { PickOutcome, Picker } from './picker.ts';
import type { SlowStartOptions } from './slow-start.ts';

/** Names of every balancing algorithm, as configuration spells them. */
export const BALANCER_ALGORITHMS = ['random', 'round-robin', 'weighted-round-robin', 'least-connections', 'p2c-ewma', 'consistent-hash'] as const;

/** One of `BALANCER_ALGORITHMS`. */
export type BalancerAlgorithm = (typeof BALANCER_ALGORITHMS)[number];

/**
 * One endpoint as a balancer is fed it. `routable: false` keeps the endpoint's state (weights,
 * counts, latency, ring points) but sends it no traffic; weight 0 and a `draining` instance do the same.
 * `EndpointHealth` from the health layer fits this shape.
 */
export interface BalancerEndpoint {
  /** `instanceAddress(instance)`; members are matched across updates by it. */
  readonly address: string;
  readonly instance: Instance;
  readonly routable: boolean;
  /**
   * False for an endpoint routable only because its service panics (it fails its checks or is
   * ejected): the algorithm may pick it, a sticky cookie never takes a client there (Envoy's
   * stateful sessions honour healthy hosts only). Undefined: healthy.
   */
  readonly healthy?: boolean;
}

/** Told of every reported outcome after the balancer has used it; passive health listens here. */
export type OutcomeListener = (address: string, outcome: PickOutcome) => void;

/** Options every balancer accepts. */
export interface BalancerOptions {
  /** Called synchronously from `done()` of every pick. */
  readonly onOutcome?: OutcomeListener;
  /** For tests: uniform random source in [0, 1). */
  readonly random?: () => number;
  /** For tests: monotonic clock in milliseconds (`performance.now` by default). */
  readonly now?: () => number;
  /**
   * Ramps the weight of members that join after the first set (Envoy's slow start). Honoured by
   * the algorithms in `SLOW_START_ALGORITHMS`; the factory leaves it out for the others.
   */
  readonly slowStart?: SlowStartOptions;
  /**
   * For a subset's balancer: the service's own, on the same clock. A member new here whose address
   * ramps or waits to ramp there takes that slow start, even in a first set: subsets are made
   * lazily (at a route's first request, again after a reload) while instances may be ramping.
   */
  readonly slowStartParent?: Balancer;
  /**
   * For a subset's balancer: the service's balancer's `hostLoads`, so that requests in flight (and
   * p2c-ewma's latency estimates) are one per host across the service and its subsets, as Envoy
   * keeps one active-request count per host. Sharers must have the same algorithm and options.
   */
  readonly hostLoads?: HostLoads;
  /**
   * Turns sticky sessions on: a pick whose `PickContext.sticky` names an eligible member by
   * `stickyId(stickySalt, address)` takes it. Undefined (the default): pickers never read `sticky`.
   */
  readonly stickySalt?: string;
}

/** What a balancer reports of one member, e.g. for the admin view. */
export interface MemberView {
  readonly address: string;
  readonly instance: Instance;
  readonly routable: boolean;
  /** The weight picks use now: 0 while draining, ramped during slow start, else `instance.weight`. */
  readonly weight: number;
  /** When this member's slow start ends, on the balancer's clock (`performance.now` by default); undefined when not ramping. */
  readonly rampEndsAt: number | undefined;
  /** True while the member waits for its first routable update to start its slow start. */
  readonly rampPending: boolean;
  /** Picks on the host whose `done` has not been called yet, through this balancer or one sharing its `hostLoads`. */
  readonly inFlight: number;
  /** The latency estimate in milliseconds, from balancers that keep one (`p2c-ewma`); undefined otherwise. */
  readonly latencyMs?: number;
}

/**
 * A load-balancing state machine (grpc-js style): fed whole endpoint sets, it keeps per-member
 * state across updates (matched by address) and publishes an immutable `Picker` per update.
 */
export interface Balancer {
  readonly algorithm: BalancerAlgorithm;
  /** The picker of the latest update; before the first, one that answers `no-instances`. */
  readonly picker: Picker;
  /**
   * Replaces the endpoint set and returns the new picker (also `picker` from now on). Members whose
   * address persists keep their state, and so does one whose address comes back while picks made
   * before it left are in flight (a re-registration: those requests still load it); a duplicate
   * address after the first is ignored. Never throws.
   */
  update(endpoints: readonly BalancerEndpoint[]): Picker;
  /** The state kept for `address`, or undefined when it is not a member. */
  member(address: string): MemberView | undefined;
  /** The load of every host a member stands for; give it to the balancers of the service's subsets (`BalancerOptions.hostLoads`). */
  readonly hostLoads: HostLoads;
  /** The salt of its sticky ids (`BalancerOptions.stickySalt`); undefined when sticky sessions are off. */
  readonly stickySalt: string | undefined;
  /**
   * Lets go of the host loads it holds, for a balancer that will be fed no more (a subset no route
   * names): the balancers still sharing them no longer hear from it. Picks made earlier still count
   * on their hosts until done. From then on every picker it made answers `no-instances`, so that no
   * pick counts in a load it no longer holds, and `update` and `reweigh` change nothing. Idempotent.
   */
  close(): void;
  /**
   * While true some member is in slow start, and its owner should call `reweigh()` every
   * `rampTickMs` (no registry event will come to move the ramp).
   */
  readonly ramping: boolean;
  /** Rebuild period while `ramping`; undefined when slow start is off. */
  readonly rampTickMs: number | undefined;
  /** Moves every ramp to the clock's present and returns the new picker (also `picker` from now on); the same picker when nothing ramps. */
  reweigh(): Picker;
}
