import { expect } from 'vitest';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { AttemptResult } from './transport.ts';

/** For tests: a pick of one endpoint that keeps the first outcome an attempt reports to it. */
export function recordingPick(address = 'backend'): { pick: PickedEndpoint; outcome: () => UpstreamOutcome | undefined } {
  let outcome: UpstreamOutcome | undefined;
  const pick = { kind: 'endpoint', address, instance: {}, done: (reported: UpstreamOutcome) => (outcome ??= reported) } as unknown as PickedEndpoint;
  return { pick, outcome: () => outcome };
}

/**
 * For tests: the attempt ended as the upstream's silence after a client let the held-back body go
 * at `resumedAt` (`at`: when the attempt ended), a whole idle-body timeout of `bodyTimeoutMs` later
 * and well before anything else would have ended it.
 */
export function expectSilenceTimedOutAfterResume(ending: { result: AttemptResult; outcome: UpstreamOutcome | undefined; at: number }, resumedAt: number, bodyTimeoutMs: number): void {
  expect(ending.result).toMatchObject({ ok: false, errorClass: 'body-timeout', responseStarted: true });
  expect(ending.outcome).toMatchObject({ ok: false, errorClass: 'body-timeout' });
  expect(ending.at - resumedAt).toBeGreaterThanOrEqual(bodyTimeoutMs - 1);
  // …and the idle-body timeout it is, not a longer one (reading the held-back body takes a moment).
  expect(ending.at - resumedAt).toBeLessThan(10_000);
}
