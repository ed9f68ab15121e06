// The admin listener: JSON views, live events (SSE), Prometheus metrics and the dashboard.
import { map, type Observable } from 'rxjs';
import type { AdminSettings } from '../config/index.ts';
import { collectProcessMetrics } from '../telemetry/index.ts';
import { endpointStates, type AdminSources } from './admin-sources.ts';
import { AdminServer } from './admin-server.ts';
import { loadDashboardAssets } from './dashboard-assets.ts';
import type { ConfigChange, RateLimitChange } from './event-types.ts';
import { AdminEvents } from './events.ts';

export { AdminServer } from './admin-server.ts';
export type { AdminServerOptions } from './admin-server.ts';
export { DRAINING } from './admin-sources.ts';
export type { AdminSources, Readiness, RegistryRef } from './admin-sources.ts';
export { ADMIN_EVENT_TYPES } from './event-types.ts';
export type { AdminEvent, AdminEventPayloads, AdminEventType, ConfigChange, RateLimitChange } from './event-types.ts';
export { AdminEvents } from './events.ts';
export { HEALTH_REASON_TEXT, healthVerdict } from './health-state.ts';
export type { HealthReason, HealthState } from './health-state.ts';

/** A running admin listener. */
export interface AdminListener {
  /** The bound port. */
  readonly port: number;
  readonly events: AdminEvents;
  /** Ends event streams, closes the listener and stops deriving events. */
  close(): Promise<void>;
}

/**
 * Derives the admin events from the gateway's streams and starts the admin listener on
 * `settings.listen`; rejects (with nothing left running) when it cannot bind.
 */
export async function startAdmin(sources: AdminSources, config$: Observable<ConfigChange | RateLimitChange>, settings: AdminSettings, options: { heartbeatMs?: number } = {}): Promise<AdminListener> {
  collectProcessMetrics();
  const events = new AdminEvents({
    health$: sources.balancers.health$,
    statuses$: sources.aggregator.statuses$,
    config$,
    protection$: sources.aggregator.protection$,
    forgotten$: sources.balancers.forgotten$.pipe(map((service) => ({ service, afterMs: sources.config().forgetServicesAfterMs }))),
    ...(sources.breakers ? { breakers$: sources.breakers.changes$ } : {}),
    describe: (snapshot) => endpointStates(sources, snapshot),
  });
  const server = new AdminServer(sources, events, await loadDashboardAssets(), { listen: settings.listen, token: settings.token, ...options });
  let port: number;
  try {
    port = await server.listen();
  } catch (error) {
    events.close();
    throw error;
  }
  return {
    port,
    events,
    async close() {
      await server.close();
      events.close();
    },
  };
}
