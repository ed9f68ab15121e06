import { runWrk, type WrkResult } from './wrk.ts';

/** One contender of a suite: a name and the URL wrk loads. */
export interface Contender {
  readonly name: string;
  readonly url: string;
}

/** A contender's medians over the rounds. */
export interface RoundsResult {
  readonly name: string;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** req/s of each round, in round order (round r of every contender ran within the same pass). */
  readonly requestsPerSecondByRound: readonly number[];
}

/**
 * Runs wrk against every contender in turn, `rounds` times (the order rotating each round), after
 * one warm-up each, and reports medians: on a shared machine a drift or a burst from a neighbour
 * then lands on all contenders alike instead of on whichever ran during it.
 */
export async function alternateRounds(contenders: readonly Contender[], options: { connections: number; durationS: number; warmupS: number; rounds: number }): Promise<RoundsResult[]> {
  const wrk = { threads: 1, connections: options.connections };
  for (const { url } of contenders) await runWrk(url, { ...wrk, durationS: options.warmupS });
  const runs = contenders.map((): WrkResult[] => []);
  for (let round = 0; round < options.rounds; round += 1) {
    for (let step = 0; step < contenders.length; step += 1) {
      const index = (step + round) % contenders.length;
      runs[index]!.push(await runWrk(contenders[index]!.url, { ...wrk, durationS: options.durationS }));
    }
  }
  return contenders.map(({ name }, index) => {
    const results = runs[index]!;
    return {
      name,
      requestsPerSecond: median(results.map((run) => run.requestsPerSecond)),
      p50Ms: median(results.map((run) => run.p50Ms)),
      p99Ms: median(results.map((run) => run.p99Ms)),
      errors: results.reduce((sum, run) => sum + run.errors, 0),
      requestsPerSecondByRound: results.map((run) => run.requestsPerSecond),
    };
  });
}

/**
 * `row`'s req/s over `anchor`'s, round by round: each pair ran in the same pass over the
 * contenders, so the spread of these shows how far this machine's noise moves the median ratio.
 */
export function ratiosByRound(row: RoundsResult, anchor: RoundsResult): number[] {
  return row.requestsPerSecondByRound.map((rate, round) => rate / anchor.requestsPerSecondByRound[round]!);
}

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
