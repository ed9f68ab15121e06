import { copyFile, mkdir, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeCertificate, type TestCertificate } from '../../test/harness/certificates.ts';
import { waitFor } from '../../test/harness/wait.ts';
import type { EntryPointConfig } from '../config/types.ts';
import { tlsReloadsTotal } from '../telemetry/index.ts';
import { TlsCertificates } from './tls-store.ts';

describe('TlsCertificates and a renewal written one file at a time', () => {
  let dir: string;
  let served: TestCertificate;
  let renewed: TestCertificate;
  let certificates: TlsCertificates | undefined;
  let lines: { msg: string; level: number; time: number }[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-tls-store-'));
    await mkdir(join(dir, 'staging'));
    // Real pairs by openssl: the served one, and its renewal for another name, staged in a folder nobody watches.
    [served, renewed] = await Promise.all([makeCertificate(dir, 'site', { key: 'ec', names: ['old.test'] }), makeCertificate(join(dir, 'staging'), 'site', { key: 'ec', names: ['new.test'] })]);
    lines = [];
  });

  afterEach(async () => {
    certificates?.close();
    certificates = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function watch(settleMs: number): Promise<TlsCertificates> {
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; level: number; time: number }) });
    const entryPoint = { name: 'websecure', tls: { certificates: [served], defaultCertificate: undefined, minVersion: undefined } } as unknown as EntryPointConfig;
    const loaded = await TlsCertificates.load(entryPoint, log, { debounceMs: 10, settleMs });
    certificates = loaded;
    loaded.watch();
    return loaded;
  }

  const held = () => lines.some((line) => line.msg === 'certificate pair changed; held until both files have settled');
  const refusals = () => lines.filter((line) => line.msg === 'certificate refused; the previous one keeps serving');
  const refusedAgain = () => lines.filter((line) => line.msg === 'certificate still refused for the reason reported; the previous one keeps serving');
  const refusedCount = async () => (await tlsReloadsTotal.get()).values.find((value) => value.labels.entry_point === 'websecure' && value.labels.result === 'refused')?.value ?? 0;

  it('holds a certificate written before its key, logs nothing of the mismatch, and serves the pair once its key is written', async () => {
    // A settle time past any stall of a loaded machine between the two renames below.
    const loaded = await watch(1_000);
    await rename(renewed.certFile, served.certFile);
    // The watch has read the new certificate with the old key: held, where it used to be refused.
    await waitFor(() => held() || refusals().length > 0, { timeoutMs: 5_000, intervalMs: 5, message: 'the new certificate read' });
    await rename(renewed.keyFile, served.keyFile);
    await waitFor(() => loaded.defaultCertificate.names.includes('new.test'), { timeoutMs: 5_000, message: 'the renewed pair served' });
    expect(refusals()).toEqual([]);
    expect(lines.some((line) => line.msg === 'certificate reloaded')).toBe(true);
  });

  it('holds a certificate file removed before its renewal is moved in, and serves the renewal without a refusal', async () => {
    // A settle time past any stall of a loaded machine between the removal and the renames below.
    const loaded = await watch(1_000);
    // As certbot updates a live/ link: the old one goes first, then the new one comes.
    await unlink(served.certFile);
    // The watch has read the pair with its certificate missing: held, not refused as unreadable.
    await waitFor(() => held() || refusals().length > 0, { timeoutMs: 5_000, intervalMs: 5, message: 'the missing certificate read' });
    await rename(renewed.certFile, served.certFile);
    await rename(renewed.keyFile, served.keyFile);
    await waitFor(() => loaded.defaultCertificate.names.includes('new.test'), { timeoutMs: 5_000, message: 'the renewed pair served' });
    expect(refusals()).toEqual([]);
  });

  it('refuses a certificate whose key never comes only once the pair has settled, and logs and counts it once however often it is read again', async () => {
    const settleMs = 300;
    const loaded = await watch(settleMs);
    const countedBefore = await refusedCount();
    const written = Date.now();
    await rename(renewed.certFile, served.certFile);
    await waitFor(() => refusals().length > 0, { timeoutMs: 5_000, message: 'the refusal of the mismatched pair' });
    expect(held()).toBe(true);
    expect(refusals()[0]!.time - written).toBeGreaterThanOrEqual(settleMs);
    expect(loaded.defaultCertificate.names).toEqual(['old.test']);
    // The certificate is saved again unchanged (a new file renamed over it, a new save): the pair is
    // read again, settles again and is refused again, for the reason already reported.
    await copyFile(served.certFile, join(dir, 'staging', 'again.pem'));
    await rename(join(dir, 'staging', 'again.pem'), served.certFile);
    await waitFor(() => refusedAgain().length > 0 || refusals().length > 1, { timeoutMs: 5_000, message: 'the refused pair judged again' });
    expect(refusals()).toHaveLength(1);
    expect((await refusedCount()) - countedBefore).toBe(1);
  });
});
