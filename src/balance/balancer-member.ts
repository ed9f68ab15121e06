import type { Instance } from '../discovery/instance.ts';
import type { HostLoad } from './host-load.ts';
import type { PickedEndpoint, PickOutcome } from './picker.ts';

/** The state a balancer keeps for one address across updates; subclasses add their own fields. */
export class Member {
  /**
   * Picks on the host whose `done` has not been called yet, through this balancer or any sharing
   * its `HostLoads`: each member for the host keeps this count, and a move through one reaches the
   * copies of the others (`HostLoad.move`).
   */
  inFlight = 0;
  /**
   * True while another balancer's member holds `load` too, or once this one let go of a load others
   * still hold: its picks then count through `load.move`. False, they count here alone, so that a
   * service without subsets pays nothing for the sharing.
   */
  sharing = false;
  /** False while it is routable only by its service's panic (`BalancerEndpoint.healthy`): no sticky cookie takes it. */
  healthy = true;
  /**
   * The weight picks use, in a field because pick loops read it for every member: `instance.weight`,
   * 0 while the instance is draining, scaled down during slow start. 0 means no traffic.
   */
  weight: number;
  /** Slow start of a member that joined after the first set: waiting for its first routable update, or ramping since `rampStartedAt`. */
  rampPending = false;
  rampStartedAt: number | undefined = undefined;
  rampEndsAt: number | undefined = undefined;

  constructor(
    readonly address: string,
    /** The latest registry value for this address. */
    public instance: Instance,
    public routable: boolean,
    /** The host's load, shared with the members for the same address in the balancers of the service's subsets. */
    readonly load: HostLoad,
  ) {
    this.weight = targetWeight(instance);
  }

  /** Takes the latest registry value and routability for this address. */
  refresh(instance: Instance, routable: boolean): void {
    this.instance = instance;
    this.weight = targetWeight(instance);
    this.routable = routable;
  }
}

/** The weight an instance gets once any slow start is over: its registered weight, 0 while draining. */
export function targetWeight(instance: Instance): number {
  return instance.draining === true ? 0 : instance.weight;
}

/** Receives the outcome of an attempt and the release of its in-flight slot, each exactly once. */
export interface AttemptSettler<M extends Member> {
  /** The attempt's in-flight slot on `member` was given back (its count already moved). */
  release(member: M): void;
  /** The attempt's latency sample, at its response head (`PickedEndpoint.answered`); before `settle`, at most once. */
  sample(member: M, latencyMs: number): void;
  /** The attempt's outcome; its slot may still be held (`PickedEndpoint.hold`). `sampled`: `sample` had its latency already. */
  settle(member: M, outcome: PickOutcome, sampled: boolean): void;
}

/**
 * One picked attempt. A class rather than a closure per pick: `done` lives on the prototype, so call
 * it as a method (`pick.done(outcome)`), which is how the proxy holds it anyway.
 */
export class Attempt<M extends Member> implements PickedEndpoint {
  readonly kind = 'endpoint';
  readonly instance: Instance;
  readonly address: string;
  /** True until `done` reported the outcome. */
  private open = true;
  /** True while the in-flight slot is taken. */
  private counted = true;
  /** True once `hold` kept the slot past `done`. */
  private held = false;
  /** True once `answered` reported the latency sample. */
  private sampled = false;

  constructor(
    private readonly member: M,
    private readonly settler: AttemptSettler<M>,
  ) {
    this.instance = member.instance;
    this.address = member.address;
    if (member.sharing) member.load.move(member, 1);
    else member.inFlight += 1;
  }

  /** Reports the outcome and, unless `hold` kept it, releases the in-flight slot first; calls after the first do nothing. */
  done(outcome: PickOutcome): void {
    if (!this.open) return;
    this.open = false;
    if (!this.held) this.release();
    this.settler.settle(this.member, outcome, this.sampled);
  }

  answered(latencyMs: number): void {
    if (!this.open || this.sampled) return;
    this.sampled = true;
    this.settler.sample(this.member, latencyMs);
  }

  hold(): () => void {
    if (!this.open || this.held) return noRelease;
    this.held = true;
    return () => this.release();
  }

  /** Gives the in-flight slot back; once. */
  private release(): void {
    if (!this.counted) return;
    this.counted = false;
    if (this.member.sharing) this.member.load.move(this.member, -1);
    else this.member.inFlight -= 1;
    this.settler.release(this.member);
  }
}

function noRelease(): void {}

/**
 * A member the request has not tried, drawn with probability weight ÷ the untried members' total
 * (a weighted random pick's retry); undefined when every member was tried or the untried weigh
 * nothing. Least loaded would not do here: with nothing in flight, list order would choose.
 */
export function randomUntried<M extends Member>(members: readonly M[], tried: readonly string[], random: () => number): M | undefined {
  let total = 0;
  for (const member of members) if (!tried.includes(member.address)) total += member.weight;
  if (!(total > 0)) return undefined;
  let point = random() * total;
  let last: M | undefined;
  for (const member of members) {
    if (tried.includes(member.address)) continue;
    last = member;
    point -= member.weight;
    if (point < 0) return member;
  }
  // Rounding left the point at the end: the last untried member.
  return last;
}

/**
 * The member with the fewest in-flight requests per unit of weight among those whose address is not
 * in `tried` (the first of equals), or undefined when every member was tried. A retry's rare path
 * (`PickContext.tried`): it scans, and touches no cursor or tie-break weight, so the usual sequence
 * goes on unchanged.
 */
export function leastLoadedUntried<M extends Member>(members: readonly M[], tried: readonly string[]): M | undefined {
  let best: M | undefined;
  for (const member of members) {
    if (tried.includes(member.address)) continue;
    if (best === undefined || member.inFlight * best.weight < best.inFlight * member.weight) best = member;
  }
  return best;
}
