import type { PeakEwma } from './peak-ewma.ts';

/** What a balancer keeps for one address: its count of the host's picks in flight, and whether it shares them. */
export interface HostLoadHolder {
  inFlight: number;
  sharing: boolean;
}

/** Called when a pick or an answer through another holder moved the load by `delta`. */
export type HostLoadMoved = (delta: 1 | -1) => void;

/**
 * The load of one host, shared by every balancer that may pick it (a service's own and those of
 * its subsets), as Envoy keeps one active-request count per host for every load balancer: a
 * request sent through a subset loads the host for the service's least-connections and p2c-ewma
 * too. Each balancer's member for the host holds it and keeps its own copy of the count, which pick
 * loops read as a field. While one member holds it, picks count on that member alone (`sharing`
 * false, nothing more to do per pick); once two do, a move through one reaches every copy and is
 * told to the other holders, so that they can re-file the member (an index by load) or let go of a
 * departed one.
 */
export class HostLoad {
  /** The peak-EWMA latency estimate, made by the first p2c-ewma member for the host and shared by the next. */
  ewma: PeakEwma | undefined = undefined;
  private readonly holders: Array<{ readonly member: HostLoadHolder; readonly moved: HostLoadMoved }> = [];

  constructor(
    readonly address: string,
    private readonly forget: (load: HostLoad) => void,
  ) {}

  /** Counts a pick on the host made (+1) or answered (-1) through `member` (`sharing`) on every copy; every other holder hears of it. */
  move(member: HostLoadHolder, delta: 1 | -1): void {
    member.inFlight += delta;
    // Backwards: a holder told may let go of itself (a departed member whose last pick ended).
    const holders = this.holders;
    for (let index = holders.length - 1; index >= 0; index -= 1) {
      const holder = holders[index];
      if (holder === undefined || holder.member === member) continue;
      holder.member.inFlight += delta;
      holder.moved(delta);
    }
  }

  /** Makes `member` a holder, its count that of the holders before it, told of moves through the others by `moved`. */
  hold(member: HostLoadHolder, moved: HostLoadMoved): void {
    const first = this.holders[0];
    member.inFlight = first ? first.member.inFlight : 0;
    this.holders.push({ member, moved });
    if (first) for (const holder of this.holders) holder.member.sharing = true;
  }

  /**
   * Lets go of `member` (nothing when it holds nothing). It keeps `sharing`, so that its picks still
   * in flight are taken off the others' counts when done; a holder left alone counts alone again.
   * Once nobody holds the load it is forgotten, so a returning address starts afresh.
   */
  release(member: HostLoadHolder): void {
    const index = this.holders.findIndex((holder) => holder.member === member);
    if (index < 0) return;
    this.holders.splice(index, 1);
    if (this.holders.length === 1) this.holders[0]!.member.sharing = false;
    if (this.holders.length === 0) this.forget(this);
  }
}

/**
 * The `HostLoad` of every address some balancer of one service holds. A service's balancer makes
 * one; its subsets' balancers are given it (`BalancerOptions.hostLoads`), so all of them see one
 * load per host. Balancers that share it must have the same algorithm and options.
 */
export class HostLoads {
  private readonly loads = new Map<string, HostLoad>();

  /** The load of `address`, made when no balancer holds it yet; the caller holds it at once. */
  of(address: string): HostLoad {
    let load = this.loads.get(address);
    if (!load) {
      load = new HostLoad(address, (forgotten) => {
        if (this.loads.get(forgotten.address) === forgotten) this.loads.delete(forgotten.address);
      });
      this.loads.set(address, load);
    }
    return load;
  }

  /** Addresses some balancer holds, for tests. */
  get size(): number {
    return this.loads.size;
  }
}
