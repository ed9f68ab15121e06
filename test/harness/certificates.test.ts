import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, type TestCa } from './certificates.ts';
import { makeTempDir, removeTempDir } from './process.ts';

describe('createTestCa', () => {
  let dir: string;
  let ca: TestCa;

  beforeAll(async () => {
    dir = await makeTempDir('sb-test-ca-');
    ca = await createTestCa(dir);
  });
  afterAll(() => removeTempDir(dir));

  it('issues certificates at once, each signed by the CA with a serial of its own', async () => {
    // Through the CA's serial file (-CAcreateserial), about one in four of twelve at once failed
    // ("Unable to load number from ca.srl").
    const issued = await Promise.all(Array.from({ length: 12 }, (_, index) => ca.issue(`server-${index}`, `server-${index}.test`)));
    const caCertificate = new X509Certificate(await readFile(ca.caFile));
    const certificates = await Promise.all(issued.map(async ({ certFile }) => new X509Certificate(await readFile(certFile))));
    for (const certificate of certificates) expect(certificate.verify(caCertificate.publicKey)).toBe(true);
    expect(new Set(certificates.map((certificate) => certificate.serialNumber)).size).toBe(12);
  });
});
