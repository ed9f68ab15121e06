import { describe, expect, it } from 'vitest';
import { FLOW_RING_SECONDS } from './flow-series.ts';
import { flowKey, FlowStats, type WireFlowEntry } from './flow-stats.ts';

describe('FlowStats', () => {
  it('rolls pending counts into the second they were recorded in and keeps lifetime totals', async () => {
    const flow = new FlowStats();
    const service = flow.of('service', 'user');
    service.record(0, 10, 100);
    service.record(1, 0, 50);
    flow.roll(1_000);
    service.record(0, 0, 7);
    flow.roll(1_001);
    expect([service.at(1_000, 0), service.at(1_000, 1), service.at(1_000, 2), service.at(1_000, 3)]).toEqual([2, 1, 10, 150]);
    expect(service.at(1_001, 0)).toBe(1);
    expect(service.sum(1_001, 60)).toEqual({ requests: 3, errors: 1, bytesIn: 10, bytesOut: 157 });
    expect(service.total).toEqual({ requests: 3, errors: 1, bytesIn: 10, bytesOut: 157 });
    const totals = await flow.store.totals(1_001);
    expect(totals.get(service.key)?.hour.requests).toBe(3);
  });

  it('reads a slot that a later lap of the ring overwrote as zero, not as the old second', () => {
    const flow = new FlowStats();
    const service = flow.of('service', 'user');
    service.record(0, 0, 0);
    flow.roll(10);
    flow.roll(10 + FLOW_RING_SECONDS);
    expect(service.at(10, 0)).toBe(1);
    service.record(0, 0, 0);
    service.record(0, 0, 0);
    flow.roll(10 + FLOW_RING_SECONDS);
    expect(service.at(10, 0)).toBe(0);
    expect(service.at(10 + FLOW_RING_SECONDS, 0)).toBe(2);
    expect(service.sum(10 + FLOW_RING_SECONDS, FLOW_RING_SECONDS).requests).toBe(2);
  });

  it('sends a worker’s rolled seconds to its sink, and the primary adds the workers’ seconds up', () => {
    const sent: [number, WireFlowEntry[]][] = [];
    const workers = [new FlowStats({ sink: (second, entries) => sent.push([second, entries]) }), new FlowStats({ sink: (second, entries) => sent.push([second, entries]) })];
    for (const worker of workers) {
      worker.instance('user', '10.0.0.1:80').record(0, 0, 0);
      worker.of('route', 'api').record(1, 5, 9);
      worker.roll(500);
      worker.roll(501);
    }
    expect(sent).toHaveLength(2);
    const primary = new FlowStats();
    for (const [second, entries] of sent) primary.addRemote(second, entries);
    expect(primary.instance('user', '10.0.0.1:80').at(500, 0)).toBe(2);
    expect(primary.of('route', 'api').total).toEqual({ requests: 2, errors: 2, bytesIn: 10, bytesOut: 18 });
  });

  it('drops a retired instance only once its traffic left the ring, and a held series comes back when it records again', () => {
    const flow = new FlowStats();
    const gone = flow.instance('user', 'a:1');
    gone.record(0, 0, 0);
    flow.roll(100);
    flow.retire('user', ['b:1']);
    flow.roll(101);
    expect(flow.list('instance', 'user').map((series) => series.name)).toEqual(['a:1']);
    flow.roll(100 + FLOW_RING_SECONDS);
    expect(flow.list('instance', 'user')).toEqual([]);
    gone.record(0, 0, 0);
    flow.roll(100 + FLOW_RING_SECONDS + 1);
    expect(flow.list('instance', 'user')).toEqual([gone]);
    expect(gone.at(100 + FLOW_RING_SECONDS + 1, 0)).toBe(1);
  });

  it('lets the series of a forgotten service go once its traffic left the ring, so later names get series of their own', () => {
    const flow = new FlowStats({ maxSeries: 3 });
    flow.of('service', 'canary-1').record(0, 0, 0);
    flow.instance('canary-1', 'a:1').record(0, 0, 0);
    flow.roll(100);
    flow.forget('canary-1');
    flow.roll(101);
    expect(flow.list('service').map((series) => series.name)).toEqual(['canary-1']);
    flow.roll(100 + FLOW_RING_SECONDS);
    expect(flow.list('service')).toEqual([]);
    expect(flow.list('instance', 'canary-1')).toEqual([]);
    expect([flow.of('service', 'canary-2').name, flow.instance('canary-2', 'b:1').name, flow.of('service', 'canary-3').name]).toEqual(['canary-2', 'b:1', 'canary-3']);
  });

  it('lets the instance map and the store totals of a forgotten service go with its last series', async () => {
    const flow = new FlowStats();
    const instances = () => (flow as unknown as { instances: Map<string, unknown> }).instances;
    flow.of('service', 'canary-1').record(0, 0, 0);
    flow.instance('canary-1', 'a:1').record(0, 0, 0);
    flow.of('service', 'stable').record(0, 0, 0);
    flow.instance('stable', 'b:1').record(0, 0, 0);
    flow.roll(100);
    flow.forget('canary-1');
    flow.roll(101);
    // Still in charts: their totals are too.
    expect([...(await flow.store.totals(102)).keys()].sort()).toEqual([flowKey('instance', 'a:1', 'canary-1'), flowKey('instance', 'b:1', 'stable'), flowKey('service', 'canary-1'), flowKey('service', 'stable')].sort());
    flow.roll(100 + FLOW_RING_SECONDS);
    // Same hour and day as second 100: what is left of the totals is the stable service's.
    expect([...(await flow.store.totals(100 + FLOW_RING_SECONDS)).keys()].sort()).toEqual([flowKey('instance', 'b:1', 'stable'), flowKey('service', 'stable')].sort());
    expect([...instances().keys()]).toEqual(['stable']);
  });

  it('keeps the series of a forgotten service that is listed again, with its totals', async () => {
    const flow = new FlowStats();
    flow.of('service', 'canary-1').record(0, 0, 0);
    flow.instance('canary-1', 'a:1').record(0, 0, 0);
    flow.roll(100);
    flow.forget('canary-1');
    flow.retire('canary-1', ['a:1']);
    flow.roll(100 + FLOW_RING_SECONDS);
    expect(flow.list('service').map((series) => series.name)).toEqual(['canary-1']);
    expect(flow.list('instance', 'canary-1').map((series) => series.name)).toEqual(['a:1']);
    expect((await flow.store.totals(100 + FLOW_RING_SECONDS)).get(flowKey('service', 'canary-1'))?.day.requests).toBe(1);
  });

  it('puts names past the series bound into one overflow series per kind', () => {
    const flow = new FlowStats({ maxSeries: 2 });
    flow.of('consumer', 'a');
    flow.of('consumer', 'b');
    const third = flow.of('consumer', 'c');
    expect(third.name).toBe('(other)');
    expect(flow.of('consumer', 'd')).toBe(third);
  });
});
