import { Counter } from 'prom-client';
import { metricsRegistry } from '../../src/metrics.ts';

/**
 * Why a request chosen for mirroring was not copied: its body was past `maxBodySize`, the route had
 * `maxInFlight` copies out already, the mirror service had no instance to take it, or its instance
 * speaks a protocol mirrors are not sent over (only HTTP/1.1 in cleartext).
 */
export type MirrorDropReason = 'body-too-large' | 'in-flight-limit' | 'no-instances' | 'unsupported-protocol';

/** Copies sent to a mirror service, by route and result (`answered`: any status, `failed`: a transport failure or a timeout). */
const mirrorRequestsTotal = new Counter({
  name: 'switchboard_mirror_requests_total',
  help: 'Request copies sent to a route\'s mirror service, by route and result (answered, failed); the answers are dropped.',
  labelNames: ['route', 'result'] as const,
  registers: [metricsRegistry],
});

/** Requests chosen for mirroring that were not copied, by route and reason (`MirrorDropReason`). */
const mirrorDroppedTotal = new Counter({
  name: 'switchboard_mirror_dropped_total',
  help: 'Requests chosen for mirroring that were not copied, by route and reason (body-too-large, in-flight-limit, no-instances, unsupported-protocol).',
  labelNames: ['route', 'reason'] as const,
  registers: [metricsRegistry],
});

/** Counts one copy sent to `route`'s mirror, once it has ended. */
export function countMirrorRequest(route: string, result: 'answered' | 'failed'): void {
  mirrorRequestsTotal.inc({ route, result });
}

/** Counts one request of `route` chosen for mirroring but not copied. */
export function countMirrorDropped(route: string, reason: MirrorDropReason): void {
  mirrorDroppedTotal.inc({ route, reason });
}
