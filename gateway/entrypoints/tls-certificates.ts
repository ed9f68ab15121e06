import type { X509Certificate } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { ConfigFileError } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import { checkCertificatePem, checkSettledCertificatePair, type CertificateSettleOptions } from '../config/certificate-check.ts';
import type { CertificateFiles } from '../config/types.ts';

/** A certificate and its key, read from disk, checked, and ready to serve. */
export interface LoadedCertificate {
  readonly files: CertificateFiles;
  /** DNS names from the SAN, or the subject CN when there is no SAN DNS entry. */
  readonly names: readonly string[];
  /** `rsa`, `ec`, `ed25519`…, for logs. */
  readonly keyType: string;
  /** The validity period (`notBefore`, `notAfter`), for the warnings of `warnOfValidity`. */
  readonly validFrom: Date;
  readonly validTo: Date;
  readonly context: SecureContext;
  /** The PEM texts, for `server.setSecureContext` when this is the default certificate. */
  readonly cert: string;
  readonly key: string;
}

/**
 * `loadCertificate` for a pair the configuration names at `keyPath` (`certificates.shop`,
 * `entryPoints.websecure.tls.certificates.0`): a `ConfigFileError` also says where, for a start
 * that must refuse the whole configuration.
 */
export async function loadCertificateAt(files: CertificateFiles, minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined, keyPath: string, settle: CertificateSettleOptions = {}): Promise<LoadedCertificate> {
  try {
    return await loadCertificate(files, minVersion, settle);
  } catch (error) {
    if (!(error instanceof ConfigFileError)) throw error;
    throw new ConfigFileError(error.path, `${error.message.slice(error.path.length + 2)} (${keyPath})`, { cause: error });
  }
}

/**
 * Reads and checks one certificate pair for a configuration being applied: the certificate parses,
 * the key parses and matches it, and OpenSSL accepts both. A bad pair is read again until it has
 * settled (`checkSettledCertificatePair`), so a renewal written one file at a time delays the load
 * by at most the maximum wait; a good one is taken at once. Rejects with a `ConfigFileError` naming
 * the file at fault and the reason (code `SB_CONFIG_INVALID`), so a bad file can be refused while
 * the old one keeps serving.
 */
export async function loadCertificate(files: CertificateFiles, minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined, settle: CertificateSettleOptions = {}): Promise<LoadedCertificate> {
  const { x509, keyType, context, cert, key } = await checkSettledCertificatePair(files, minVersion, settle);
  return loadedCertificate(files, x509, keyType, context, cert, key);
}

/** `loadCertificate` for texts already read (see `readCertificatePair` in certificate-check.ts). */
export function certificateFromPem(files: CertificateFiles, cert: string, key: string, minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined): LoadedCertificate {
  const { x509, keyType, context } = checkCertificatePem(files, cert, key, minVersion);
  return loadedCertificate(files, x509, keyType, context, cert, key);
}

function loadedCertificate(files: CertificateFiles, x509: X509Certificate, keyType: string, context: SecureContext, cert: string, key: string): LoadedCertificate {
  // Node 20 has no validFromDate; its date strings ("Dec  3 08:05:09 2026 GMT") parse as they are.
  return { files, names: certificateNames(x509), keyType, validFrom: new Date(x509.validFrom), validTo: new Date(x509.validTo), context, cert, key };
}

/** How long before its notAfter a certificate being loaded is reported as expiring soon. */
export const CERTIFICATE_EXPIRY_WARNING_MS = 14 * 24 * 60 * 60 * 1000;

/**
 * Logs at warn, with `fields`, the file, the names and the validity period, when `certificate`
 * (just loaded to serve) has expired, is not valid yet, or expires within
 * `CERTIFICATE_EXPIRY_WARNING_MS` of `now`; returns whether it did. It is served all the same: an
 * expired certificate may be kept on purpose while its renewal is under way (clients that do not
 * check dates keep working, and the file watch serves the renewed pair once it is written), and a
 * clock that is wrong would otherwise stop a gateway from serving any TLS at all.
 */
export function warnOfValidity(log: Logger, fields: Record<string, unknown>, certificate: LoadedCertificate, now = Date.now()): boolean {
  const { validFrom, validTo } = certificate;
  const message =
    validTo.getTime() < now
      ? 'certificate has expired; serving it all the same'
      : validFrom.getTime() > now
        ? 'certificate is not valid yet; serving it all the same'
        : validTo.getTime() - now < CERTIFICATE_EXPIRY_WARNING_MS
          ? 'certificate expires within 14 days'
          : undefined;
  if (!message) return false;
  log.warn({ ...fields, certFile: certificate.files.certFile, names: certificate.names, notBefore: validFrom.toISOString(), notAfter: validTo.toISOString() }, message);
  return true;
}

/** The DNS names a certificate serves: its SAN DNS entries, else its subject CN (RFC 6125 §6.4.4). */
export function certificateNames(x509: X509Certificate): string[] {
  const dns = (x509.subjectAltName ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
  if (dns.length > 0) return dns;
  const cn = /^CN=(.+)$/m.exec(x509.subject)?.[1];
  return cn ? [cn] : [];
}
