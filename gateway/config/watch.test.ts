import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { Subject, type Subscription } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeCertificate, type TestCertificate } from '../../test/harness/certificates.ts';
import { watchedByThisProcess } from '../../test/harness/folder-watched.ts';
import { keepWriting } from '../../test/harness/keep-writing.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { concernsFile } from '../../src/folder-watch.ts';
import { FOLDER_WATCH_SETTLE_MS } from '../../src/folder-watch-settle.ts';
import { watchConfig, type ConfigResult } from './watch.ts';

const DEBOUNCE_MS = 20;

// Shorter than the default, which the test of the settle time itself keeps: each refusal waits this long.
const SETTLE_MS = 40;

describe('watchConfig', () => {
  let folder: string;
  let path: string;
  let subscription: Subscription | undefined;
  const results: ConfigResult[] = [];

  beforeEach(async () => {
    folder = await mkdtemp(join(tmpdir(), 'sb-watch-'));
    path = join(folder, 'gateway.yaml');
    await writeFile(path, 'listen: 1000\n');
    results.length = 0;
  });

  afterEach(async () => {
    subscription?.unsubscribe();
    await rm(folder, { recursive: true, force: true });
  });

  // Waits are for at least n results, and the assertions then say which: a result too many (a refusal
  // reported twice) fails with the list it made, not with a wait for exactly n that it ran past.

  /** Subscribes and waits for the current file's result, so that later edits are changes. */
  const watchResults = async (settleMs = SETTLE_MS) => {
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 1);
  };
  const ports = () => results.map((result) => (result.ok ? result.config.listen.port : 'refused'));

  it('emits the current file first, for a race-free start', async () => {
    await watchResults();
    expect(ports()).toEqual([1000]);
  });

  it('only takes the file as a baseline when the current result is not wanted', async () => {
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, emitCurrent: false }).subscribe((result) => results.push(result));
    // An observation window: the current file's result would arrive in it.
    await delay(DEBOUNCE_MS * 10);
    await writeFile(path, 'listen: 1500\n');
    await waitFor(() => results.length >= 1);
    expect(ports()).toEqual([1500]);
  });

  it('emits a config for a valid edit, a refusal for an invalid one, and a config again once fixed', async () => {
    await watchResults();
    await writeFile(path, 'listen: 2000\n');
    await waitFor(() => results.length >= 2);
    await writeFile(path, 'listen: 3000\nlistn: typo\n');
    await waitFor(() => results.length >= 3);
    await writeFile(path, 'listen: 3000\n');
    await waitFor(() => results.length >= 4);
    expect(ports()).toEqual([1000, 2000, 'refused', 3000]);
    const refused = results[2] as Extract<ConfigResult, { ok: false }>;
    expect(refused.error.message).toBe(`${path}: listn (line 2): unknown field "listn" (did you mean "listen"?)`);
  });

  it('sees a file an editor replaced by rename', async () => {
    await watchResults();
    const temporary = join(folder, '.gateway.yaml.swp');
    await writeFile(temporary, 'listen: 4000\n');
    await rename(temporary, path);
    await waitFor(() => results.length >= 2);
    expect(ports()).toEqual([1000, 4000]);
  });

  it('applies an edit while other files in the folder keep changing (a log file written beside the config)', async () => {
    await watchResults();
    const log = join(folder, 'gateway.log');
    // A write every 5 ms, well inside the debounce: events for it must not keep postponing the read.
    const writer = keepWriting(log, (line) => `line ${line}\n`, true);
    try {
      await writeFile(path, 'listen: 4500\n');
      // Without the edit's read the writer would run to the deadline: 5 s is room for a loaded machine, inside the 10 s test timeout.
      await waitFor(() => results.length >= 2, { timeoutMs: 5_000, message: 'the edit while the log grows' });
    } finally {
      await writer.stop();
    }
    expect(ports()).toEqual([1000, 4500]);
  });

  it('reacts to events naming the file, a Kubernetes ..data swap, or no name, and to nothing else', () => {
    expect(concernsFile('gateway.yaml', 'gateway.yaml')).toBe(true);
    expect(concernsFile('..data', 'gateway.yaml')).toBe(true);
    expect(concernsFile(null, 'gateway.yaml')).toBe(true);
    expect(concernsFile('gateway.log', 'gateway.yaml')).toBe(false);
    expect(concernsFile('.gateway.yaml.swp', 'gateway.yaml')).toBe(false);
  });

  it('skips a write that leaves the text unchanged', async () => {
    await watchResults();
    await writeFile(path, 'listen: 1000\n');
    // An observation window, not synchronisation: a result for the unchanged text would arrive in it.
    await delay(DEBOUNCE_MS * 10);
    await writeFile(path, 'listen: 5000\n');
    await waitFor(() => results.length >= 2);
    expect(ports()).toEqual([1000, 5000]);
  });

  it('keeps the running configuration when the file is emptied, as a write caught between its truncation and its text is', async () => {
    await watchResults();
    // What `>` leaves for a moment: applied, it would be a configuration of defaults (web on 8080).
    await writeFile(path, '\n');
    // An observation window, not synchronisation: a result for the empty text would arrive in it.
    await delay(DEBOUNCE_MS * 10);
    await writeFile(path, 'listen: 4000\n');
    await waitFor(() => results.length >= 2);
    expect(ports()).toEqual([1000, 4000]);
  });

  it('does not report the first chunk of a file written in two, and applies the whole text', async () => {
    const lines: string[] = [];
    // The watch's own line that it read a refused text and holds it: the point at which the rest is written.
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    // A settle time far past any stall of a loaded machine: the rest's write ends it early by its event.
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: 5_000, maxWaitMs: 5_000, log }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 1);
    const text = 'listen: 2000\nservices:\n  api:\n    instances: ["10.0.0.1:80"]\n';
    const cut = text.indexOf('vices');
    const file = await open(path, 'w');
    try {
      // The first write() ends inside a key ("ser"), which no configuration allows: read now, it is refused.
      await file.write(text.slice(0, cut));
      // Until the watch has read it: held (the fix) or reported (a watch that reports what it reads half-way).
      await waitFor(() => results.length >= 2 || lines.some((line) => line.includes('the configuration is refused')), { intervalMs: 5 });
      await file.write(text.slice(cut));
    } finally {
      await file.close();
    }
    await waitFor(() => results.length >= 2 && results.at(-1)!.ok);
    expect(ports()).toEqual([1000, 2000]);
  });

  it('does not report a file removed mid-save and written again within the settle time, and applies the new text', async () => {
    const lines: string[] = [];
    // The watch's own line that it read the file unreadable and holds that: the point at which it is written again.
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    // A settle time far past any stall of a loaded machine: the write's event ends it early.
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: 5_000, maxWaitMs: 5_000, log }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 1);
    // An editor that deletes the file, then writes the new one.
    await rm(path);
    // Until the watch has read it: held (the fix) or reported (a watch that reports an unreadable file at once).
    await waitFor(() => results.length >= 2 || lines.some((line) => line.includes('the configuration is refused') && line.includes('ENOENT')), { intervalMs: 5 });
    await writeFile(path, 'listen: 2000\n');
    await waitFor(() => results.length >= 2);
    expect(ports()).toEqual([1000, 2000]);
  });

  it('reports the refusal of a file rewritten faster than the settle time once it has kept changing for the maximum wait', async () => {
    // Settling alone waits for 5 s without a change, past the wait below: each rewrite restarts it.
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: 5_000, maxWaitMs: 200 }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 1);
    // A bad text, another every ~5 ms (one write() each, so a read sees it whole or empty).
    const writer = keepWriting(path, (n) => `listen: ${2000 + (n % 1000)}\nlistn: typo\n`);
    try {
      await waitFor(() => results.length >= 2, { timeoutMs: 4_000, message: 'the refusal of the file that keeps changing' });
    } finally {
      await writer.stop();
    }
    // Refused, and nothing applied: the running configuration stays.
    expect(ports().slice(0, 2)).toEqual([1000, 'refused']);
    expect(results.slice(1).filter((result) => result.ok)).toEqual([]);
  });

  it('reports the refusal of a file that keeps changing the maximum wait after its first change, not twice that', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push((JSON.parse(line) as { msg: string }).msg) });
    // The watch's own lines that it read a refused text and holds it (for a settle or maximum wait of its own) before the refusal came.
    let heldBeforeReport: number | undefined;
    // Neither the quiet time nor the settle time ever passes: only the maximum wait ends the waiting.
    subscription = watchConfig(path, { debounceMs: 5_000, settleMs: 5_000, maxWaitMs: 1_000, log }).subscribe((result) => {
      results.push(result);
      if (results.length === 2) heldBeforeReport = lines.filter((msg) => msg.startsWith('the configuration is refused; reported if')).length;
    });
    await waitFor(() => results.length >= 1);
    const startedAt = performance.now();
    const writer = keepWriting(path, (n) => `listen: ${2000 + (n % 1000)}\nlistn: typo\n`);
    let reportedAfterMs: number;
    try {
      await waitFor(() => results.length >= 2, { timeoutMs: 6_000, message: 'the refusal of the file that keeps changing' });
      reportedAfterMs = performance.now() - startedAt;
    } finally {
      await writer.stop();
    }
    expect(ports().slice(0, 2)).toEqual([1000, 'refused']);
    // The first change's event came after the first write began; the maximum wait counts from it.
    expect(reportedAfterMs).toBeGreaterThanOrEqual(1_000);
    // Reported by the read that wait forced, never held: the refusal it found used to start a maximum
    // wait of its own (2 s here), held until the next read. A count, not a time a loaded machine stretches.
    expect(heldBeforeReport).toBe(0);
  });

  it('reads a file that keeps changing once its first change is the maximum wait old, though its events never leave a quiet time', async () => {
    // Each write's event restarts the 5 s quiet time, past the wait below.
    subscription = watchConfig(path, { debounceMs: 5_000, maxWaitMs: 200 }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 1);
    const writer = keepWriting(path, (n) => `listen: ${2000 + (n % 1000)}\n`);
    try {
      await waitFor(() => results.length >= 2, { timeoutMs: 4_000, message: 'a reading of the file that keeps changing' });
    } finally {
      await writer.stop();
    }
    expect(results[1]).toMatchObject({ ok: true, config: { listen: { port: expect.any(Number) } } });
    expect(ports()[1]).not.toBe(1000);
  });

  it('reports a refused save once the file has stayed unchanged for the settle time', async () => {
    await watchResults(FOLDER_WATCH_SETTLE_MS);
    // Taken before the write: the watch can read the file (and start the settle time) before writeFile's close resolves.
    const written = performance.now();
    await writeFile(path, 'listen: 2000\nlistn: typo\n');
    await waitFor(() => results.length >= 2);
    expect(performance.now() - written).toBeGreaterThanOrEqual(FOLDER_WATCH_SETTLE_MS);
    expect(ports()).toEqual([1000, 'refused']);
    expect((results[1] as Extract<ConfigResult, { ok: false }>).error.message).toBe(`${path}: listn (line 2): unknown field "listn" (did you mean "listen"?)`);
  });

  it('holds a refused text saved again (touch) before it is reported for a settle time of its own: a new save is a new reading', async () => {
    const lines: string[] = [];
    // The watch's own line that it read a refused text and holds it: the settle time has begun.
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    // Far past the gap below and any stall of a loaded machine in it; the maximum wait is past both.
    const settleMs = 2_000;
    let reportedAt: number | undefined;
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs, maxWaitMs: 10_000, log }).subscribe((result) => {
      results.push(result);
      if (!result.ok) reportedAt ??= performance.now();
    });
    await waitFor(() => results.length >= 1);
    await writeFile(path, 'listen: 2000\nlistn: typo\n');
    await waitFor(() => lines.some((line) => line.includes('the configuration is refused')), { intervalMs: 5 });
    // A gap, not synchronisation: a watch that took the same text for the same reading would report
    // the refusal this much less than a settle time after the touch below, so the check tells them apart.
    await delay(settleMs / 5);
    expect(results).toHaveLength(1);
    const touched = performance.now();
    // What `touch` does: the same text, a new save (a modification time no write above can have).
    await utimes(path, new Date(), new Date(Date.now() + 60_000));
    await waitFor(() => reportedAt !== undefined, { timeoutMs: 8_000, message: 'the refusal of the touched file' });
    expect(reportedAt! - touched).toBeGreaterThanOrEqual(settleMs);
    expect(ports()).toEqual([1000, 'refused']);
  });

  it('reads a refused text again when it is saved unchanged: the file it named may be there now', async () => {
    await watchResults();
    const text = 'listen: 7000\nservices:\n  api:\n    protocol: https\n    tls: { caFile: ca.pem }\n';
    await writeFile(path, text);
    await waitFor(() => results.length >= 2);
    // The CA bundle is copied in after the edit, then the same text is saved again.
    const ca = await makeCertificate(folder, 'issuer', { key: 'ec', names: ['api.test'] });
    await rename(ca.certFile, join(folder, 'ca.pem'));
    await writeFile(path, text);
    await waitFor(() => results.length >= 3);
    expect(ports()).toEqual([1000, 'refused', 7000]);
    expect((results[1] as Extract<ConfigResult, { ok: false }>).error.message).toContain('services.api.tls.caFile');
  });

  it('reads a refused text again when asked to (SIGHUP), for a file it names put right where no folder event shows it', async () => {
    // The named file is a symlink into a folder nobody watches: writing its target there raises no event.
    await Promise.all([mkdir(join(folder, 'keys')), mkdir(join(folder, 'elsewhere'))]);
    await symlink(join(folder, 'elsewhere', 'secret'), join(folder, 'keys', 'secret'));
    const rereads$ = new Subject<void>();
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: SETTLE_MS, rereads$ }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 1);
    await writeFile(path, 'listen: 7000\nmiddlewares:\n  j: { jwtAuth: { algorithms: [HS256], secretFile: keys/secret } }\n');
    await waitFor(() => results.length >= 2, { timeoutMs: 5_000 });
    expect(ports()).toEqual([1000, 'refused']);
    await writeFile(join(folder, 'elsewhere', 'secret'), `${'s'.repeat(40)}\n`);
    rereads$.next();
    await waitFor(() => results.length >= 3, { timeoutMs: 5_000, message: 'the refused text to be taken on the reread' });
    expect(ports()).toEqual([1000, 'refused', 7000]);
  });

  it('answers a reread (SIGHUP) that finds nothing to apply with one line: unchanged, still refused or still unreadable, with the reason', async () => {
    const lines: Array<{ level: number; msg: string; reason?: string }> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const rereads$ = new Subject<void>();
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: SETTLE_MS, rereads$, log }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 1);
    const answers = () => lines.filter(({ msg }) => / unchanged|still /.test(msg));
    rereads$.next();
    await waitFor(() => answers().length >= 1, { timeoutMs: 3_000, message: 'the unchanged file to be said so' });
    expect(answers()).toMatchObject([{ level: 30, msg: 'the configuration file and the files it names are unchanged: nothing to apply' }]);

    await writeFile(path, 'listen: 2000\nlistn: typo\n');
    await waitFor(() => results.length >= 2);
    rereads$.next();
    await waitFor(() => answers().length >= 2, { timeoutMs: 3_000, message: 'the refused file to be said still refused' });
    const reason = `${path}: listn (line 2): unknown field "listn" (did you mean "listen"?)`;
    expect(answers()[1]).toMatchObject({ level: 40, msg: 'the configuration file is unchanged and still refused; the running configuration stays', reason });

    await rm(path);
    await waitFor(() => results.length >= 3, { message: 'the removed file to be refused' });
    rereads$.next();
    await waitFor(() => answers().length >= 3, { timeoutMs: 3_000, message: 'the removed file to be said still unreadable' });
    expect(answers()[2]).toMatchObject({ level: 40, msg: 'the configuration file still cannot be read; the running configuration stays' });
    expect(answers()[2]!.reason).toContain(path);
    // Nothing was emitted for the rereads: the caller's configuration stays as it was.
    expect(ports()).toEqual([1000, 'refused', 'refused']);
    expect(answers()).toHaveLength(3);
  });

  it('reports a refused text once per save, not again for each later event that did not save the file', async () => {
    await watchResults();
    await writeFile(path, 'listen: 2000\nlistn: typo\n');
    await waitFor(() => results.length >= 2);
    // A step of a Kubernetes swap, as the other events of one save are (a write's text after its
    // truncation): the file is read again, unchanged and not saved again, so nothing is to be reported.
    await writeFile(join(folder, '..data_tmp'), '');
    // An observation window, not synchronisation: a second refusal of the same save would arrive in it.
    await delay(DEBOUNCE_MS * 10);
    await writeFile(path, 'listen: 3000\n');
    await waitFor(() => results.length >= 3);
    expect(ports()).toEqual([1000, 'refused', 3000]);
  });

  it('refuses a reload that points an entry point at a key not matching its certificate, naming the key path and the file', async () => {
    const [a, b] = await Promise.all([makeCertificate(folder, 'a', { key: 'ec', names: ['a.test'] }), makeCertificate(folder, 'b', { key: 'ec', names: ['b.test'] })]);
    const https = (port: number, certFile: string, keyFile: string) => `entryPoints:\n  web: { listen: ":${port}" }\n  websecure: { listen: ":8443", protocol: https, tls: { certificates: [{ certFile: ${certFile}, keyFile: ${keyFile} }] } }\n`;
    await writeFile(path, https(1000, a.certFile, a.keyFile));
    await watchResults();
    await writeFile(path, https(2000, a.certFile, b.keyFile));
    await waitFor(() => results.length >= 2);
    // A good pair is still taken: it waits for a restart (the control plane says so), it is not refused.
    await writeFile(path, https(3000, b.certFile, b.keyFile));
    await waitFor(() => results.length >= 3);
    expect(results.map((result) => (result.ok ? result.config.entryPoints.find((entryPoint) => entryPoint.name === 'web')?.listen.port : 'refused'))).toEqual([1000, 'refused', 3000]);
    expect((results[1] as Extract<ConfigResult, { ok: false }>).error.message).toContain(`entryPoints.websecure.tls.certificates.0.keyFile (line 3): ${b.keyFile}: the key does not match the certificate ${a.certFile}`);
  });

  describe('a reload that lands in a certificate renewal written one file at a time', () => {
    const READ_AGAIN = 'certificate pair refused; read again until both files have settled';
    let lines: { msg: string; level?: number; [field: string]: unknown }[];
    let served: TestCertificate;
    let renewed: TestCertificate;
    const named = (port: number) => `listen: ${port}\ncertificates:\n  site: { certFile: ${served.certFile}, keyFile: ${served.keyFile} }\n`;

    beforeEach(async () => {
      lines = [];
      await mkdir(join(folder, 'staging'));
      // Real pairs by openssl: the served one, and its renewal, staged in a folder nobody reads.
      [served, renewed] = await Promise.all([makeCertificate(folder, 'site', { key: 'ec', names: ['old.test'] }), makeCertificate(join(folder, 'staging'), 'site', { key: 'ec', names: ['new.test'] })]);
      await writeFile(path, named(1000));
    });

    const watchWithLog = async (settleMs: number) => {
      const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) });
      subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs, log }).subscribe((result) => results.push(result));
      await waitFor(() => results.length >= 1);
    };
    const readAgain = () => lines.filter((line) => line.msg === READ_AGAIN);

    it('takes it once the key is written within the settle time, where it refused the whole configuration', async () => {
      // A settle time past any stall of a loaded machine between the reload's first reading and the key's rename.
      await watchWithLog(1_000);
      // certbot's order: the certificate first, then the key; the reload reads the pair in between.
      await rename(renewed.certFile, served.certFile);
      await writeFile(path, named(2000));
      await waitFor(() => readAgain().length > 0 || results.length >= 2, { timeoutMs: 5_000, intervalMs: 5, message: 'the reload reading the mismatched pair' });
      await rename(renewed.keyFile, served.keyFile);
      await waitFor(() => results.length >= 2, { timeoutMs: 5_000 });
      expect(ports()).toEqual([1000, 2000]);
      expect(readAgain().length).toBeGreaterThan(0);
    });

    it('refuses it with the key path and the file once the mismatched pair has settled', async () => {
      const settleMs = 300;
      await watchWithLog(settleMs);
      await rename(renewed.certFile, served.certFile);
      await writeFile(path, named(2000));
      await waitFor(() => results.length >= 2, { timeoutMs: 5_000 });
      expect(ports()).toEqual([1000, 'refused']);
      expect((results[1] as Extract<ConfigResult, { ok: false }>).error.message).toContain(`certificates.site.keyFile (line 3): ${served.keyFile}: the key does not match the certificate ${served.certFile}`);
      // Read again for the settle time before the refusal: the same mismatch, from the same saves.
      expect(readAgain()[0]).toMatchObject({ keyFile: served.keyFile, reason: expect.stringContaining('does not match') });
    });

    it('drops a text saved over while its pair settled, and applies only the newer one', async () => {
      await watchWithLog(1_000);
      await rename(renewed.certFile, served.certFile);
      await writeFile(path, named(2000));
      await waitFor(() => readAgain().length > 0 || results.length >= 2, { timeoutMs: 5_000, intervalMs: 5, message: 'the reload reading the mismatched pair' });
      // Saved again while the first reload waits for the pair; then the key comes, and the pair settles good.
      await writeFile(path, named(3000));
      await rename(renewed.keyFile, served.keyFile);
      await waitFor(() => ports().includes(3000), { timeoutMs: 5_000, message: 'the newer text applied' });
      // The older text, whichever way its pair settled (taken, or refused after a stall past the settle time), is not reported.
      expect(ports()).toEqual([1000, 3000]);
    });

    it('reads the pair no more once unsubscribed', async () => {
      const settleMs = 300;
      await watchWithLog(settleMs);
      await rename(renewed.certFile, served.certFile);
      // The old key is saved again every few milliseconds: the pair never settles, and would be read again for the maximum wait.
      const oldKey = await readFile(served.keyFile, 'utf8');
      const writer = keepWriting(served.keyFile, () => oldKey);
      try {
        await writeFile(path, named(2000));
        await waitFor(() => readAgain().length > 0, { timeoutMs: 5_000, intervalMs: 5, message: 'the reload reading the mismatched pair' });
        subscription!.unsubscribe();
        const seen = readAgain().length;
        // Absence can only be waited for: three times the longest the check sleeps between two readings.
        await delay(settleMs * 3);
        expect(readAgain()).toHaveLength(seen);
        expect(ports()).toEqual([1000]);
      } finally {
        await writer.stop();
      }
    });
  });

  describe('a reload refused for a file it names, put right with no save of the configuration', () => {
    const READ_AGAIN = 'certificate pair refused; read again until both files have settled';
    const TAKEN = 'the refused configuration is taken: a file it names has changed since its refusal';
    let lines: { msg: string; level?: number; [field: string]: unknown }[];
    let site: TestCertificate;
    let rightKey: string;
    let wrongKey: string;
    const named = (port: number) => `listen: ${port}\ncertificates:\n  site: { certFile: ${site.certFile}, keyFile: ${site.keyFile} }\n`;

    beforeEach(async () => {
      lines = [];
      // The pair lives in a folder of its own, which the configuration's own watch does not see.
      await Promise.all([mkdir(join(folder, 'keys')), mkdir(join(folder, 'staging'))]);
      const [made, other] = await Promise.all([makeCertificate(join(folder, 'keys'), 'site', { key: 'ec', names: ['site.test'] }), makeCertificate(join(folder, 'staging'), 'other', { key: 'ec', names: ['other.test'] })]);
      site = made;
      [rightKey, wrongKey] = await Promise.all([readFile(site.keyFile, 'utf8'), readFile(other.keyFile, 'utf8')]);
      await writeFile(site.keyFile, wrongKey);
    });

    /** Watches with a debug log, then saves a reload naming the mismatched pair and waits for its refusal. */
    const refuseReload = async () => {
      const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) });
      subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: SETTLE_MS, log }).subscribe((result) => results.push(result));
      await waitFor(() => results.length >= 1);
      await writeFile(path, named(2000));
      await waitFor(() => results.length >= 2, { timeoutMs: 5_000 });
      expect(ports()).toEqual([1000, 'refused']);
      expect((results[1] as Extract<ConfigResult, { ok: false }>).error.message).toContain(`certificates.site.keyFile (line 3): ${site.keyFile}: the key does not match the certificate ${site.certFile}`);
    };
    const logged = (msg: string) => lines.filter((line) => line.msg === msg).length;

    it('takes the refused text once the right key is written, and says so once', async () => {
      await refuseReload();
      await writeFile(site.keyFile, rightKey);
      await waitFor(() => results.length >= 3, { timeoutMs: 5_000, message: 'the refused text to be taken' });
      expect(ports()).toEqual([1000, 'refused', 2000]);
      expect(logged(TAKEN)).toBe(1);
    });

    it.each([
      {
        file: 'a service\'s CA bundle',
        text: 'listen: 7000\nservices:\n  api:\n    protocol: https\n    tls: { caFile: keys/ca.pem }\n',
        putRight: async () => rename((await makeCertificate(join(folder, 'staging'), 'issuer', { key: 'ec', names: ['api.test'] })).certFile, join(folder, 'keys', 'ca.pem')),
      },
      {
        file: 'a jwtAuth secret',
        text: 'listen: 7000\nmiddlewares:\n  j: { jwtAuth: { algorithms: [HS256], secretFile: keys/secret } }\n',
        putRight: () => writeFile(join(folder, 'keys', 'secret'), `${'s'.repeat(40)}\n`),
      },
    ])('takes a text refused for a missing file it names ($file) once the file is put in place', async ({ text, putRight }) => {
      subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: SETTLE_MS }).subscribe((result) => results.push(result));
      await waitFor(() => results.length >= 1);
      await writeFile(path, text);
      await waitFor(() => results.length >= 2, { timeoutMs: 5_000 });
      expect(ports()).toEqual([1000, 'refused']);
      await putRight();
      await waitFor(() => results.length >= 3, { timeoutMs: 5_000, message: 'the refused text to be taken' });
      expect(ports()).toEqual([1000, 'refused', 7000]);
    });

    it('logs a folder of a named file that is missing once per outage, retries at debug, says when it watches it again, and takes the text once the file is there', async () => {
      const LOST = 'watching the folder of a file the configuration names failed; retrying (further failures at debug)';
      const RETRY = 'watching the folder of a file the configuration names failed again; retrying';
      const BACK = 'watching the folder of a file the configuration names again';
      const later = join(folder, 'later');
      const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) });
      const at = (msg: string) => lines.filter((line) => line.msg === msg).map((line) => line.level);
      // Retried every 20 to 40 ms: each retry would warn, as it did, many times over within the waits below.
      subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: SETTLE_MS, log, rewatchBackoff: { initialMs: 20, maxMs: 40 } }).subscribe((result) => results.push(result));
      await waitFor(() => results.length >= 1);
      await writeFile(path, 'listen: 7000\nservices:\n  api:\n    protocol: https\n    tls: { caFile: later/ca.pem }\n');
      await waitFor(() => results.length >= 2, { timeoutMs: 5_000 });
      expect(ports()).toEqual([1000, 'refused']);
      await waitFor(() => at(RETRY).length >= 3, { timeoutMs: 5_000, message: 'retries while the folder is missing' });
      // The folder appears, still without the bundle: watched again, the text still refused and not reported again.
      await mkdir(later);
      await waitFor(() => at(BACK).length === 1, { timeoutMs: 5_000, message: 'the folder watched once it appears' });
      // Removed again while the text waits for it: a second outage, warned once more.
      await rm(later, { recursive: true });
      await waitFor(() => at(LOST).length === 2 && at(RETRY).length >= 6, { timeoutMs: 5_000, message: 'a second outage and its retries' });
      const issuer = await makeCertificate(join(folder, 'staging'), 'issuer', { key: 'ec', names: ['api.test'] });
      await mkdir(later);
      await rename(issuer.certFile, join(later, 'ca.pem'));
      await waitFor(() => results.length >= 3, { timeoutMs: 5_000, message: 'the refused text to be taken' });
      expect(ports()).toEqual([1000, 'refused', 7000]);
      expect(at(LOST)).toEqual([40, 40]);
      expect(new Set(at(RETRY))).toEqual(new Set([20]));
      expect(at(BACK)).toEqual([30, 30]);
      expect(lines.filter((line) => line.level === 40 && line.msg !== LOST)).toEqual([]);
      expect(logged(TAKEN)).toBe(1);
    });

    it('does not report a pair that stays bad again when its files or others beside them change, and takes it once it is good', async () => {
      await refuseReload();
      const before = logged(READ_AGAIN);
      // The wrong key saved again (a new save, the same text), and another file in the folder.
      await writeFile(site.keyFile, wrongKey);
      await writeFile(join(folder, 'keys', 'unrelated.log'), 'line\n');
      // The refused text is parsed again for its key's change: the pair is read again until it settles, bad.
      await waitFor(() => logged(READ_AGAIN) > before, { timeoutMs: 5_000, message: 'the refused text parsed again for its key file' });
      // An observation window, not synchronisation: a second refusal would arrive in it.
      await delay(SETTLE_MS * 2 + DEBOUNCE_MS * 5);
      expect(ports()).toEqual([1000, 'refused']);
      await writeFile(site.keyFile, rightKey);
      await waitFor(() => results.length >= 3, { timeoutMs: 5_000, message: 'the refused text to be taken' });
      expect(ports()).toEqual([1000, 'refused', 2000]);
    });

    it('reads the named files no more once unsubscribed, and lets their folder go', async () => {
      const keys = join(folder, 'keys');
      await refuseReload();
      expect(await watchedByThisProcess(keys)).toBe(true);
      const before = logged(READ_AGAIN);
      await writeFile(site.keyFile, wrongKey);
      await waitFor(() => logged(READ_AGAIN) > before, { timeoutMs: 5_000, message: 'the refused text parsed again for its key file' });
      subscription!.unsubscribe();
      const seen = logged(READ_AGAIN);
      await writeFile(site.keyFile, wrongKey);
      await writeFile(site.keyFile, rightKey);
      // Absence can only be waited for: a watch still running would read the pair within it.
      await delay(SETTLE_MS * 3 + DEBOUNCE_MS * 10);
      expect(logged(READ_AGAIN)).toBe(seen);
      expect(logged(TAKEN)).toBe(0);
      expect(ports()).toEqual([1000, 'refused']);
      // The key's folder watch is closed too (no read follows it once the reads are closed, but it would be kept).
      await waitFor(async () => !(await watchedByThisProcess(keys)), { timeoutMs: 5_000, message: 'the key folder watch to be closed' });
    });

    it('lets the folders of a refused text go when the running text is saved back before that refusal is reported', async () => {
      const keys = join(folder, 'keys');
      // A settle time the test never reaches: the refusal stays held, unreported, while the edit is undone.
      subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: 60_000 }).subscribe((result) => results.push(result));
      await waitFor(() => results.length >= 1);
      await writeFile(path, 'listen: 7000\nservices:\n  api:\n    protocol: https\n    tls: { caFile: keys/ca.pem }\n');
      await waitFor(() => watchedByThisProcess(keys), { timeoutMs: 5_000, message: 'the refused text\'s folder to be watched' });
      await writeFile(path, 'listen: 1000\n');
      await waitFor(async () => !(await watchedByThisProcess(keys)), { timeoutMs: 5_000, message: 'the refused text\'s folder watch to be closed' });
      expect(ports()).toEqual([1000]);
    });
  });

  it('reports a deleted file once and recovers when it comes back', async () => {
    await watchResults();
    await rm(path);
    await waitFor(() => results.length >= 2);
    await writeFile(path, 'listen: 6000\n');
    await waitFor(() => results.length >= 3);
    expect(ports()).toEqual([1000, 'refused', 6000]);
    expect((results[1] as Extract<ConfigResult, { ok: false }>).error.message).toContain('cannot read the file (ENOENT)');
  });

  it('reports a missing folder once and picks the file up when the folder appears', async () => {
    const later = join(folder, 'later');
    path = join(later, 'gateway.yaml');
    subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, rewatchBackoff: { initialMs: 20, maxMs: 40 } }).subscribe((result) => results.push(result));
    await waitFor(() => results.length >= 2);
    await mkdir(later);
    await writeFile(path, 'listen: 8000\n');
    await waitFor(() => results.length >= 3);
    const reasons = results.map((result) => (result.ok ? result.config.listen.port : result.error.message.replace(`${path}: `, '')));
    expect(reasons).toEqual([expect.stringContaining('cannot watch the folder'), 'cannot read the file (ENOENT)', 8000]);
  });

  it('emits nothing after unsubscribing', async () => {
    await watchResults();
    subscription!.unsubscribe();
    await writeFile(path, 'listen: 7000\n');
    await delay(DEBOUNCE_MS * 10);
    expect(ports()).toEqual([1000]);
  });

  describe('a running configuration whose files change on disk', () => {
    const clientCert = (result: ConfigResult | undefined) => (result?.ok ? result.config.services.get('api')?.tls.files?.cert?.sha256 : 'refused');

    it('reads the same text again with a renewed client pair written one file at a time, skips events that change no content, reports a broken pair once and takes it put right', async () => {
      const keys = join(folder, 'keys');
      await Promise.all([mkdir(keys), mkdir(join(folder, 'staging'))]);
      const first = await makeCertificate(keys, 'client', { key: 'ec', names: ['gw.test'] });
      const text = `listen: 7000\nservices:\n  api:\n    protocol: https\n    tls: { certFile: keys/client.pem, keyFile: keys/client-key.pem }\n`;
      await writeFile(path, text);
      // A settle time a key written just after its certificate falls within, on a loaded machine too.
      await watchResults(400);
      const taken = clientCert(results[0]);
      expect(taken).toEqual(expect.any(String));

      // Renewed: the certificate first, its key a moment later (as a writer of two files does).
      const renewed = await makeCertificate(join(folder, 'staging'), 'client', { key: 'ec', names: ['gw.test'] });
      await rename(renewed.certFile, first.certFile);
      await delay(50);
      await rename(renewed.keyFile, first.keyFile);
      await waitFor(() => results.length >= 2);
      expect(results[1]!.ok).toBe(true);
      expect((results[1] as Extract<ConfigResult, { ok: true }>).text).toBe(text);
      expect(clientCert(results[1])).not.toBe(taken);

      // Written again the same (a touch): nothing to apply.
      await writeFile(first.certFile, await readFile(first.certFile));
      // An observation window: a result for it would arrive in it.
      await delay(DEBOUNCE_MS * 10);
      expect(results).toHaveLength(2);
      // A key that does not match: refused once, whatever the events after it.
      const other = await makeCertificate(join(folder, 'staging'), 'other', { key: 'ec', names: ['other.test'] });
      await rename(other.keyFile, first.keyFile);
      await waitFor(() => results.length >= 3);
      expect(results[2]!.ok).toBe(false);
      expect((results[2] as Extract<ConfigResult, { ok: false }>).error.message).toContain('services.api.tls');
      await utimes(first.keyFile, new Date(), new Date());
      await writeFile(join(keys, 'unrelated.txt'), 'x');
      await delay(400 + DEBOUNCE_MS * 10);
      expect(results).toHaveLength(3);

      // Put right: taken.
      const fixed = await makeCertificate(join(folder, 'staging'), 'fixed', { key: 'ec', names: ['gw.test'] });
      await rename(fixed.keyFile, first.keyFile);
      await rename(fixed.certFile, first.certFile);
      await waitFor(() => results.length >= 4);
      expect(results.map((result) => result.ok)).toEqual([true, true, false, true]);
      expect(clientCert(results[3])).not.toBe(clientCert(results[1]));
    });

    it('emits a reading once when its files change during the parse (a CA bundle renewed while a certificate pair settles), not again for that change', async () => {
      const keys = join(folder, 'keys');
      const staging = join(folder, 'staging');
      await Promise.all([mkdir(keys), mkdir(staging)]);
      // The pair in the configuration file's folder, whose events concern only that file; the CA bundle in a folder of its own, watched while the text runs.
      const [served, renewedPair, ca, renewedCa, againCa] = await Promise.all([
        makeCertificate(folder, 'site', { key: 'ec', names: ['old.test'] }),
        makeCertificate(staging, 'site', { key: 'ec', names: ['new.test'] }),
        makeCertificate(keys, 'ca', { key: 'ec', names: ['ca.test'] }),
        makeCertificate(staging, 'ca', { key: 'ec', names: ['ca.test'] }),
        makeCertificate(staging, 'ca-again', { key: 'ec', names: ['ca.test'] }),
      ]);
      const caOf = (result: ConfigResult | undefined) => (result?.ok ? result.config.services.get('api')?.tls.files?.ca?.sha256 : 'refused');
      const text = `listen: 7000\ncertificates:\n  site: { certFile: site.pem, keyFile: site-key.pem }\nservices:\n  api:\n    protocol: https\n    tls: { caFile: keys/ca.pem }\n`;
      await writeFile(path, text);
      const lines: string[] = [];
      const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push((JSON.parse(line) as { msg: string }).msg) });
      // A settle time past any stall of a loaded machine between the parse's first reading of the pair and the key's rename.
      subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: 1_000, log }).subscribe((result) => results.push(result));
      await waitFor(() => results.length >= 1);
      const taken = caOf(results[0]);
      expect(taken).toEqual(expect.any(String));

      // The pair half-renewed (no event of the watch), then the CA bundle renewed: its read parses the text and waits for the pair.
      await rename(renewedPair.certFile, served.certFile);
      await rename(renewedCa.certFile, ca.certFile);
      await waitFor(() => lines.includes('certificate pair refused; read again until both files have settled'), { timeoutMs: 5_000, intervalMs: 5, message: 'the parse waiting for the pair' });
      // Renewed again while the parse waits (the parse reads this one), then the pair put right.
      await rename(againCa.certFile, ca.certFile);
      await rename(renewedPair.keyFile, served.keyFile);
      await waitFor(() => results.length >= 2, { timeoutMs: 5_000 });
      // An observation window: the same reading emitted again would arrive in it.
      await delay(DEBOUNCE_MS * 10);
      expect(results.map((result) => result.ok)).toEqual([true, true]);
      expect(caOf(results[1])).toBe(createHash('sha256').update(await readFile(ca.certFile)).digest('hex'));
    });

    it('applies a change of its files made while a newer text was read, once that edit is undone before its refusal was reported', async () => {
      const keys = join(folder, 'keys');
      await Promise.all([mkdir(keys), mkdir(join(folder, 'staging'))]);
      const first = await makeCertificate(keys, 'ca', { key: 'ec', names: ['ca.test'] });
      const caOf = (result: ConfigResult | undefined) => (result?.ok ? result.config.services.get('api')?.tls.files?.ca?.sha256 : 'refused');
      const text = 'listen: 7000\nservices:\n  api:\n    protocol: https\n    tls: { caFile: keys/ca.pem }\n';
      await writeFile(path, text);
      const held: string[] = [];
      const log = pino({ level: 'debug' }, { write: (line: string) => void held.push((JSON.parse(line) as { msg: string }).msg) });
      // Settle and maximum wait far beyond the steps below: the newer text's refusal is still held (not reported) when it is undone.
      subscription = watchConfig(path, { debounceMs: DEBOUNCE_MS, settleMs: 20_000, maxWaitMs: 40_000, log }).subscribe((result) => results.push(result));
      await waitFor(() => results.length >= 1);
      const taken = caOf(results[0]);
      expect(taken).toEqual(expect.any(String));

      // A newer text refused for its own content: read, its refusal held while it settles; the running text's files are not watched meanwhile.
      await writeFile(path, `${text}listn: typo\n`);
      await waitFor(() => held.some((msg) => msg.startsWith('the configuration is refused; reported if the file stays so')));
      const renewed = await makeCertificate(join(folder, 'staging'), 'ca', { key: 'ec', names: ['ca.test'] });
      await rename(renewed.certFile, first.certFile);
      // The edit undone: the running text again, with the CA bundle as it is now.
      await writeFile(path, text);
      await waitFor(() => results.length >= 2);
      expect(results.map((result) => result.ok)).toEqual([true, true]);
      expect((results[1] as Extract<ConfigResult, { ok: true }>).text).toBe(text);
      expect(caOf(results[1])).not.toBe(taken);
    });
  });
});

