import type { Balancer, BalancerAlgorithm, BalancerEndpoint, BalancerOptions, OutcomeListener } from './balancer.ts';
import { Attempt, targetWeight, type AttemptSettler, type Member } from './balancer-member.ts';
import { nonePicker, type PickOutcome, type Picker } from './picker.ts';
import { slowStartFactor, slowStartTickMs, type SlowStartOptions } from './slow-start.ts';

/**
 * The diffing half every balancer shares: members are matched by address across updates so their
 * state survives, departed ones are dropped once no pick on them is in flight (an address that
 * leaves and comes back meanwhile, as a re-registration does, is the same member: its in-flight
 * count, latency estimate and weights go on, and the answers of its picks release what they hold),
 * and the subclass builds a picker over the members that
 * may take traffic (routable, weight above 0, not draining) in registry order. With slow start,
 * a member that joins after the first non-empty set ramps its weight from its first routable
 * update on; `reweigh()` moves the ramps and rebuilds the picker, so pick paths stay as they are.
 */
export abstract class BalancerBase<M extends Member> implements Balancer, AttemptSettler<M> {
  abstract readonly algorithm: BalancerAlgorithm;

  protected readonly random: () => number;
  protected readonly now: () => number;
  readonly rampTickMs: number | undefined;
  private readonly onOutcome: OutcomeListener | undefined;
  private readonly slowStart: SlowStartOptions | undefined;
  private readonly slowStartParent: Balancer | undefined;
  private members = new Map<string, M>();
  /** Members gone from the set while picks on them are in flight; dropped as the last one is done. */
  private readonly departed = new Map<string, M>();
  private current: Picker = nonePicker('no-instances');
  private inFlight = 0;
  /** True once a non-empty set arrived: members of the first set start warm (nothing to ramp against). */
  private seeded = false;
  private rampCount = 0;

  constructor(options: BalancerOptions = {}) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.onOutcome = options.onOutcome;
    this.slowStart = options.slowStart;
    this.slowStartParent = options.slowStartParent;
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
    const next = new Map<string, M>();
    for (const endpoint of endpoints) {
      if (next.has(endpoint.address)) continue;
      const member = this.members.get(endpoint.address) ?? this.departed.get(endpoint.address);
      this.departed.delete(endpoint.address);
      if (!member) {
        const created = this.createMember(endpoint);
        if (this.slowStart) this.beginSlowStart(created, this.slowStart);
        next.set(endpoint.address, created);
        continue;
      }
      member.refresh(endpoint.instance, endpoint.routable);
      next.set(endpoint.address, member);
    }
    for (const [address, member] of this.members) if (!next.has(address) && member.inFlight > 0) this.departed.set(address, member);
    this.members = next;
    this.seeded ||= next.size > 0;
    return this.rebuild();
  }

  reweigh(): Picker {
    return this.rampCount > 0 ? this.rebuild() : this.current;
  }

  private rebuild(): Picker {
    const all = [...this.members.values()];
    if (this.slowStart) this.applyRamps(all, this.slowStart);
    const eligible = all.filter((member) => member.routable && member.weight > 0);
    if (all.length === 0) this.current = nonePicker('no-instances');
    else if (eligible.length === 0) this.current = nonePicker('no-healthy-instances');
    else this.current = this.buildPicker(eligible, all);
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

  /** @internal Called once per attempt by `Attempt.done`. */
  settle(member: M, outcome: PickOutcome): void {
    this.inFlight -= 1;
    if (member.inFlight === 0 && this.departed.get(member.address) === member) this.departed.delete(member.address);
    this.observe(member, outcome);
    this.onOutcome?.(member.address, outcome);
  }

  /** Starts the state of a new address. */
  protected abstract createMember(endpoint: BalancerEndpoint): M;

  /** Builds the picker over `eligible` (non-empty, registry order); `all` includes members that take no traffic. */
  protected abstract buildPicker(eligible: readonly M[], all: readonly M[]): Picker;

  /** Hook: an attempt on `member` finished; its in-flight count is already released. */
  protected observe(_member: M, _outcome: PickOutcome): void {}

  /** Picks not yet done across every member, departed ones included. */
  protected get totalInFlight(): number {
    return this.inFlight;
  }

  /** Starts an attempt on `member`: counts it in flight and returns the pick. */
  protected attempt(member: M): Attempt<M> {
    this.inFlight += 1;
    return new Attempt(member, this);
  }
}
