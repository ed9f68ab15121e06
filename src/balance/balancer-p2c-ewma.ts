import { isUpstreamFailure } from '../health/upstream-outcome.ts';
import type { BalancerAlgorithm, BalancerEndpoint, BalancerOptions } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import { leastLoadedUntried, Member } from './balancer-member.ts';
import type { HostLoad } from './host-load.ts';
import { PeakEwma } from './peak-ewma.ts';
import { peekedEndpoint, type PickContext, type PickOutcome, type PickResult, type Picker } from './picker.ts';
import { WeightedSampler } from './weighted-sampler.ts';

/** Finagle's and Linkerd's default decay window of the latency estimate. */
export const DEFAULT_EWMA_DECAY_MS = 10_000;

/** Options of the power-of-two-choices balancer. */
export interface P2cEwmaOptions extends BalancerOptions {
  /** Window of the latency estimate; shorter reacts faster and forgets faster. */
  readonly decayMs?: number;
}

/** A member with its latency estimate. */
export class EwmaMember extends Member {
  /** The host's estimate (`HostLoad.ewma`): survives updates while the address stays, and is the same in the balancers of the service's subsets. */
  readonly ewma: PeakEwma;

  constructor(endpoint: BalancerEndpoint, load: HostLoad, decayMs: number, nowMs: number) {
    super(endpoint.address, endpoint.instance, endpoint.routable, load);
    this.ewma = load.ewma ??= new PeakEwma(decayMs, nowMs);
  }

  /** The peak-EWMA estimate, undecayed, for the admin view. */
  get latencyMs(): number {
    return this.ewma.latencyMs;
  }
}

/**
 * Latency a failed attempt counts as. A dead or refusing instance fails in microseconds, which
 * would make it the cheapest member and draw traffic to it (the "fast failure" trap); counting a
 * failure as at least this slow moves traffic away at once, and the estimate decays back so the
 * member is tried again once it may have recovered.
 */
export const FAILURE_PENALTY_MS = 1_000;

/** Redraws for a second candidate distinct from the first before settling for a uniform one. */
const DISTINCT_DRAWS = 4;

/**
 * Costs closer than this share count as a tie, which the first (weighted) draw wins. Decay alone
 * makes two members with identical history differ by parts per million; that is noise, and it must
 * not override the weights. Any difference in requests in flight is far above it.
 */
export const COST_TIE_TOLERANCE = 0.01;

/**
 * Power of two choices over peak-EWMA load, as Finagle's `P2CPeakEwma` and Linkerd do
 * (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", 2001): draw two distinct
 * members in proportion to weight, send to the one with the lower latency estimate × (in flight + 1).
 * On a tie (within `COST_TIE_TOLERANCE`) the first draw wins, so a service whose members behave
 * alike gets the weighted distribution. Outcomes feed the estimate, a failure as at least
 * `FAILURE_PENALTY_MS`; a failure the client or the gateway caused (a cancel, a broken request
 * body, a refused request) does not, since its latency says nothing of the upstream. The latency
 * sample is the time to the response head, as Linkerd's and Finagle's, and it is folded in as the
 * head comes (`PickedEndpoint.answered`): a client that reads the body slowly, or leaves during it,
 * neither counts against the upstream nor holds its sample back; the request is in flight, its
 * load, until its `done` at the end of the body. An attempt that failed before any head is sampled
 * at its `done`, from `PickOutcome.latencyMs`.
 */
export class P2cEwmaBalancer extends BalancerBase<EwmaMember> {
  readonly algorithm: BalancerAlgorithm = 'p2c-ewma';

  private readonly decayMs: number;

  constructor(options: P2cEwmaOptions = {}) {
    super(options);
    this.decayMs = options.decayMs ?? DEFAULT_EWMA_DECAY_MS;
  }

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): EwmaMember {
    return new EwmaMember(endpoint, load, this.decayMs, this.now());
  }

  protected override observeLatency(member: EwmaMember, latencyMs: number): void {
    member.ewma.observe(Math.max(latencyMs, 0), this.now());
  }

  protected override observe(member: EwmaMember, outcome: PickOutcome, sampled: boolean): void {
    if (sampled) {
      // Its latency is in since the head came (a 5xx's head is not sampled: it comes here unsampled).
      // A failure of the upstream's after it (a reset mid-body, a gRPC error in the trailers) still
      // counts as at least the penalty; any other end (the client gone mid-body, the gateway's own
      // failure) leaves the sample as it was.
      if (!outcome.ok && isUpstreamFailure(outcome) && outcome.latencyMs < FAILURE_PENALTY_MS) member.ewma.observe(FAILURE_PENALTY_MS, this.now());
      return;
    }
    if (!outcome.ok && !isUpstreamFailure(outcome)) {
      // A call its client's own deadline cut short took at least this long upstream: a latency
      // sample (a lower bound), without the failure penalty. Any other failure the client or the
      // gateway caused says nothing about the upstream's latency.
      if (outcome.errorClass === 'deadline-exceeded') member.ewma.observe(Math.max(outcome.latencyMs, 0), this.now());
      return;
    }
    const latencyMs = Math.max(outcome.latencyMs, 0);
    member.ewma.observe(outcome.ok ? latencyMs : Math.max(latencyMs, FAILURE_PENALTY_MS), this.now());
  }

  protected buildPicker(eligible: readonly EwmaMember[]): Picker {
    const size = eligible.length;
    if (size === 1) {
      const only = eligible[0]!;
      return { pick: (): PickResult => this.attempt(only), peek: () => peekedEndpoint(only) };
    }
    const sampler = new WeightedSampler(eligible.map((member) => member.weight));
    const choose = (): EwmaMember => {
        const first = sampler.sample(this.random);
        let second = sampler.sample(this.random);
        for (let draw = 1; second === first && draw < DISTINCT_DRAWS; draw += 1) second = sampler.sample(this.random);
        // A very heavy member keeps being redrawn: compare against a uniform other one instead.
        if (second === first) second = (first + 1 + Math.floor(this.random() * (size - 1))) % size;
        const a = eligible[first]!;
        const b = eligible[second]!;
        const now = this.now();
        const costA = a.ewma.cost(a.inFlight, now);
        const costB = b.ewma.cost(b.inFlight, now);
        return costB < costA * (1 - COST_TIE_TOLERANCE) ? b : a;
    };
    // A peek makes the same two draws as a pick and compares the same costs; it counts nothing.
    return { pick: (context: PickContext): PickResult => this.attempt((context.tried && leastLoadedUntried(eligible, context.tried)) || choose()), peek: () => peekedEndpoint(choose()) };
  }
}
