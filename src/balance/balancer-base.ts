import type { Balancer, BalancerAlgorithm, BalancerEndpoint, BalancerOptions, OutcomeListener } from './balancer.ts';
import { Attempt, targetWeight, type AttemptSettler, type Member } from './balancer-member.ts';
import { HostLoads, type HostLoad } from './host-load.ts';
import { nonePicker, type NoEndpoint, type PickOutcome, type PickResult, type Picker } from './picker.ts';
import { stickyPicker } from './sticky.ts';
import { slowStartFactor, slowStartTickMs, type SlowStartOptions } from './slow-start.ts';

/**
 * The diffing half every balancer shares: members are matched by address across updates so their
 * state survives, departed ones are dropped once no pick on them is in flight (an address that
 * leaves and comes back meanwhile, as a re-registration does, is the same member: its in-flight
 * count, latency estimate and weights go on, and the answers of its picks release what they hold),
 * and the subclass builds a picker over the members that
 * may take traffic (routable, weight above 0, not draining) in registry order. Each member holds
 * its host's load in `hostLoads`, which the balancers of a service's subsets share with the
 * service's: a pick through any of them counts on the host for all, and a member departed here
 * is held while picks on its host are in flight through any of them. With slow start,
 * a member that joins after the first non-empty set ramps its weight from its first routable
 * update on; `reweigh()` moves the ramps and rebuilds the picker, so pick paths stay as they are.
 */
export abstract class BalancerBase<M extends Member> implements Balancer, AttemptSettler<M> {
  abstract readonly algorithm: BalancerAlgorithm;

  protected readonly random: () => number;
  protected readonly now: () => number;
  readonly rampTickMs: number | undefined;
  readonly hostLoads: HostLoads;
  readonly stickySalt: string | undefined;
  private readonly onOutcome: OutcomeListener | undefined;
  private readonly slowStart: SlowStartOptions | undefined;
  private readonly slowStartParent: Balancer | undefined;
  private members = new Map<string, M>();
  /** Members gone from the set while picks on their hosts are in flight (through any balancer sharing `hostLoads`); dropped as the last one is done. */
  private readonly departed = new Map<string, M>();
  private current: Picker = nonePicker('no-instances');
  /** The loads of the hosts of every member, departed ones included. */
  private inFlight = 0;
  /** True once a non-empty set arrived: members of the first set start warm (nothing to ramp against). */
  private seeded = false;
  private rampCount = 0;
  /** Set by `close()`: the balancer is fed no more and its pickers give nothing. */
  private closed = false;

