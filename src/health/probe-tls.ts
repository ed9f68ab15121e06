import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';

/** TLS settings of a probe, as plain values (PEM text), so the core knows nothing of config files. */
export interface ProbeTlsOptions {
  /** Trusted CAs (PEM); replaces the system roots, as Node's `ca` does. */
  readonly ca?: string;
  /** Client certificate and key (PEM) for mutual TLS. */
  readonly cert?: string;
  readonly key?: string;
  /** SNI and the name verified; the target's host by default (never an IP as SNI, RFC 6066). */
  readonly serverName?: string;
  /** Verify the upstream certificate; true by default. */
  readonly verify?: boolean;
}

/**
 * node:tls connect options for `host` under `tls`: the CA, the client certificate, verification
 * and the server name. An IP host without a configured `serverName` sends no SNI, and the
 * certificate is then checked against the IP.
 */
export function probeTlsConnectOptions(host: string, tls: ProbeTlsOptions = {}): ConnectionOptions {
  const serverName = tls.serverName ?? (isIP(host) === 0 ? host : undefined);
  return {
    rejectUnauthorized: tls.verify ?? true,
    ...(serverName === undefined ? {} : { servername: serverName }),
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key }),
  };
}
