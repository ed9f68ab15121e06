import { Subject, type Observable } from 'rxjs';
import { BREAKER_EVENT_TYPES, type BreakerChange } from '../policy/breaker-change.ts';
import type { BreakerView, LimitsView } from '../policy/traffic-guards.ts';
import type { WorkerMessage } from './cluster-messages.ts';

type BreakersMessage = Extract<WorkerMessage, { kind: 'switchboard:breakers' }>;

const EVENT_TYPES: ReadonlySet<string> = new Set(Object.values(BREAKER_EVENT_TYPES));

/**
 * The primary's view of its workers' breakers: each worker keeps its own breakers (a worker sees
 * only its share of the traffic), so `/api/breakers` lists every worker's latest report and
 * `/api/events` relays each worker's state changes with its number.
 */
export class WorkerBreakers {
  /** Every worker's breaker state changes, as they arrive. */
  readonly changes$: Observable<BreakerChange>;
  private readonly changes = new Subject<BreakerChange>();
  private readonly latest = new Map<number, { breakers: BreakerView[]; services: LimitsView[]; at: string }>();

  constructor() {
    this.changes$ = this.changes.asObservable();
  }

  /** Takes one worker's report; malformed parts are skipped. */
  receive(message: BreakersMessage): void {
    if (typeof message.worker !== 'number' || !Array.isArray(message.breakers) || !Array.isArray(message.services)) return;
    this.latest.set(message.worker, { breakers: message.breakers, services: message.services, at: new Date().toISOString() });
    for (const change of Array.isArray(message.changes) ? message.changes : []) {
      if (typeof change?.data?.service === 'string' && EVENT_TYPES.has(change.type)) this.changes.next(change);
    }
  }

  /** `/api/breakers`: every worker's breakers and caps, by worker number. */
  view(): { workers: { worker: number; reportedAt: string; breakers: BreakerView[]; services: LimitsView[] }[] } {
    return { workers: [...this.latest].sort(([a], [b]) => a - b).map(([worker, report]) => ({ worker, reportedAt: report.at, breakers: report.breakers, services: report.services })) };
  }

  /** Completes `changes$`. */
  close(): void {
    this.changes.complete();
  }
}
