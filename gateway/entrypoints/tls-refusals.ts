import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { LogRateLimit } from '../../src/log-rate-limit.ts';
import type { Logger } from '../../src/logger.ts';
import { tlsHandshakeFailuresTotal } from '../telemetry/index.ts';
import { MAX_HELD_BYTES } from './tls-client-hello.ts';

/** Why a connection to a TLS entry point was refused before any request (the `reason` of `switchboard_tls_handshake_failures_total`). */
export type TlsRefusalReason = 'plain-http' | 'client-certificate' | 'timeout' | 'handshake' | 'no-service' | 'client-closed' | 'client-hello-too-large';

/**
 * Reasons counted and logged at debug only, never warned: a client that closes or resets its
 * connection before its ClientHello is whole is what port scanners and the health checks of L4
 * load balancers do on every probe, nothing an operator can act on (Envoy's tls_inspector counted
 * them apart, as `connection_closed`).
 */
const QUIET: ReadonlySet<TlsRefusalReason> = new Set(['client-closed']);

/** At most one warning per entry point and reason per this period: a scanner or a misconfigured client fleet must not flood the log. */
export const TLS_REFUSAL_WARN_EVERY_MS = 60_000;

/** When each `entryPoint reason` was last warned about; at most 1,024 remembered. */
const warned = new LogRateLimit(TLS_REFUSAL_WARN_EVERY_MS);

const WHAT: Readonly<Record<TlsRefusalReason, string>> = {
  'plain-http': 'plain HTTP sent to the TLS port, answered 400 plain-http-on-tls-port',
  'client-certificate': 'a client certificate missing or not verified by the tls.clientAuth CA bundle (unknown CA, expired, not for client use…)',
  timeout: 'a TLS handshake not finished in time',
  handshake: 'a failed TLS handshake',
  'no-service': 'a server name (or none: no SNI, or not TLS) that matches no sni entry, and no service to fall back on',
  'client-closed': 'the client closed or reset the connection before its ClientHello was whole',
  'client-hello-too-large': `a ClientHello still not whole after ${MAX_HELD_BYTES / 1024} KiB read (sent in tiny records)`,
};

/**
 * Why a handshake failed, from the error node:tls reported and the socket: a certificate that
 * failed verification leaves its reason in `authorizationError` (Node then just destroys the
 * socket, and reports a reset); a client that sent none fails in OpenSSL itself. Node's own
 * handshake timeout (ERR_TLS_HANDSHAKE_TIMEOUT) never gets here: `HandshakeDeadlines` cuts the
 * connection first and `tlsServers` drops what node:tls reports of a cut connection.
 */
export function tlsFailureOf(error: Error & { code?: unknown }, socket: Pick<TLSSocket, 'authorizationError'> | undefined): { reason: TlsRefusalReason; code: string | undefined } {
  const authorizationError = socket?.authorizationError as unknown;
  if (typeof authorizationError === 'string' || authorizationError instanceof Error) {
    return { reason: 'client-certificate', code: typeof authorizationError === 'string' ? authorizationError : (authorizationError as Error & { code?: string }).code };
  }
  const code = typeof error.code === 'string' ? error.code : undefined;
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return { reason: 'client-certificate', code };
  return { reason: 'handshake', code };
}

/** The client of a refused connection: its address, and the server name it sent when that is what was refused. */
export type RefusedPeer = Pick<Socket, 'remoteAddress'> & { readonly serverName?: string | undefined };

/**
 * Counts a connection a TLS entry point refused before any request, logs it at debug, and warns
 * at most once per entry point and reason every `TLS_REFUSAL_WARN_EVERY_MS` (the first refusal of
 * a kind says what is wrong; the counter says how often), except the `QUIET` reasons. None reaches the access log: no request was read.
 */
export function recordTlsRefusal(log: Logger, entryPoint: string, reason: TlsRefusalReason, code: string | undefined, peer: RefusedPeer, now = Date.now()): void {
  tlsHandshakeFailuresTotal.inc({ entry_point: entryPoint, reason });
  const fields = { entryPoint, reason, code, remoteAddress: peer.remoteAddress, ...(peer.serverName === undefined ? {} : { serverName: peer.serverName }) };
  if (QUIET.has(reason) || !warned.allow(`${entryPoint} ${reason}`, now)) return void log.debug(fields, 'TLS connection refused');
  log.warn(
    { ...fields, everyMs: TLS_REFUSAL_WARN_EVERY_MS },
    `entry point ${entryPoint} refused a connection: ${WHAT[reason]}${code ? ` (${code})` : ''}; counted in switchboard_tls_handshake_failures_total (warned at most once per reason every ${TLS_REFUSAL_WARN_EVERY_MS / 1000} s)`,
  );
}
