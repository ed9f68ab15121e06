import { describe, expect, it } from 'vitest';
import { OutlierDetector, type UpstreamOutcome } from '../../src/health/index.ts';
import { InstanceTraffic } from '../telemetry/index.ts';
import { mergeOutcomes, OutcomeBatch, type WireOutcomes } from './cluster-outcomes.ts';

const OK: UpstreamOutcome = { ok: true, latencyMs: 3 };
const FIVE_HUNDRED: UpstreamOutcome = { ok: false, latencyMs: 3, errorClass: 'http-5xx' };
const REFUSED: UpstreamOutcome = { ok: false, latencyMs: 1, errorClass: 'connect-refused' };
const CANCELLED: UpstreamOutcome = { ok: false, latencyMs: 0, errorClass: 'cancelled' };

/** What the batch becomes after the trip through a JSON IPC channel. */
const overTheWire = (batch: WireOutcomes | undefined): WireOutcomes => JSON.parse(JSON.stringify(batch)) as WireOutcomes;

describe('OutcomeBatch', () => {
  it('sends a run of successes on one address as one event, and every upstream failure in order', () => {
    const batch = new OutcomeBatch();
    for (const outcome of [OK, OK, OK, FIVE_HUNDRED, REFUSED, OK, OK]) batch.record('user', 'a:1', outcome);
    batch.record('user', 'b:1', OK);
    expect(batch.take()?.events).toEqual([
      ['user', 'a:1', null],
      ['user', 'a:1', 'http-5xx'],
      ['user', 'a:1', 'connect-refused'],
      ['user', 'a:1', null],
      ['user', 'b:1', null],
    ]);
  });

  it("leaves out failures the client or the gateway caused, which never touch an upstream's health", () => {
    const batch = new OutcomeBatch();
    batch.record('user', 'a:1', CANCELLED);
    batch.record('user', 'a:1', { ok: false, latencyMs: 0, errorClass: 'client-body-error' });
    expect(batch.take()).toBeUndefined();
  });

  it('counts attempts per address, with errors only for what counts against the upstream, and empties on take', () => {
    const inner = new InstanceTraffic();
    const batch = new OutcomeBatch(inner);
    batch.attempt('user', 'a:1', undefined);
    batch.attempt('user', 'a:1', 'http-5xx');
    batch.attempt('user', 'a:1', 'cancelled');
    batch.attempt('user', 'b:1', 'connect-refused');
    expect(batch.take()?.traffic).toEqual([
      ['user', 'a:1', 3, 1],
      ['user', 'b:1', 1, 1],
    ]);
    expect(inner.counts('user', 'a:1')).toEqual({ requests: 3, errors: 1 });
    expect(batch.take()).toBeUndefined();
  });
});

describe('mergeOutcomes', () => {
  it("ejects an address on the primary when two workers' batches together reach the consecutive-error count", () => {
    const detector = new OutlierDetector('user', { consecutiveErrors: 4 });
    detector.setMembers(['a:1', 'b:1']);
    const sink = { record: (_service: string, address: string, outcome: UpstreamOutcome) => detector.record(address, outcome), count: () => undefined };
    const workerOne = new OutcomeBatch();
    const workerTwo = new OutcomeBatch();
    workerOne.record('user', 'a:1', FIVE_HUNDRED);
    workerOne.record('user', 'a:1', FIVE_HUNDRED);
    workerTwo.record('user', 'a:1', REFUSED);
    workerTwo.record('user', 'a:1', FIVE_HUNDRED);
    mergeOutcomes(overTheWire(workerOne.take()), sink);
    expect(detector.isEjected('a:1')).toBe(false);
    mergeOutcomes(overTheWire(workerTwo.take()), sink);
    expect(detector.isEjected('a:1')).toBe(true);
    expect(detector.isEjected('b:1')).toBe(false);
    detector.close();
  });

  it('a success between failures resets the count on the primary as it would in one process', () => {
    const detector = new OutlierDetector('user', { consecutiveErrors: 3 });
    detector.setMembers(['a:1']);
    const batch = new OutcomeBatch();
    for (const outcome of [FIVE_HUNDRED, FIVE_HUNDRED, OK, OK, FIVE_HUNDRED, FIVE_HUNDRED]) batch.record('user', 'a:1', outcome);
    mergeOutcomes(overTheWire(batch.take()), { record: (_service, address, outcome) => detector.record(address, outcome), count: () => undefined });
    expect(detector.isEjected('a:1')).toBe(false);
    detector.close();
  });

  it("adds every worker's traffic into the admin counters and returns the requests counted; malformed entries are skipped", () => {
    const traffic = new InstanceTraffic();
    const sink = { record: () => undefined, count: (service: string, address: string, requests: number, errors: number) => traffic.add(service, address, requests, errors) };
    const counted =
      mergeOutcomes({ events: [], traffic: [['user', 'a:1', 5, 1]] }, sink) +
      mergeOutcomes({ events: [['user'] as never], traffic: [['user', 'a:1', 2, 0], ['user', 'a:1', 'x', 0] as never] }, sink);
    expect(traffic.counts('user', 'a:1')).toEqual({ requests: 7, errors: 1 });
    expect(counted).toBe(7);
  });
});
