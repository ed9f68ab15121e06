import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeCertificate, type TestCertificate } from '../../test/harness/certificates.ts';
import type { NamedCertificate } from '../config/types.ts';
import { NamedCertificates } from './tls-named.ts';

describe('NamedCertificates and a reload that adds several pairs being renewed', () => {
  let dir: string;
  let named: NamedCertificates | undefined;
  let lines: { msg: string; level: number; time: number; certFile?: string }[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-tls-named-'));
    lines = [];
  });

  afterEach(async () => {
    named?.close();
    named = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('reads every changed pair side by side, so the wait for one to settle is not added to the wait for the next', async () => {
    // Real pairs by openssl; each named certificate gets the other's key, so neither checks until it has settled.
    const [first, second] = await Promise.all([makeCertificate(dir, 'first', { key: 'ec', names: ['first.test'] }), makeCertificate(dir, 'second', { key: 'ec', names: ['second.test'] })]);
    const mixed = (name: string, cert: TestCertificate, key: TestCertificate): NamedCertificate => ({ name, certFile: cert.certFile, keyFile: key.keyFile, entryPoints: undefined });
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    // A settle time past any stall of a loaded machine between the two first readings.
    const settleMs = 1_000;
    named = new NamedCertificates(log, { settleMs, maxWaitMs: 10_000 });
    await named.start([]);
    await named.apply([mixed('first', first, second), mixed('second', second, first)]);

    const readAgain = (certFile: string) => lines.find((line) => line.msg === 'certificate pair refused; read again until both files have settled' && line.certFile === certFile);
    const refused = lines.filter((line) => line.msg === 'named certificate refused; the rest apply');
    expect(refused).toHaveLength(2);
    // One after the other, the second pair would be read only once the first had settled, `settleMs` after its first reading.
    expect(readAgain(first.certFile)).toBeDefined();
    expect(readAgain(second.certFile)).toBeDefined();
    expect(Math.abs(readAgain(second.certFile)!.time - readAgain(first.certFile)!.time)).toBeLessThan(settleMs);
  });
});
