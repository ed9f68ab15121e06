import type { GatewayConfig } from '../config/index.ts';
import { routesInMatchOrder } from '../router/index.ts';

/** What a secret is replaced with in `GET /api/config`. */
export const REDACTED = '[redacted]';

/**
 * The body of `GET /api/config`: the resolved configuration (every default applied, durations in
 * milliseconds) as JSON, with secrets (the admin token) replaced by `REDACTED`; with a config store,
 * `store` holds its URL, the revision in force and the objects it refused (null without one).
 */
export function configView(config: GatewayConfig, store?: unknown): unknown {
  const admin = config.admin && { listen: config.admin.listen, token: config.admin.token === undefined ? null : REDACTED };
  return toJson({ ...config, admin: admin ?? false, store });
}

/** The body of `GET /api/routes`: every route with its place in matching order (`order`, from 0) and its settings. */
export function routesView(config: GatewayConfig): { routes: unknown[] } {
  return { routes: routesInMatchOrder(config.routes).map((route, order) => toJson({ order, ...route })) };
}

/** A JSON-ready copy: Maps become objects, undefined becomes null, so every key shows. */
function toJson(value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([key, entry]) => [String(key), toJson(entry)]));
  if (Array.isArray(value)) return value.map(toJson);
  if (value === undefined) return null;
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, toJson(entry)]));
  return value;
}