  constructor(options: BalancerOptions = {}) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.onOutcome = options.onOutcome;
    this.slowStart = options.slowStart;
    this.slowStartParent = options.slowStartParent;
    this.hostLoads = options.hostLoads ?? new HostLoads();
    this.stickySalt = options.stickySalt;
    this.rampTickMs = options.slowStart && slowStartTickMs(options.slowStart);
  }

  get ramping(): boolean {
    return this.rampCount > 0;
  }

  get picker(): Picker {
    return this.current;
  }

  /** The state kept for `address` (the subclass's full member, read-only); undefined when not a member. */
  member(address: string): Readonly<M> | undefined {
    return this.members.get(address);
  }

  update(endpoints: readonly BalancerEndpoint[]): Picker {
    // Members made now would hold host loads that nothing lets go of again.
    if (this.closed) return this.current;
    const next = new Map<string, M>();
    for (const endpoint of endpoints) {
      if (next.has(endpoint.address)) continue;
      const member = this.members.get(endpoint.address) ?? this.departed.get(endpoint.address);
      this.departed.delete(endpoint.address);
      if (!member) {
        const created = this.createMember(endpoint, this.hostLoads.of(endpoint.address));
        created.healthy = endpoint.healthy !== false;
        this.hold(created);
        if (this.slowStart) this.beginSlowStart(created, this.slowStart);
        next.set(endpoint.address, created);
        continue;
      }
      member.refresh(endpoint.instance, endpoint.routable);
      member.healthy = endpoint.healthy !== false;
      next.set(endpoint.address, member);
    }
    for (const [address, member] of this.members) {
      if (next.has(address)) continue;
      if (member.inFlight > 0) this.departed.set(address, member);
      else member.load.release(member);
    }
    this.members = next;
    this.seeded ||= next.size > 0;
    return this.rebuild();
  }

  close(): void {
    this.closed = true;
    this.current = CLOSED;
    this.rampCount = 0;
    for (const member of this.members.values()) member.load.release(member);
    for (const member of this.departed.values()) member.load.release(member);
  }

  reweigh(): Picker {
    return this.rampCount > 0 && !this.closed ? this.rebuild() : this.current;
  }

  private rebuild(): Picker {
    const all = [...this.members.values()];
    if (this.slowStart) this.applyRamps(all, this.slowStart);
    const eligible = all.filter((member) => member.routable && member.weight > 0);
    if (all.length === 0) this.current = nonePicker('no-instances');
    else if (eligible.length === 0) this.current = nonePicker('no-healthy-instances');
    else if (this.stickySalt === undefined) this.current = this.buildPicker(eligible, all);
    else this.current = stickyPicker(this.buildPicker(eligible, all), eligible, this.stickySalt, (member) => this.stickyAttempt(member));
    return this.current;
  }

  /** A new member waits to ramp when it joins after the first set, or takes the slow start its address has in `slowStartParent`. */
  private beginSlowStart(member: M, slowStart: SlowStartOptions): void {
    const inParent = this.slowStartParent?.member(member.address);
    if (inParent?.rampEndsAt !== undefined) {
      member.rampStartedAt = inParent.rampEndsAt - slowStart.windowMs;
      member.rampEndsAt = inParent.rampEndsAt;
    } else {
      member.rampPending = this.seeded || inParent?.rampPending === true;
    }
  }

  /** Envoy's slow start: a ramp begins at a member's first routable update and scales its weight until the window ends. */
  private applyRamps(all: readonly M[], slowStart: SlowStartOptions): void {
    const now = this.now();
    let ramping = 0;
    for (const member of all) {
      if (member.rampPending && member.routable) {
        member.rampPending = false;
        member.rampStartedAt = now;
        member.rampEndsAt = now + slowStart.windowMs;
      }
      if (member.rampStartedAt === undefined) continue;
      const factor = slowStartFactor(now - member.rampStartedAt, slowStart);
      member.weight = targetWeight(member.instance) * factor;
      if (factor < 1) ramping += 1;
      else member.rampStartedAt = member.rampEndsAt = undefined;
    }
    this.rampCount = ramping;
  }

  /** @internal Called once per attempt by `Attempt`, when its in-flight slot is given back (at `done`, or later once held). */
  release(member: M): void {
    this.inFlight -= 1;
    this.loadMoved(member);
    if (this.departed.size > 0 && member.inFlight === 0) this.dropDeparted(member);
  }

  /** @internal Called at most once per attempt by `Attempt.answered`, before `settle`. */
  sample(member: M, latencyMs: number): void {
    this.observeLatency(member, latencyMs);
  }

  /** @internal Called once per attempt by `Attempt.done`. */
  settle(member: M, outcome: PickOutcome, sampled: boolean): void {
    this.observe(member, outcome, sampled);
    this.onOutcome?.(member.address, outcome);
  }

  /** Holds the load of a new member's host: picks already on it (through a subset, or the service) count here from now on. */
  private hold(member: M): void {
    member.load.hold(member, (delta) => this.heldLoadMoved(member, delta));
    this.inFlight += member.inFlight;
  }

  /** A pick or an answer through another balancer moved the load of `member`'s host. */
  private heldLoadMoved(member: M, delta: 1 | -1): void {
    this.inFlight += delta;
    this.loadMoved(member);
    if (this.departed.size > 0 && member.inFlight === 0) this.dropDeparted(member);
  }

  /** Lets go of `member` once departed and idle: its state goes, and its host's load when nobody else holds it. */
  private dropDeparted(member: M): void {
    if (this.departed.get(member.address) !== member) return;
    this.departed.delete(member.address);
    member.load.release(member);
  }

  /** Starts the state of a new address, over its host's `load`. */
  protected abstract createMember(endpoint: BalancerEndpoint, load: HostLoad): M;

  /** Builds the picker over `eligible` (non-empty, registry order); `all` includes members that take no traffic. */
  protected abstract buildPicker(eligible: readonly M[], all: readonly M[]): Picker;

  /**
   * Hook: an attempt on `member` finished; its in-flight count is already released, unless the pick
   * is held (`PickedEndpoint.hold`). `sampled`: its latency sample came at its head (`observeLatency`).
   */
  protected observe(_member: M, _outcome: PickOutcome, _sampled: boolean): void {}

  /** Hook: an attempt on `member` had its response head, `latencyMs` after its request went out (`PickedEndpoint.answered`). */
  protected observeLatency(_member: M, _latencyMs: number): void {}

  /** Hook: an attempt's release here, or a pick or a release through another balancer sharing `hostLoads`, moved `member`'s in-flight count. */
  protected loadMoved(_member: M): void {}

  /** Picks not yet done on the hosts of every member, departed ones included, through this balancer or one sharing `hostLoads`. */
  protected get totalInFlight(): number {
    return this.inFlight;
  }

  /** A sticky cookie's pick of `member`: counted as the algorithm's own picks, whose indexes hear of the load it adds. */
  private stickyAttempt(member: M): PickResult {
    const attempt = this.attempt(member);
    if (attempt.kind === 'endpoint') this.loadMoved(member);
    return attempt;
  }

  /**
   * Starts an attempt on `member`: counts it in flight and returns the pick. A picker kept past
   * `close()` answers `no-instances` instead: the balancer no longer holds its hosts' loads, so a
   * pick there must not move the counts of the balancers that still do (a member that shared its
   * host would, behind their backs).
   */
  protected attempt(member: M): PickResult {
    if (this.closed) return CLOSED_PICK;
    this.inFlight += 1;
    return new Attempt(member, this);
  }
}

const CLOSED = nonePicker('no-instances');
const CLOSED_PICK = CLOSED.pick({}) as NoEndpoint;
