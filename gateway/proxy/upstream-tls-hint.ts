import { isIP } from 'node:net';
import type { Logger } from '../../src/logger.ts';
import type { UpstreamTlsOptions } from '../transports/index.ts';
import { upstreamErrorCode } from './upstream-error.ts';

/** Node's and OpenSSL's codes of a certificate that does not carry the name it was checked against. */
const NAME_MISMATCH_CODES: ReadonlySet<string> = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH']);

/** Services already told; bounded by the configured services. */
const hinted = new Set<string>();

/**
 * Warns once per service (per process) when an instance registered by IP failed the TLS handshake
 * because its certificate does not carry that IP and the service has no `tls.serverName`: the
 * gateway sends no SNI to an IP and checks the certificate against the IP, never against the
 * client's Host (which let any client choose the name), so instances registered by IP with a
 * certificate for their DNS name (ZooKeeper or Spring `preferIpAddress`) need the name configured.
 * Called for `upstream-tls` failures only, so it costs nothing on the success path.
 */
export function hintServerNameOnMismatch(log: Logger, service: string, host: string, tls: UpstreamTlsOptions, error: unknown): void {
  if (tls.serverName !== undefined || hinted.has(service) || isIP(host) === 0) return;
  const code = upstreamErrorCode(error);
  if (typeof code !== 'string' || !NAME_MISMATCH_CODES.has(code)) return;
  hinted.add(service);
  log.warn(
    { service, upstream: host, code, reason: (error as Error | null)?.message },
    `service ${service}: instance ${host} is registered by IP and its certificate does not carry that IP; set services.${service}.tls.serverName to the name on the instances' certificates (no SNI is sent to an IP, and the client's Host is never used)`,
  );
}
