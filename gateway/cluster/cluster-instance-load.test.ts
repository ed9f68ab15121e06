import { describe, expect, it } from 'vitest';
import { sameInstanceLoad, WorkerInstanceLoad, type WireInstanceLoad } from './cluster-instance-load.ts';

describe('WorkerInstanceLoad', () => {
  it("sums the workers' requests in flight per instance and averages their latency estimates, each report replacing the worker's previous one", () => {
    const load = new WorkerInstanceLoad();
    load.receive(0, [['api', 'a:1', 2, 10], ['api', 'b:1', 1, null]]);
    load.receive(1, [['api', 'a:1', 3, 20]]);
    expect([load.inFlight('api', 'a:1'), load.inFlight('api', 'b:1'), load.inFlight('api', 'c:1')]).toEqual([5, 1, 0]);
    expect([load.latencyMs('api', 'a:1'), load.latencyMs('api', 'b:1')]).toEqual([15, undefined]);
    load.receive(0, []);
    expect([load.inFlight('api', 'a:1'), load.inFlight('api', 'b:1'), load.latencyMs('api', 'a:1')]).toEqual([3, 0, 20]);
  });

  it('forgets what a worker that exited reported, and skips malformed entries', () => {
    const load = new WorkerInstanceLoad();
    load.receive(0, [['api', 'a:1', 2, null], ['api', 7, 1, null], 'nonsense', ['api', 'b:1', '3', null]]);
    load.receive(1, [['api', 'a:1', 1, null]]);
    expect([load.inFlight('api', 'a:1'), load.inFlight('api', 'b:1')]).toEqual([3, 0]);
    load.exited(0);
    expect(load.inFlight('api', 'a:1')).toBe(1);
    load.receive(1, 'not a list');
    expect(load.inFlight('api', 'a:1')).toBe(0);
  });
});

describe('sameInstanceLoad', () => {
  const report: WireInstanceLoad = [['api', 'a:1', 2, null]];
  it.each<[string, WireInstanceLoad, boolean]>([
    ['the same entries', [['api', 'a:1', 2, null]], true],
    ['another count', [['api', 'a:1', 3, null]], false],
    ['another latency', [['api', 'a:1', 2, 4.5]], false],
    ['one entry more', [['api', 'a:1', 2, null], ['api', 'b:1', 1, null]], false],
    ['none', [], false],
  ])('tells a report from %s', (_name, now, same) => {
    expect(sameInstanceLoad(report, now)).toBe(same);
  });
});
