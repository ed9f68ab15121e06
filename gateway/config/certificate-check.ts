import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import { FolderWatchSettle, readFileWithSave, readingKey, type FileReading } from '../../src/folder-watch-settle.ts';
import type { Logger } from '../../src/logger.ts';
import type { CertificateFiles, EntryPointConfig, GatewayConfig } from './types.ts';
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

/**
 * Checks a CA bundle's PEM text (`tls.clientAuth.caFile`): its first certificate parses (node:tls
 * skips PEM blocks it cannot parse in `ca`, so a bundle of garbage would trust nothing and say
 * nothing) and OpenSSL takes the bundle. Throws a `ConfigFileError` naming the file and the reason.
 */
export function checkCaBundlePem(path: string, text: string): void {
  try {
    new X509Certificate(text);
    createSecureContext({ ca: text });
  } catch (error) {
    throw new ConfigFileError(path, `not a usable CA bundle (${errorMessage(error)})`, { cause: error });
  }
}

/** The error of a certificate or key file that cannot be read, as loading and checking both report it. */
export function unreadableFile(path: string, error: unknown): ConfigFileError {
  return new ConfigFileError(path, `cannot read the file (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`, { cause: error });
}

/**
 * The texts of a pair's certificate and key files with the saves they came from; rejects with a
 * `ConfigFileError` naming a file that cannot be read, the certificate's when neither can: always
 * the same one, so a pair that stays unreadable reads the same each time (its watch settles it in
 * the settle time, not the maximum wait) and its refusal is logged once, not once per file.
 */
export async function readCertificatePair(files: CertificateFiles): Promise<{ readonly cert: FileReading; readonly key: FileReading }> {
  const [cert, key] = await Promise.allSettled([readPem(files.certFile), readPem(files.keyFile)]);
  if (cert.status === 'rejected') throw cert.reason;
  if (key.status === 'rejected') throw key.reason;
  return { cert: cert.value, key: key.value };
}

/**
 * What identifies a reading of a pair for its `FolderWatchSettle`: both files' texts and saves (see
 * `readingKey`), or, for a pair that cannot be read (`readCertificatePair`'s error, which has no
 * save), that error. The settled check at apply and the certificate folder watch key pairs alike.
 */
export function pairReadingKey(reading: { readonly cert: FileReading; readonly key: FileReading } | { readonly unreadable: unknown }): string {
  return 'unreadable' in reading ? `unreadable\n${errorMessage(reading.unreadable)}` : `${readingKey(reading.cert)}\n${readingKey(reading.key)}`;
}

