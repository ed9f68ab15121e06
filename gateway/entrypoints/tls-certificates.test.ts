import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificate } from '../../test/harness/certificates.ts';
import { waitFor } from '../../test/harness/wait.ts';
import type { EntryPointConfig } from '../config/types.ts';
import { readCertificatePair } from '../config/certificate-check.ts';
import { loadCertificate, loadCertificateAt, warnOfValidity, type LoadedCertificate } from './tls-certificates.ts';
import { CertificateFolderWatch } from './tls-folder-watch.ts';
import { reloadSlot, TlsCertificates } from './tls-store.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A self-signed pair for `name`, valid for `days` from now (a negative count: expired that long ago), by openssl. */
function selfSigned(dir: string, name: string, days: number): { certFile: string; keyFile: string } {
  const files = { certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}-key.pem`) };
  const fresh = join(dir, `${name}-fresh.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', files.keyFile, '-out', fresh], { stdio: 'ignore' });
  // `x509 -days` signs again with notAfter that many days from now, negative ones included (req refuses those).
  execFileSync('openssl', ['x509', '-in', fresh, '-signkey', files.keyFile, '-days', String(days), '-out', files.certFile], { stdio: 'ignore' });
  return files;
}

function capture(level = 'info') {
  const lines: { msg: string; [field: string]: unknown }[] = [];
  return { lines, log: pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) }) };
}

describe('readCertificatePair', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-cert-pair-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the certificate whenever neither file can be read, and the key when only it cannot', async () => {
    const missing = { certFile: join(dir, 'gone.pem'), keyFile: join(dir, 'gone-key.pem') };
    // Both reads run at once: a pair read whichever failed first named the key about one time in ten
    // (42 of 500 reads on the development machine).
    const reasons: string[] = [];
    for (let read = 0; read < 300; read += 1) reasons.push(await readCertificatePair(missing).then(() => 'read', (error: Error) => error.message));
    expect(new Set(reasons)).toEqual(new Set([expect.stringContaining(missing.certFile)]));
    expect(reasons[0]).not.toContain(missing.keyFile);
    const present = selfSigned(dir, 'pair.test', 30);
    await expect(readCertificatePair({ certFile: present.certFile, keyFile: missing.keyFile })).rejects.toThrow(missing.keyFile);
    await expect(readCertificatePair(present)).resolves.toMatchObject({ cert: { text: expect.stringContaining('BEGIN CERTIFICATE') }, key: { text: expect.stringContaining('PRIVATE KEY') } });
  });
});

describe('loadCertificateAt and a renewal written one file at a time', () => {
  const READ_AGAIN = 'certificate pair refused; read again until both files have settled';
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-cert-settle-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A served pair for old.test, and its renewal for new.test staged in a folder of its own, its certificate already moved in. */
  async function renewalHalfWritten(name: string) {
    mkdirSync(join(dir, name, 'staging'), { recursive: true });
    const [served, renewed] = await Promise.all([makeCertificate(join(dir, name), 'site', { key: 'ec', names: ['old.test'] }), makeCertificate(join(dir, name, 'staging'), 'site', { key: 'ec', names: ['new.test'] })]);
    await rename(renewed.certFile, served.certFile);
    return { served, renewed };
  }

  it('loads a pair whose key is written within the settle time after the load first read it mismatched', async () => {
    const { served, renewed } = await renewalHalfWritten('fixed');
    const { lines, log } = capture('debug');
    // A settle time past any stall of a loaded machine between the first reading and the key's rename.
    const loading = loadCertificateAt(served, undefined, 'certificates.site', { settleMs: 1_000, log });
    const outcome = loading.then(
      (certificate) => certificate.names,
      (error: Error) => error.message,
    );
    let settled: unknown;
    void outcome.then((value) => (settled = value));
    await waitFor(() => lines.some((line) => line.msg === READ_AGAIN) || settled !== undefined, { intervalMs: 5, message: 'the mismatched pair read' });
    await rename(renewed.keyFile, served.keyFile);
    expect(await outcome).toEqual(['new.test']);
  });

  it('refuses a pair still mismatched once it has settled, with the key file, the reason and the key path', async () => {
    const { served } = await renewalHalfWritten('stays');
    const { lines, log } = capture('debug');
    const settleMs = 200;
    const started = performance.now();
    await expect(loadCertificateAt(served, undefined, 'certificates.site', { settleMs, log })).rejects.toThrow(`${served.keyFile}: the key does not match the certificate ${served.certFile} (certificates.site)`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(settleMs);
    const reads = lines.filter((line) => line.msg === READ_AGAIN);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads).toEqual(reads.map(() => expect.objectContaining({ keyFile: served.keyFile, reason: expect.stringContaining('does not match') })));
  });

  it('loads a pair that checks at its first reading without reading it again', async () => {
    const { lines, log } = capture('debug');
    const files = selfSigned(dir, 'stable.test', 30);
    // A settle time no start-up may wait for: a good pair is taken at once.
    const settleMs = 60_000;
    await expect(loadCertificateAt(files, undefined, 'certificates.stable', { settleMs, log })).resolves.toMatchObject({ names: ['stable.test'] });
    expect(lines).toEqual([]);
  });
});

