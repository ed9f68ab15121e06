import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificate, type TestCertificate } from '../../test/harness/certificates.ts';
import { waitFor } from '../../test/harness/wait.ts';
import type { Logger } from '../../src/logger.ts';
import { checkSettledCertificatePair } from './certificate-check.ts';
import { parseConfig } from './index.ts';
import { errorOf } from './config-testing.ts';

describe('named certificates in the configuration', () => {
  let dir: string;
  let shop: TestCertificate;
  let other: TestCertificate;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-named-cert-config-'));
    [shop, other] = await Promise.all([makeCertificate(dir, 'shop', { key: 'ec', names: ['shop.test'] }), makeCertificate(dir, 'other', { key: 'rsa', names: ['other.test'] })]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const HTTPS = 'entryPoints:\n  web: { listen: ":8080" }\n  websecure: { listen: ":8443", protocol: https, tls: { certificates: [{ certFile: shop.pem, keyFile: shop-key.pem }] } }\n';
  const parse = (text: string) => parseConfig(join(dir, 'gateway.yaml'), text, { readFiles: false });
  const refusal = (text: string, readFiles = true) => errorOf(text, join(dir, 'gateway.yaml'), { readFiles });

  it('resolves relative paths from the configuration file, in name order, with the entry points each names', () => {
    const config = parse(`${HTTPS}certificates:\n  shop: { certFile: shop.pem, keyFile: /keys/shop-key.pem, entryPoints: [websecure] }\n  api: { certFile: /c/api.pem, keyFile: /c/api-key.pem }\n`);
    expect(config.certificates).toEqual([
      { name: 'api', certFile: '/c/api.pem', keyFile: '/c/api-key.pem', entryPoints: undefined },
      { name: 'shop', certFile: join(dir, 'shop.pem'), keyFile: '/keys/shop-key.pem', entryPoints: ['websecure'] },
    ]);
  });

  it.each([
    ['a plain entry point', '[web]', 'certificates.shop.entryPoints.0', 'entry point "web" does not terminate TLS'],
    ['an unknown entry point', '[nowhere]', 'certificates.shop.entryPoints.0', 'no entry point is named "nowhere" (TLS entry points: websecure)'],
  ])('refuses a certificate naming %s', (_what, entryPoints, keyPath, reason) => {
    const error = refusal(`${HTTPS}certificates:\n  shop: { certFile: /c/s.pem, keyFile: /c/s-key.pem, entryPoints: ${entryPoints} }\n`, false);
    expect(error.issues).toEqual([expect.objectContaining({ keyPath, reason: expect.stringContaining(reason) })]);
  });

  it('reads and checks each pair at load, naming the key path, the file and the reason', () => {
    const good = `${HTTPS}certificates:\n  shop: { certFile: shop.pem, keyFile: shop-key.pem }\n`;
    expect(parseConfig(join(dir, 'gateway.yaml'), good).certificates.map((certificate) => certificate.name)).toEqual(['shop']);
    const missing = refusal(`${HTTPS}certificates:\n  shop: { certFile: shop.pem, keyFile: nowhere-key.pem }\n`);
    expect(missing.issues).toEqual([expect.objectContaining({ keyPath: 'certificates.shop.keyFile', reason: `${join(dir, 'nowhere-key.pem')}: cannot read the file (ENOENT)` })]);
    const mismatched = refusal(`${HTTPS}certificates:\n  shop: { certFile: shop.pem, keyFile: other-key.pem }\n`);
    expect(mismatched.issues).toEqual([expect.objectContaining({ keyPath: 'certificates.shop.keyFile', reason: expect.stringContaining(`the key does not match the certificate ${shop.certFile}`) })]);
  });

  it.each([
    ['a missing key file', '{ certificates: [{ certFile: shop.pem, keyFile: nowhere-key.pem }] }', 'entryPoints.websecure.tls.certificates.0.keyFile', (dir: string) => `${join(dir, 'nowhere-key.pem')}: cannot read the file (ENOENT)`],
    ['a missing certificate file', '{ certificates: [{ certFile: nowhere.pem, keyFile: shop-key.pem }] }', 'entryPoints.websecure.tls.certificates.0.certFile', (dir: string) => `${join(dir, 'nowhere.pem')}: cannot read the file (ENOENT)`],
    ['a key of another certificate', '{ certificates: [{ certFile: shop.pem, keyFile: shop-key.pem }, { certFile: shop.pem, keyFile: other-key.pem }] }', 'entryPoints.websecure.tls.certificates.1.keyFile', (dir: string) => `${join(dir, 'other-key.pem')}: the key does not match the certificate ${join(dir, 'shop.pem')}`],
    ['a default certificate that is no certificate', '{ certificates: [{ certFile: shop.pem, keyFile: shop-key.pem }], defaultCertificate: { certFile: shop-key.pem, keyFile: shop-key.pem } }', 'entryPoints.websecure.tls.defaultCertificate.certFile', (dir: string) => `${join(dir, 'shop-key.pem')}: not a PEM certificate`],
  ])('refuses an entry point whose TLS names %s, with the key path, the file and the reason', (_what, tls, keyPath, reason) => {
    const error = refusal(`entryPoints:\n  websecure: { listen: ":8443", protocol: https, tls: ${tls} }\n`);
    expect(error.issues).toEqual([expect.objectContaining({ keyPath, reason: expect.stringContaining(reason(dir)) })]);
  });

  it('checks a pair again once its files change (a pair checked good is not trusted forever)', () => {
    const text = `${HTTPS}certificates:\n  renewed: { certFile: renewed.pem, keyFile: renewed-key.pem }\n`;
    copyFileSync(shop.certFile, join(dir, 'renewed.pem'));
    copyFileSync(shop.keyFile, join(dir, 'renewed-key.pem'));
    expect(() => parseConfig(join(dir, 'gateway.yaml'), text)).not.toThrow();
    writeFileSync(join(dir, 'renewed.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    expect(refusal(text).issues).toEqual([expect.objectContaining({ keyPath: 'certificates.renewed.certFile', reason: expect.stringContaining('not a PEM certificate') })]);
    copyFileSync(other.certFile, join(dir, 'renewed.pem'));
    copyFileSync(other.keyFile, join(dir, 'renewed-key.pem'));
    expect(() => parseConfig(join(dir, 'gateway.yaml'), text)).not.toThrow();
  });
});

describe('checkSettledCertificatePair and an abort', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-settled-abort-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('stops reading a pair that has not settled once its signal is aborted, rejecting with the reason', async () => {
    const files = { certFile: join(dir, 'missing.pem'), keyFile: join(dir, 'missing-key.pem') };
    const stop = new AbortController();
    const reasons: string[] = [];
    const log = { debug: (fields: { reason: string }) => reasons.push(fields.reason) } as unknown as Logger;
    // Settle time and maximum wait far past the test's own timeout: only the abort can end the wait.
    const check = checkSettledCertificatePair(files, undefined, { settleMs: 600_000, maxWaitMs: 600_000, log, signal: stop.signal });
    await waitFor(() => reasons.length > 0, { timeoutMs: 5_000, message: 'the pair read a first time' });
    stop.abort(new Error('unsubscribed'));
    await expect(check).rejects.toThrow('unsubscribed');
    expect(reasons).toHaveLength(1);
  });
});
