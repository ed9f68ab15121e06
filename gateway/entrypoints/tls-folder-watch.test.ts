import { appendFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLogger } from '../../src/logger.ts';
import { keepWriting } from '../../test/harness/keep-writing.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { CertificateFolderWatch } from './tls-folder-watch.ts';

describe('CertificateFolderWatch', () => {
  let dir: string | undefined;
  let watch: CertificateFolderWatch | undefined;
  let busy: NodeJS.Timeout | undefined;
  afterEach(async () => {
    clearInterval(busy);
    watch?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reports a renewed certificate while another file in its folder is written more often than the debounce', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-cert-watch-'));
    const files = { certFile: join(dir, 'site.pem'), keyFile: join(dir, 'site-key.pem') };
    await Promise.all([writeFile(files.certFile, 'old'), writeFile(files.keyFile, 'old')]);
    let changes = 0;
    watch = new CertificateFolderWatch(async () => void (changes += 1), rootLogger, { test: 'busy-folder' });
    watch.watch([files]);
    // A log beside the certificates, written every 20 ms for as long as the test runs: its events
    // restarted the 200 ms debounce every time, and the renewal was never read.
    const log = join(dir, 'app.log');
    busy = setInterval(() => void appendFile(log, 'line\n'), 20);
    await writeFile(`${files.certFile}.tmp`, 'new');
    await rename(`${files.certFile}.tmp`, files.certFile);
    await waitFor(() => changes > 0, { timeoutMs: 5_000, message: 'the renewal reported while the log is written' });
    expect(changes).toBe(1);
  });

  it('reports a certificate rewritten more often than the debounce once its first change is the maximum wait old', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-cert-watch-'));
    const files = { certFile: join(dir, 'site.pem'), keyFile: join(dir, 'site-key.pem') };
    await Promise.all([writeFile(files.certFile, 'old'), writeFile(files.keyFile, 'old')]);
    let changes = 0;
    // Each write's event restarts the 5 s quiet time, past the deadline of the wait below.
    watch = new CertificateFolderWatch(async () => void (changes += 1), rootLogger, { test: 'rewritten' }, { debounceMs: 5_000, maxWaitMs: 200 });
    watch.watch([files]);
    const writer = keepWriting(files.certFile, (n) => `certificate ${n}`);
    try {
      await waitFor(() => changes > 0, { timeoutMs: 4_000, message: 'a call for the certificate that keeps changing' });
    } finally {
      await writer.stop();
    }
  });

  it('says a certificate folder not there yet is one, once, retries at debug, and calls once it is watched', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-cert-watch-'));
    const folder = join(dir, 'certs');
    const lines: { level: number; msg: string; folder?: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    let changes = 0;
    watch = new CertificateFolderWatch(async () => void (changes += 1), log, { entryPoint: 'websecure' });
    watch.watch([{ certFile: join(folder, 'site.pem'), keyFile: join(folder, 'site-key.pem') }]);
    await waitFor(() => lines.some((line) => line.msg === 'watching the certificate folder failed again; retrying'), { timeoutMs: 5_000, message: 'a retry' });
    await mkdir(folder);
    await waitFor(() => changes > 0, { timeoutMs: 5_000, message: 'a call once the folder is watched' });
    expect(lines.filter((line) => line.level >= 40).map(({ level, msg, folder: watched }) => ({ level, msg, folder: watched }))).toEqual([
      { level: 40, msg: 'watching the certificate folder failed; retrying (further failures at debug)', folder },
    ]);
    expect(lines.filter((line) => line.msg === 'watching the certificate folder again')).toHaveLength(1);
  });
});