/** Settle time, maximum wait and log of `checkSettledCertificatePair` (the folder watches' defaults). */
export interface CertificateSettleOptions {
  /** How long a bad reading must stay the same before it is refused (`FOLDER_WATCH_SETTLE_MS` by default). */
  readonly settleMs?: number;
  /** Longest a pair that keeps changing is read again before its latest reading is judged (`FOLDER_WATCH_MAX_WAIT_MS` by default). */
  readonly maxWaitMs?: number;
  /** Where a pair read again is told at debug. */
  readonly log?: Logger;
  /** Stops the reading again (its owner is gone: a watch unsubscribed, a shutdown): the wait rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Reads and checks a pair (`readCertificatePair`, `checkCertificatePem`) for a configuration being
 * applied: a good reading is taken at once, and a bad one (a file missing, a key that does not match)
 * is refused only once it has settled, by the certificate folder watch's rule (`FolderWatchSettle`:
 * the same texts from the same saves `settleMs` apart, or the latest once the pair has kept changing
 * for `maxWaitMs`); until then the pair is read again. A renewal written one file at a time (certbot
 * writes and relinks them one by one) thus delays a start or reload that lands in it by at most the
 * maximum wait instead of refusing it. Rejects with the settled reading's `ConfigFileError`, or with
 * the reason of `options.signal` once it is aborted (no reading nor line after that).
 */
export async function checkSettledCertificatePair(
  files: CertificateFiles,
  minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined,
  options: CertificateSettleOptions = {},
): Promise<CheckedCertificate & { readonly cert: string; readonly key: string }> {
  const settle = new FolderWatchSettle(options.settleMs, options.maxWaitMs);
  for (;;) {
    options.signal?.throwIfAborted();
    let reading: string | undefined;
    let refusal: ConfigFileError;
    try {
      const pair = await readCertificatePair(files);
      reading = pairReadingKey(pair);
      return { ...checkCertificatePem(files, pair.cert.text, pair.key.text, minVersion), cert: pair.cert.text, key: pair.key.text };
    } catch (error) {
      if (!(error instanceof ConfigFileError)) throw error;
      refusal = error;
      reading ??= pairReadingKey({ unreadable: error });
    }
    const verdict = settle.observe(reading);
    if (verdict.settled) throw refusal;
    options.signal?.throwIfAborted();
    options.log?.debug({ certFile: files.certFile, keyFile: files.keyFile, reason: refusal.message, readAgainInMs: verdict.readAgainInMs }, 'certificate pair refused; read again until both files have settled');
    await delay(verdict.readAgainInMs, undefined, options.signal ? { signal: options.signal } : {}).catch((error: unknown) => {
      // Node's AbortError, not the reason the signal was aborted with.
      options.signal?.throwIfAborted();
      throw error;
    });
  }
}

/** The last check of a pair, valid while neither file's identity, size or modification time changes. */
interface CheckMemo {
  readonly stamp: string;
  readonly issue: TlsFileIssue | undefined;
}

const memos = new Map<string, CheckMemo>();

/**
 * Reads and checks every certificate pair `config` names (each entry point's `tls.certificates`
 * and `tls.defaultCertificate`, and `certificates.<name>`) and each entry point's client CA bundle
 * (`tls.clientAuth.caFile`), so that a missing, unreadable or
 * mismatched pair refuses the configuration at load, at start as on a reload, with the key path
 * and reason (and, from a config store, refuses that object alone). An entry point's pairs need a
 * restart to be served, so a reload that named a bad one would otherwise be taken and the gateway
 * would fail at its next start. A pair whose files did not change since the last check is not
 * read again, so a reload costs no file reads for the certificates it does not touch.
 */
export function checkCertificateFiles(config: GatewayConfig): TlsFileIssue[] {
  const issues: TlsFileIssue[] = [];
  const used = new Set<string>();
  for (const { files, minVersion, at } of certificatePairsOf(config)) {
    const id = `${files.certFile}\n${files.keyFile}\n${minVersion ?? ''}`;
    used.add(id);
    const stamp = fileStamp(files.certFile) + fileStamp(files.keyFile);
    const memo = memos.get(id);
    const issue = memo?.stamp === stamp ? memo.issue : checkPair(files, minVersion);
    memos.set(id, { stamp, issue });
    if (issue) issues.push({ path: [...at.map(String), ...issue.path], message: issue.message });
  }
  for (const entryPoint of config.entryPoints) {
    const caFile = entryPoint.tls?.clientAuth?.caFile;
    if (caFile === undefined) continue;
    const id = `ca\n${caFile}`;
    used.add(id);
    const stamp = fileStamp(caFile);
    const memo = memos.get(id);
    const issue = memo?.stamp === stamp ? memo.issue : checkCaBundle(caFile);
    memos.set(id, { stamp, issue });
    if (issue) issues.push({ path: ['entryPoints', entryPoint.name, 'tls', 'clientAuth', 'caFile'], message: issue.message });
  }
  for (const id of memos.keys()) if (!used.has(id)) memos.delete(id);
  return issues;
}

/** The issue of a client-certificate CA bundle that cannot be read or used, or undefined. */
function checkCaBundle(path: string): TlsFileIssue | undefined {
  try {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw unreadableFile(path, error);
    }
    checkCaBundlePem(path, text);
    return undefined;
  } catch (error) {
    if (!(error instanceof ConfigFileError)) throw error;
    return { path: [], message: error.message };
  }
}

/** A certificate pair a configuration names, with its entry point's TLS floor and where it sits. */
export interface ConfiguredCertificatePair {
  readonly files: CertificateFiles;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined;
  readonly at: readonly (string | number)[];
}

/** Every certificate pair `config` names: each entry point's `tls.certificates` and `tls.defaultCertificate`, and `certificates.<name>`. */
export function certificatePairsOf(config: GatewayConfig): ConfiguredCertificatePair[] {
  const pairs = config.entryPoints.flatMap(entryPointCertificatePairs);
  for (const certificate of config.certificates) pairs.push({ files: certificate, minVersion: undefined, at: ['certificates', certificate.name] });
  return pairs;
}

/** The certificate pairs of one entry point: its `tls.certificates` in order, then its `tls.defaultCertificate` (last); none without `tls`. */
export function entryPointCertificatePairs(entryPoint: EntryPointConfig): ConfiguredCertificatePair[] {
  const tls = entryPoint.tls;
  if (!tls) return [];
  const pairs: ConfiguredCertificatePair[] = tls.certificates.map((files, index) => ({ files, minVersion: tls.minVersion, at: ['entryPoints', entryPoint.name, 'tls', 'certificates', index] }));
  if (tls.defaultCertificate) pairs.push({ files: tls.defaultCertificate, minVersion: tls.minVersion, at: ['entryPoints', entryPoint.name, 'tls', 'defaultCertificate'] });
  return pairs;
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

async function readPem(path: string): Promise<FileReading> {
  try {
    return await readFileWithSave(path);
  } catch (error) {
    throw unreadableFile(path, error);
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
