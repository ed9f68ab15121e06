import type { GatewayConfig } from '../config/index.ts';
import { REDACTED, redactSecrets } from '../config/redaction.ts';
import { entryPointsWaitingForRestart, restartOnlyChanges } from '../restart-only-changes.ts';
import { routesInMatchOrder } from '../router/index.ts';

export { REDACTED } from '../config/redaction.ts';

/**
 * The body of `GET /api/config`: the resolved configuration (every default applied, durations in
 * milliseconds) as JSON, with secrets replaced by `REDACTED` (`redactSecrets`: the admin token,
 * every `password`, the password of a URL, the values of headers that carry credentials wherever
 * headers are set or matched, consumers' key digests) and every tracing exporter header value (a
 * hosted collector's API key sits under a name such as `x-honeycomb-team`). With a config store,
 * `store` holds its URL, the revision in force and the objects it refused (null without one).
 * Against `listening`, what the listeners run from (the file the gateway started with), it names
 * the restart-only keys that differ (`restartRequired`) and marks each entry point that does not
 * listen as shown (added or changed by a reload) with `restartRequired: true`; one a reload removed,
 * which still listens until a restart, is listed last as it started, with `removed: true` too.
 */
export function configView(config: GatewayConfig, store?: unknown, listening: GatewayConfig = config): unknown {
  const admin = config.admin && { listen: config.admin.listen, token: config.admin.token };
  const tracing = config.tracing && { ...config.tracing, headers: Object.fromEntries(Object.keys(config.tracing.headers).map((name) => [name, REDACTED])) };
  const waiting = new Set(entryPointsWaitingForRestart(listening, config));
  const entryPoints: unknown[] = config.entryPoints.map((entryPoint) => ({ ...entryPoint, restartRequired: waiting.has(entryPoint.name) }));
  // One a reload removed still listens as it started until a restart: listed after them, as it runs.
  for (const started of listening.entryPoints) {
    if (!config.entryPoints.some((entryPoint) => entryPoint.name === started.name)) entryPoints.push({ ...started, removed: true, restartRequired: true });
  }
  return redactSecrets({ ...config, entryPoints, admin: admin ?? false, tracing, store, restartRequired: restartOnlyChanges(listening, config) });
}

/** The body of `GET /api/routes`: every route with its place in matching order (`order`, from 0) and its settings, secrets redacted. */
export function routesView(config: GatewayConfig): { routes: unknown[] } {
  return { routes: routesInMatchOrder(config.routes).map((route, order) => redactSecrets({ order, ...route })) };
}
