// Rows of `npm run bench:proxy` with traffic policy on: each is a gateway with the access log off
// whose services carry extra settings, compared with the plain "access log off" gateway of the
// same run. Other policies add their rows to `POLICY_ROWS`.
import type { RoundsResult } from './rounds.ts';

/** One extra gateway: its row name and the settings added to each of its services (YAML flow mapping entries). */
export interface PolicyRow {
  readonly name: string;
  readonly serviceSettings: string;
}

/** The name of the row every policy row is compared with. */
export const POLICY_ANCHOR = 'switchboard (access log off)';

/** A breaker that never trips (generous thresholds), and the retry budget (on by default) turned off to show its own cost. */
export const POLICY_ROWS: readonly PolicyRow[] = [
  { name: `${POLICY_ANCHOR} + breaker`, serviceSettings: 'circuitBreaker: { requestVolumeThreshold: 1000000, errorPercentThreshold: 100 }' },
  { name: `${POLICY_ANCHOR}, no retry budget`, serviceSettings: 'retryBudget: false' },
];

/** One line per policy row: its throughput cost against the anchor (negative: faster, within noise). */
export function breakerCostLines(rows: readonly RoundsResult[]): string {
  const anchor = rows.find(({ name }) => name === POLICY_ANCHOR);
  if (!anchor) return '';
  return POLICY_ROWS.map(({ name }) => rows.find((row) => row.name === name))
    .filter((row): row is RoundsResult => row !== undefined)
    .map((row) => `${row.name.slice(POLICY_ANCHOR.length).replace(/^[ ,+]+/, '')} cost: ${((1 - row.requestsPerSecond / anchor.requestsPerSecond) * 100).toFixed(1)} % of req/s (median ${row.requestsPerSecond.toFixed(0)} vs ${anchor.requestsPerSecond.toFixed(0)})\n`)
    .join('');
}