describe('warnOfValidity', () => {
  let dir: string;
  let expired: LoadedCertificate;
  let current: LoadedCertificate;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-cert-validity-'));
    [expired, current] = await Promise.all([loadCertificate(selfSigned(dir, 'old.test', -1), undefined), loadCertificate(selfSigned(dir, 'current.test', 30), undefined)]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('warns of an expired certificate with its file, names and notAfter, and it still loads (a renewal may be under way)', () => {
    const { lines, log } = capture();
    expect(warnOfValidity(log, { entryPoint: 'websecure' }, expired)).toBe(true);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'certificate has expired; serving it all the same',
        entryPoint: 'websecure',
        certFile: join(dir, 'old.test.pem'),
        names: ['old.test'],
        notAfter: expired.validTo.toISOString(),
      }),
    ]);
    expect(expired.validTo.getTime()).toBeLessThan(Date.now());
  });

  it.each([
    ['not valid yet', (certificate: LoadedCertificate) => certificate.validFrom.getTime() - 1_000, 'certificate is not valid yet; serving it all the same'],
    ['expiring in 13 days', (certificate: LoadedCertificate) => certificate.validTo.getTime() - 13 * DAY_MS, 'certificate expires within 14 days'],
    ['expiring in 15 days', (certificate: LoadedCertificate) => certificate.validTo.getTime() - 15 * DAY_MS, undefined],
    ['valid for 30 days', () => Date.now(), undefined],
  ])('at a time the certificate is %s, says so or stays silent', (_when, now, message) => {
    const { lines, log } = capture();
    expect(warnOfValidity(log, { certificate: 'current' }, current, now(current))).toBe(message !== undefined);
    expect(lines.map((line) => line.msg)).toEqual(message ? [message] : []);
    if (message) expect(lines[0]).toMatchObject({ certificate: 'current', names: ['current.test'], notBefore: current.validFrom.toISOString(), notAfter: current.validTo.toISOString() });
  });

  it('warns when an entry point loads an expired certificate at start and when a reload of its files brings one', async () => {
    const { lines, log } = capture();
    const entryPoint = { name: 'websecure', tls: { certificates: [expired.files], defaultCertificate: undefined, minVersion: undefined, ciphers: undefined, clientAuth: undefined } } as unknown as EntryPointConfig;
    (await TlsCertificates.load(entryPoint, log)).close();
    const slot = { files: expired.files, keyPath: 'entryPoints.websecure.tls.certificates.0', current, lastRefusal: undefined };
    // No settle time: the files are as openssl left them (tls-store.test.ts covers the wait).
    const folders = new CertificateFolderWatch(async () => undefined, log, {}, { settleMs: 0 });
    try {
      expect(await reloadSlot(slot, undefined, log, 'websecure', folders)).toBe(true);
    } finally {
      folders.close();
    }
    expect(lines.filter((line) => line.level === 40)).toEqual([
      expect.objectContaining({ msg: 'certificate has expired; serving it all the same', entryPoint: 'websecure', certFile: expired.files.certFile }),
      expect.objectContaining({ msg: 'certificate has expired; serving it all the same', entryPoint: 'websecure', certFile: expired.files.certFile }),
    ]);
  });
});
