import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keepWriting } from '../../../test/harness/keep-writing.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import type { ProviderSnapshot } from '../provider.ts';
import { FileProvider, type FileProviderOptions } from './index.ts';

const FULL = 'services:\n  user:\n    - 127.0.0.1:8081\n    - 127.0.0.1:8082\n';
/** What `FULL` read half-written can be: a list without the second instance. */
const CUT = (n: number) => `services:\n  user:\n    - 127.0.0.1:8081\n# ${n}\n`;

describe('FileProvider and a file written in several steps', () => {
  let dir: string;
  let path: string;
  let provider: FileProvider | undefined;
  let seen: ProviderSnapshot[];
  let lines: string[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-file-settle-'));
    path = join(dir, 'instances.yaml');
    await writeFile(path, FULL);
    seen = [];
    lines = [];
  });

  afterEach(async () => {
    await provider?.close();
    provider = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function start(options: Omit<FileProviderOptions, 'path'>): Promise<FileProvider> {
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const started = new FileProvider({ path, log, ...options });
    provider = started;
    started.snapshots$.subscribe((snapshot) => seen.push(snapshot));
    started.start();
    await waitFor(() => seen.some((s) => s.service === 'user' && s.instances.length === 2), { timeoutMs: 5_000, message: 'the first list' });
    return started;
  }

  async function save(text: string): Promise<void> {
    await writeFile(`${path}.tmp`, text);
    await rename(`${path}.tmp`, path);
  }

  const ports = (snapshot: ProviderSnapshot) => snapshot.instances.map((instance) => instance.port);
  const refusals = () => lines.filter((line) => line.includes('instance list refused')).length;

  it('applies a list that only adds instances at once, long before the file has settled', async () => {
    // A settle time and maximum wait past the deadline below: only a list applied without them passes.
    await start({ debounceMs: 10, settleMs: 60_000, maxWaitMs: 60_000 });
    await save(`${FULL}    - 127.0.0.1:8083\n`);
    await waitFor(() => seen.some((s) => ports(s).includes(8083)), { timeoutMs: 5_000, message: 'the added instance' });
    expect(ports(seen.at(-1)!)).toEqual([8081, 8082, 8083]);
  });

  it('never takes an instance away while the file keeps changing, even past the maximum wait, and does once it stays the same', async () => {
    // The maximum wait passes several times while the writer runs; a settle time of 1 s outlasts any stall of the writer on a loaded machine.
    await start({ debounceMs: 1, settleMs: 1_000, maxWaitMs: 200 });
    let writes = 0;
    const writer = keepWriting(path, (n) => {
      writes = n;
      return CUT(n);
    });
    try {
      await waitFor(() => writes >= 150, { timeoutMs: 10_000, message: '150 writes' });
    } finally {
      await writer.stop();
    }
    expect(seen.filter((s) => s.service === 'user').every((s) => ports(s).includes(8082))).toBe(true);
    expect(lines.some((line) => line.includes('keeps changing'))).toBe(true);
    await waitFor(() => seen.some((s) => s.service === 'user' && !ports(s).includes(8082)), { timeoutMs: 5_000, message: 'the cut list once the file stays the same' });
    expect(ports(seen.at(-1)!)).toEqual([8081]);
  });

  it('logs a refusal once per save, after the file has settled, and not for the reads of a write in progress', async () => {
    await start({ debounceMs: 1, settleMs: 1_000, maxWaitMs: 60_000 });
    let writes = 0;
    const writer = keepWriting(path, (n) => {
      writes = n;
      return `services:\n  user: [127.0.0.1:${n}\n`;
    });
    try {
      await waitFor(() => writes >= 100, { timeoutMs: 10_000, message: '100 writes' });
    } finally {
      await writer.stop();
    }
    expect(refusals()).toBe(0);
    await waitFor(() => refusals() === 1, { timeoutMs: 5_000, message: 'the refusal of the last write' });
    // The same text saved again is a save of its own, refused and logged again.
    await save(await readFile(path, 'utf8'));
    await waitFor(() => refusals() === 2, { timeoutMs: 5_000, message: 'the refusal of the new save' });
    expect(seen.filter((s) => s.service === 'user').every((s) => s.instances.length === 2)).toBe(true);
  });
});
