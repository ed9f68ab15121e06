import { describe, expect, it } from 'vitest';
import type { BreakerChange } from '../policy/breaker-change.ts';
import { WorkerBreakers } from './cluster-breakers.ts';

const change = (worker: number): BreakerChange => ({ type: 'breaker-opened', data: { service: 'api', route: null, from: 'closed', to: 'open', requests: 20, failures: 12, worker } });

describe('WorkerBreakers', () => {
  it("lists every worker's latest report by number and relays their changes, skipping malformed ones", () => {
    const breakers = new WorkerBreakers();
    const relayed: BreakerChange[] = [];
    breakers.changes$.subscribe((each) => relayed.push(each));
    breakers.receive({ kind: 'switchboard:breakers', worker: 2, breakers: [], services: [], changes: [change(2)] });
    breakers.receive({ kind: 'switchboard:breakers', worker: 1, breakers: [], services: [{ service: 'api', inFlight: 3, pending: 0, activeRetries: 0 }], changes: [{ type: 'not-an-event' } as never] });
    breakers.receive({ kind: 'switchboard:breakers', worker: 2, breakers: [], services: [], changes: [] });
    expect(relayed).toEqual([change(2)]);
    expect(breakers.view().workers.map((worker) => [worker.worker, worker.services.length])).toEqual([
      [1, 1],
      [2, 0],
    ]);
  });
});
