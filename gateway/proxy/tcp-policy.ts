import { serviceSettings, type GatewayConfig, type TcpEntryPointSettings } from '../config/index.ts';
import { canonicalName } from '../entrypoints/tls-sni.ts';
import type { TcpForwardPolicy } from './tcp-forward.ts';

/**
 * The service a connection to `entryPoint` goes to: by its TLS server name (exact, then `*.parent`),
 * else the entry point's; undefined when it has none (an `sni` table alone). The name is compared as
 * the certificate was chosen by it, without case or a trailing dot, so a connection goes to the
 * service of the certificate it got, and a passed-through one as it would have with `tls`.
 */
export function tcpServiceFor(entryPoint: TcpEntryPointSettings, serverName: string | undefined): string | undefined {
  if (serverName === undefined || entryPoint.sni.size === 0) return entryPoint.service;
  const name = canonicalName(serverName);
  const dot = name.indexOf('.');
  return entryPoint.sni.get(name) ?? (dot > 0 ? entryPoint.sni.get(`*${name.slice(dot)}`) : undefined) ?? entryPoint.service;
}

/**
 * How a connection to `entryPoint` with `serverName` is forwarded under `config`: its service, the
 * service's connect timeout and attempts (retries only when `retryOn` has `connect-failure`), the
 * entry point's idle timeout, and the PROXY protocol of the entry point, else of the service.
 * Undefined when no service takes the connection (`tcpServiceFor`).
 */
export function tcpForwardPolicy(config: GatewayConfig, entryPoint: TcpEntryPointSettings, serverName: string | undefined): TcpForwardPolicy | undefined {
  const service = tcpServiceFor(entryPoint, serverName);
  if (service === undefined) return undefined;
  const settings = serviceSettings(config, service);
  return {
    service,
    attempts: settings.retries.retryOn.includes('connect-failure') ? settings.retries.attempts : 1,
    connectTimeoutMs: settings.timeouts.connectMs,
    idleTimeoutMs: entryPoint.idleTimeoutMs,
    proxyProtocol: entryPoint.proxyProtocol ?? settings.proxyProtocol,
  };
}
