import { isIP } from 'node:net';
import type { Logger } from './logger.ts';

/** Node's and OpenSSL's codes of a certificate that does not carry the name it was checked against. */
const NAME_MISMATCH_CODES: ReadonlySet<string> = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH']);

/** Services already told, by the data plane or an active check; bounded by the services checked or routed to. */
const hinted = new Set<string>();

/**
 * Warns once per service (per process, whichever of traffic and active checks meets it first) when
 * an instance registered by IP failed the TLS handshake because its certificate does not carry that
 * IP and the service has no `tls.serverName`: no SNI is sent to an IP and the certificate is checked
 * against the IP, never against the client's Host (which let any client choose the name), so
 * instances registered by IP with a certificate for their DNS name (ZooKeeper or Spring
 * `preferIpAddress`) need the name configured. `code` is the handshake error's Node or OpenSSL code.
 * Meant for TLS failures only, so it costs nothing on the success path.
 */
export function hintServerNameOnMismatch(log: Logger, service: string, host: string, serverName: string | undefined, code: unknown, reason?: string): void {
  if (serverName !== undefined || hinted.has(service) || isIP(host) === 0) return;
  if (typeof code !== 'string' || !NAME_MISMATCH_CODES.has(code)) return;
  hinted.add(service);
  log.warn(
    { service, upstream: host, code, reason },
    `service ${service}: instance ${host} is registered by IP and its certificate does not carry that IP; set services.${service}.tls.serverName to the name on the instances' certificates (no SNI is sent to an IP, and the client's Host is never used)`,
  );
}
