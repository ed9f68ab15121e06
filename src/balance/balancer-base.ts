import type { Balancer, BalancerAlgorithm, BalancerEndpoint, BalancerOptions, OutcomeListener } from './balancer.ts';
import { Attempt, type AttemptSettler, type Member } from './balancer-member.ts';
import { nonePicker, type PickOutcome, type Picker } from './picker.ts';

/**
 * The diffing half every balancer shares: members are matched by address across updates so their
 * state survives, departed ones are dropped, and the subclass builds a picker over the members that
 * may take traffic (routable, weight above 0) in registry order.
 */
export abstract class BalancerBase<M extends Member> implements Balancer, AttemptSettler<M> {
  abstract readonly algorithm: BalancerAlgorithm;

  protected readonly random: () => number;
  protected readonly now: () => number;
  private readonly onOutcome: OutcomeListener | undefined;
  private members = new Map<string, M>();
  private current: Picker = nonePicker('no-instances');
  private inFlight = 0;

  constructor(options: BalancerOptions = {}) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.onOutcome = options.onOutcome;
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
      const member = this.members.get(endpoint.address);
      if (!member) {
        next.set(endpoint.address, this.createMember(endpoint));
        continue;
      }
      member.refresh(endpoint.instance, endpoint.routable);
      next.set(endpoint.address, member);
    }
    this.members = next;
    const all = [...next.values()];
    const eligible = all.filter((member) => member.routable && member.weight > 0);
    if (all.length === 0) this.current = nonePicker('no-instances');
    else if (eligible.length === 0) this.current = nonePicker('no-healthy-instances');
    else this.current = this.buildPicker(eligible, all);
    return this.current;
  }

  /** @internal Called once per attempt by `Attempt.done`. */
  settle(member: M, outcome: PickOutcome): void {
    this.inFlight -= 1;
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
