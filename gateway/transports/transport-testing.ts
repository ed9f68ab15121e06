import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { UpstreamOutcome } from '../../src/health/upstream-outcome.ts';

/** For tests: a pick of one endpoint that keeps the first outcome an attempt reports to it. */
export function recordingPick(address = 'backend'): { pick: PickedEndpoint; outcome: () => UpstreamOutcome | undefined } {
  let outcome: UpstreamOutcome | undefined;
  const pick = { kind: 'endpoint', address, instance: {}, done: (reported: UpstreamOutcome) => (outcome ??= reported) } as unknown as PickedEndpoint;
  return { pick, outcome: () => outcome };
}
