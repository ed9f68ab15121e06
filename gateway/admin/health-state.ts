import type { EndpointHealth } from '../../src/health/index.ts';

/** An instance's health as the admin API reports it. */
export type HealthState = 'healthy' | 'unhealthy' | 'unknown';

/**
 * Why an instance is in its state: `ejected` (passive outlier detection), `check-failing` (active
 * checks), `left-registry` (gone from the registry, kept while it passes checks, for the removal
 * grace period), `check-passing`, `check-pending` (active checks on, no verdict yet), `registered`
 * (listed by the registry; no active checks, so the registry agent's probe vouches for it).
 */
export type HealthReason = 'ejected' | 'check-failing' | 'left-registry' | 'check-passing' | 'check-pending' | 'registered';

/** A sentence for each reason, for people. */
export const HEALTH_REASON_TEXT: Readonly<Record<HealthReason, string>> = {
  ejected: 'ejected by outlier detection',
  'check-failing': 'active health check failing',
  'left-registry': 'left the registry; kept while it passes checks (grace period)',
  'check-passing': 'passing active health checks',
  'check-pending': 'waiting for the first active health check',
  registered: 'in the registry; no active checks',
};

/** An instance's health state and the reason for it. */
export interface HealthVerdict {
  readonly state: HealthState;
  readonly reason: HealthReason;
}

/**
 * The admin verdict on one endpoint, strongest reason first: an ejection or a failing check makes
 * it unhealthy; one kept after leaving the registry is as healthy as its checks say; otherwise the
 * checks decide, and without active checks a registered instance counts as healthy.
 */
export function healthVerdict(endpoint: Pick<EndpointHealth, 'active' | 'ejected' | 'inRegistry'>, activeChecks: boolean): HealthVerdict {
  if (endpoint.ejected) return { state: 'unhealthy', reason: 'ejected' };
  if (endpoint.active === 'unhealthy') return { state: 'unhealthy', reason: 'check-failing' };
  if (!endpoint.inRegistry) return { state: endpoint.active === 'healthy' ? 'healthy' : 'unknown', reason: 'left-registry' };
  if (endpoint.active === 'healthy') return { state: 'healthy', reason: 'check-passing' };
  return activeChecks ? { state: 'unknown', reason: 'check-pending' } : { state: 'healthy', reason: 'registered' };
}
