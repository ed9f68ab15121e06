import type { BreakerFallback, CircuitBreakerSettings } from './types-breaker.ts';
import type { GatewayConfig } from './types.ts';

/**
 * Every service `config` names: declared under `services`, the target of a route or of a tcp entry
 * point (with its `sni` targets), a route's mirror, or a circuit breaker's fallback. These are never forgotten when
 * their registries drop them: they stay listed, empty, and answer 503 as before.
 */
export function servicesNamedIn(config: GatewayConfig): Set<string> {
  const names = new Set(config.services.keys());
  const addFallback = (breaker: CircuitBreakerSettings | false | undefined) => {
    const fallback: BreakerFallback | undefined = breaker ? breaker.fallback : undefined;
    if (fallback?.kind === 'service') names.add(fallback.service);
  };
  addFallback(config.defaults.circuitBreaker);
  for (const settings of config.services.values()) addFallback(settings.circuitBreaker);
  for (const route of config.routes) {
    if (route.service !== undefined) names.add(route.service);
    if (route.mirror !== undefined) names.add(route.mirror.service);
    addFallback(route.circuitBreaker);
  }
  for (const entryPoint of config.entryPoints) {
    if (!entryPoint.tcp) continue;
    if (entryPoint.tcp.service !== undefined) names.add(entryPoint.tcp.service);
    for (const service of entryPoint.tcp.sni.values()) names.add(service);
  }
  return names;
}
