import type { EntryPointConfig, GatewayConfig } from './config/index.ts';

/** Keys whose change needs a restart: the entry points' listeners, the admin listener, the limits, the registry list, the worker count and the config store. */
export function restartOnlyChanges(current: GatewayConfig, next: GatewayConfig): string[] {
  const keys: string[] = [];
  if (JSON.stringify(current.entryPoints.map(listenerOf)) !== JSON.stringify(next.entryPoints.map(listenerOf))) keys.push('entryPoints');
  if (JSON.stringify(current.admin) !== JSON.stringify(next.admin)) keys.push('admin');
  if (JSON.stringify(current.limits) !== JSON.stringify(next.limits)) keys.push('limits');
  // Credentials of the same URLs are replaced in place (reconnectChangedCredentials).
  if (current.registries.map((registry) => registry.url).join() !== next.registries.map((registry) => registry.url).join()) keys.push('registries');
  if (current.workers !== next.workers) keys.push('workers');
  // The store is connected once, at start (its snapshot and timeout with it).
  if (JSON.stringify(current.configStore) !== JSON.stringify(next.configStore)) keys.push('configStore');
  return keys;
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
