import { collectDefaultMetrics, Counter, Gauge } from 'prom-client';
import { isHealthy, type HealthSnapshot } from '../../src/health/index.ts';
import { metricsRegistry } from '../../src/metrics.ts';

/** Instances the gateway knows per service (`total`, registry members plus those in their removal grace) and those passing health (`healthy`). */
export const instancesGauge = new Gauge({
  name: 'switchboard_instances',
  help: 'Instances per service: total known (registry members and those in their removal grace period), and healthy (not failing active checks, not ejected).',
  labelNames: ['service', 'state'] as const,
  registers: [metricsRegistry],
});

/** Configuration files read after start-up, by result: `applied`, or `refused` (the running configuration stays). */
export const configReloadsTotal = new Counter({
  name: 'switchboard_config_reloads_total',
  help: 'Configuration changes read after start-up, by result (applied, refused).',
  labelNames: ['result'] as const,
  registers: [metricsRegistry],
});

/** Certificate files read again after they changed on disk, by entry point and result: `applied`, or `refused` (the old certificate keeps serving). */
export const tlsReloadsTotal = new Counter({
  name: 'switchboard_tls_reloads_total',
  help: 'Certificate and key files read again after a change, by entry point and result (applied, refused: the old certificate keeps serving).',
  labelNames: ['entry_point', 'result'] as const,
  registers: [metricsRegistry],
});

/**
 * Connections to a TLS entry point refused before any request, by entry point and reason
 * (`TlsRefusalReason`): plain HTTP sent to the TLS port, a client certificate missing or refused
 * (`tls.clientAuth`), a handshake that timed out (on a passthrough tcp entry point, a ClientHello
 * not read in time), one that failed otherwise, a server name no service takes (`no-service`), a
 * client that closed or reset before its ClientHello was whole (`client-closed`), or one whose
 * ClientHello did not come whole within 20 KiB (`client-hello-too-large`).
 */
export const tlsHandshakeFailuresTotal = new Counter({
  name: 'switchboard_tls_handshake_failures_total',
  help: 'Connections to a TLS entry point refused before any request, by entry point and reason (plain-http, client-certificate, timeout, handshake, no-service, client-closed, client-hello-too-large).',
  labelNames: ['entry_point', 'reason'] as const,
  registers: [metricsRegistry],
});

/** Access log lines dropped because stdout did not keep up (or was closed): the gateway never waits for its log reader. */
export const logDroppedTotal = new Counter({
  name: 'switchboard_log_dropped_total',
  help: 'Operational log lines dropped because stderr did not keep up or could not be written (the gateway never blocks on its log reader).',
  registers: [metricsRegistry],
});

export const accessLogDroppedTotal = new Counter({
  name: 'switchboard_access_log_dropped_total',
  help: 'Access log lines dropped because stdout did not keep up or could not be written (the gateway never blocks on its log reader).',
  registers: [metricsRegistry],
});

/** Sets `switchboard_instances` of the snapshot's service. */
export function recordInstances(snapshot: HealthSnapshot): void {
  let healthy = 0;
  for (const endpoint of snapshot.endpoints) if (isHealthy(endpoint)) healthy += 1;
  instancesGauge.set({ service: snapshot.service, state: 'total' }, snapshot.endpoints.length);
  instancesGauge.set({ service: snapshot.service, state: 'healthy' }, healthy);
}

let processMetricsStarted = false;

/**
 * Adds prom-client's standard process and Node.js metrics (`process_cpu_seconds_total`,
 * `nodejs_eventloop_lag_seconds`, heap sizes…) to the registry `/metrics` serves; once per process.
 */
export function collectProcessMetrics(): void {
  if (processMetricsStarted) return;
  processMetricsStarted = true;
  collectDefaultMetrics({ register: metricsRegistry });
}
