import type { EntryPointConfig, GatewayConfig } from './config/index.ts';

/**
 * Keys of `next` that differ from what runs and so wait for a restart: the entry points' listeners,
 * the admin listener, the limits, the registry list, the worker count and the config store.
 * `running` is the configuration the gateway started with: a reload applies none of these, so
 * comparing with the previous reload would forget a change still waiting and report one undone.
 */
export function restartOnlyChanges(running: GatewayConfig, next: GatewayConfig): string[] {
  const keys: string[] = [];
  // By name, not by place: reordering the keys under `entryPoints` moves no listener. One removed still listens until a restart.
  const removed = running.entryPoints.some((entryPoint) => !next.entryPoints.some((candidate) => candidate.name === entryPoint.name));
  if (removed || entryPointsWaitingForRestart(running, next).length > 0) keys.push('entryPoints');
  if (JSON.stringify(running.admin) !== JSON.stringify(next.admin)) keys.push('admin');
  if (JSON.stringify(running.limits) !== JSON.stringify(next.limits)) keys.push('limits');
  // Credentials of the same URLs are replaced in place (reconnectChangedCredentials); a provider keeps the snapshot file it started with.
  const registries = (config: GatewayConfig) => JSON.stringify(config.registries.map((registry) => [registry.url, registry.snapshotPath ?? null]));
  if (registries(running) !== registries(next)) keys.push('registries');
  if (running.workers !== next.workers) keys.push('workers');
  // The store is connected once, at start (its snapshot and timeout with it).
  if (JSON.stringify(running.configStore) !== JSON.stringify(next.configStore)) keys.push('configStore');
  return keys;
}

/**
 * The entry points of `config` whose listener does not run as `config` declares it: added since
 * `running` started (nothing listens for them yet) or changed (the listener keeps its started
 * address, protocol and certificates). Each serves as declared only after a restart.
 */
export function entryPointsWaitingForRestart(running: GatewayConfig, config: GatewayConfig): string[] {
  const started = new Map(running.entryPoints.map((entryPoint) => [entryPoint.name, JSON.stringify(listenerOf(entryPoint))]));
  return config.entryPoints.filter((entryPoint) => started.get(entryPoint.name) !== JSON.stringify(listenerOf(entryPoint))).map((entryPoint) => entryPoint.name);
}

/**
 * What of an entry point its listener is built with. Its `middlewares` are left out: the request
 * handler builds each entry point's chain from the configuration in force. So is `tcp`: a tcp
 * entry point reads its service, `sni`, PROXY protocol and idle timeout for each new connection.
 * A reload that changed only those applies them, and must not be reported as waiting for a restart.
 */
function listenerOf(entryPoint: EntryPointConfig): Omit<EntryPointConfig, 'middlewares' | 'tcp'> {
  const { middlewares: _middlewares, tcp: _tcp, ...listener } = entryPoint;
  return listener;
}
