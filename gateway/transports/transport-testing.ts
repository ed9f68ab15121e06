import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'vitest';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptResult } from './transport.ts';

/** For tests: a pick of one endpoint that keeps the outcomes an attempt reports to it (`outcome`: the first). */
export function recordingPick(address = 'backend'): { pick: PickedEndpoint; outcome: () => UpstreamOutcome | undefined; reports: UpstreamOutcome[] } {
  const reports: UpstreamOutcome[] = [];
  const pick = { kind: 'endpoint', address, instance: {}, done: (reported: UpstreamOutcome) => reports.push(reported), answered: () => undefined, hold: () => () => undefined } as unknown as PickedEndpoint;
  return { pick, outcome: () => reports[0], reports };
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

/**
 * For tests: the attempt ended at the call's own deadline of `deadlineMs` (`ms` after it began) as
 * `deadline-exceeded`, reported to the pick as not the upstream's fault, and before the gateway's
 * own timeouts (`gatewayTimeoutMs`) could have ended it.
 */
export function expectCallDeadline(ending: { result: AttemptResult; outcome: UpstreamOutcome | undefined; ms: number }, responseStarted: boolean, deadlineMs: number, gatewayTimeoutMs: number): void {
  expect(ending.result).toMatchObject({ ok: false, errorClass: 'deadline-exceeded', responseStarted });
  expect(ending.outcome).toMatchObject({ ok: false, errorClass: 'deadline-exceeded' });
  expect(isUpstreamFailure(ending.outcome!)).toBe(false);
  expect(ending.ms).toBeGreaterThanOrEqual(deadlineMs - 1);
  expect(ending.ms).toBeLessThan(gatewayTimeoutMs);
}

/** For tests: whether `promise` has settled by now (no waiting: a settled promise's reaction runs first). */
export async function settledYet(promise: Promise<unknown>): Promise<boolean> {
  const pending = Symbol('pending');
  try {
    return (await Promise.race([promise, Promise.resolve(pending)])) !== pending;
  } catch {
    return true;
  }
}

/**
 * For tests of an attempt's latency sample: `edit` (run just before the attempt starts) notes when
 * it starts and its client's response; `untilHeadSent` waits (polling, 10 s at most) for the answer's
 * head to reach that response and returns the time from the attempt's start until then, which a
 * sample taken at the upstream's head cannot exceed, and one taken at the body's end (after the
 * client's hold) always does.
 */
export function watchHead(): { edit: (context: GatewayContext) => void; untilHeadSent: () => Promise<number> } {
  let startedAt = 0;
  let response: GatewayContext['response'] | undefined;
  return {
    edit: (context) => {
      startedAt = performance.now();
      response = context.response;
    },
    async untilHeadSent() {
      for (const deadline = performance.now() + 10_000; response?.headersSent !== true; await delay(10)) {
        if (performance.now() > deadline) throw new Error('the answer\'s head never reached the client\'s response');
      }
      return performance.now() - startedAt;
    },
  };
}
