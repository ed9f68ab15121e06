import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import type { CertificateFiles, GatewayConfig } from './types.ts';
import type { TlsFileIssue } from './upstream-tls-files.ts';

/** What a checked certificate pair is: its parsed certificate, its key's type (`rsa`, `ec`, …) and OpenSSL's context. */
export interface CheckedCertificate {
  readonly x509: X509Certificate;
  readonly keyType: string;
  readonly context: SecureContext;
}

/**
 * Checks one certificate pair's PEM texts: the certificate parses, the key parses and matches it,
 * and OpenSSL accepts both (with `minVersion` when given). Throws a `ConfigFileError` naming the
 * file at fault and the reason (code `SB_CONFIG_INVALID`).
 */
export function checkCertificatePem(files: CertificateFiles, cert: string, key: string, minVersion?: 'TLSv1.2' | 'TLSv1.3'): CheckedCertificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new ConfigFileError(files.certFile, `not a PEM certificate (${errorMessage(error)})`, { cause: error });
  }
  let keyType: string;
  try {
    const privateKey = createPrivateKey(key);
    keyType = privateKey.asymmetricKeyType ?? 'unknown';
    if (!x509.checkPrivateKey(privateKey)) throw new ConfigFileError(files.keyFile, `the key does not match the certificate ${files.certFile}`);
  } catch (error) {
    if (error instanceof ConfigFileError) throw error;
    throw new ConfigFileError(files.keyFile, `not a PEM private key (${errorMessage(error)})`, { cause: error });
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, ...(minVersion ? { minVersion } : {}) });
  } catch (error) {
    throw new ConfigFileError(files.certFile, `refused by OpenSSL (${errorMessage(error)})`, { cause: error });
  }
  return { x509, keyType, context };
}

/** The error of a certificate or key file that cannot be read, as loading and checking both report it. */
export function unreadableFile(path: string, error: unknown): ConfigFileError {
  return new ConfigFileError(path, `cannot read the file (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`, { cause: error });
}

/** The last check of a pair, valid while neither file's identity, size or modification time changes. */
interface CheckMemo {
  readonly stamp: string;
  readonly issue: TlsFileIssue | undefined;
}

const memos = new Map<string, CheckMemo>();

/**
 * Reads and checks every certificate pair `config` names (each entry point's `tls.certificates`
 * and `tls.defaultCertificate`, and `certificates.<name>`), so that a missing, unreadable or
 * mismatched pair refuses the configuration at load, at start as on a reload, with the key path
 * and reason (and, from a config store, refuses that object alone). An entry point's pairs need a
 * restart to be served, so a reload that named a bad one would otherwise be taken and the gateway
 * would fail at its next start. A pair whose files did not change since the last check is not
 * read again, so a reload costs no file reads for the certificates it does not touch.
 */
export function checkCertificateFiles(config: GatewayConfig): TlsFileIssue[] {
  const issues: TlsFileIssue[] = [];
  const used = new Set<string>();
  const check = (files: CertificateFiles, minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined, at: readonly (string | number)[]) => {
    const id = `${files.certFile}\n${files.keyFile}\n${minVersion ?? ''}`;
    used.add(id);
    const stamp = fileStamp(files.certFile) + fileStamp(files.keyFile);
    const memo = memos.get(id);
    const issue = memo?.stamp === stamp ? memo.issue : checkPair(files, minVersion);
    memos.set(id, { stamp, issue });
    if (issue) issues.push({ path: [...at.map(String), ...issue.path], message: issue.message });
  };
  for (const entryPoint of config.entryPoints) {
    const tls = entryPoint.tls;
    if (!tls) continue;
    tls.certificates.forEach((files, index) => check(files, tls.minVersion, ['entryPoints', entryPoint.name, 'tls', 'certificates', index]));
    if (tls.defaultCertificate) check(tls.defaultCertificate, tls.minVersion, ['entryPoints', entryPoint.name, 'tls', 'defaultCertificate']);
  }
  for (const certificate of config.certificates) check(certificate, undefined, ['certificates', certificate.name]);
  for (const id of memos.keys()) if (!used.has(id)) memos.delete(id);
  return issues;
}

/** The issue of one pair, its path relative to the certificate (`certFile` or `keyFile`), or undefined. */
function checkPair(files: CertificateFiles, minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined): TlsFileIssue | undefined {
  const read = (path: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw unreadableFile(path, error);
    }
  };
  try {
    checkCertificatePem(files, read(files.certFile), read(files.keyFile), minVersion);
    return undefined;
  } catch (error) {
    if (!(error instanceof ConfigFileError)) throw error;
    const at = error.path === files.keyFile && error.path !== files.certFile ? 'keyFile' : 'certFile';
    return { path: [at], message: error.message };
  }
}

/** Identity, size and times of a file, or its error code: what tells a changed file from the one checked. */
function fileStamp(path: string): string {
  try {
    const stat = statSync(path);
    return `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs};`;
  } catch (error) {
    return `${(error as NodeJS.ErrnoException).code ?? 'error'};`;
  }
}
