import { LogRateLimit } from '../../src/log-rate-limit.ts';
import type { Logger } from '../../src/logger.ts';

/** At most one warning per instance per this period about its failing TLS handshakes: an instance that fails every request must not flood the log. */
export const UPSTREAM_TLS_WARN_EVERY_MS = 30_000;

/** When each instance (`service address`) was last warned about; at most 1,024 remembered. */
const warned = new LogRateLimit(UPSTREAM_TLS_WARN_EVERY_MS);

/**
 * Warns that the TLS session with an instance failed on live traffic (`upstream-tls`), with the reason
 * the TLS layer gave: its Node or OpenSSL `code` (CERT_HAS_EXPIRED, ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED…)
 * and `error`'s message, the one the code came from (`upstreamErrorCode` takes undici's socket error's cause),
 * at most once per instance per `UPSTREAM_TLS_WARN_EVERY_MS` (as nginx logs "upstream SSL certificate verify
 * error"): the 502 alone does not say that the gateway's own client certificate or CA bundle is the one at fault.
 */
export function warnUpstreamTlsFailure(log: Logger, service: string, address: string, code: unknown, error: unknown, now = Date.now()): void {
  if (!warned.allow(`${service} ${address}`, now)) return;
  log.warn(
    { service, upstream: address, code, reason: reasonOf(error), everyMs: UPSTREAM_TLS_WARN_EVERY_MS },
    `the TLS session with an instance of service ${service} failed (${typeof code === 'string' ? code : 'no code'}): its requests answer 502 upstream-tls (logged at most once per instance every ${UPSTREAM_TLS_WARN_EVERY_MS / 1000} s)`,
  );
}

/** The message of the error the TLS code came from: undici's socket error carries it as its cause. */
function reasonOf(error: unknown): string | undefined {
  const ownCode = (error as { code?: unknown } | null)?.code;
  const cause = (error as { cause?: unknown } | null)?.cause;
  const source = (typeof ownCode !== 'string' || ownCode === 'UND_ERR_SOCKET') && cause instanceof Error ? cause : error;
  return source instanceof Error ? source.message : undefined;
}
