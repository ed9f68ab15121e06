import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/index.ts';
import { WorkerConfigQueue, type ConfigText, type ConfigVerdict } from './cluster-config-queue.ts';

const log = pino({ level: 'silent' });

/** A valid text whose single route answers with `x-config: <tag>`; no file it names, so it parses at once. */
const valid = (sequence: number, tag: string): ConfigText => ({
  path: '/nonexistent/gateway.yaml',
  text: `listen: 127.0.0.1:0
workers: 2
services:
  user: { instances: [127.0.0.1:1], healthCheck: false }
routes:
  - { path: /, service: user, responseHeaders: { set: { x-config: ${tag} } } }
`,
  workers: 2,
  sequence,
  digest: `digest-${sequence}`,
});

/** Valid YAML with a misspelt key: refused by validation at once (it names no certificate pair to wait for). */
const misspelt = (sequence: number): ConfigText => {
  const text = valid(sequence, 'refused');
  return { ...text, text: text.text.replace('service: user, responseHeaders', 'servce: user, responseHeaders') };
};

interface Settled {
  readonly sequence: number;
  readonly outcome: ConfigVerdict['outcome'];
  readonly tag?: unknown;
  readonly reason?: string;
}

/** A queue whose settle step records each verdict, holding each one until `release` when `hold` is set. */
function recordingQueue(options: { hold?: boolean } = {}) {
  const settled: Settled[] = [];
  const releases: (() => void)[] = [];
  const queue = new WorkerConfigQueue(async (text, verdict) => {
    if (verdict.outcome === 'taken') {
      const tag = verdict.config.routes[0]?.responseHeaders?.set?.['x-config'];
      settled.push({ sequence: text.sequence, outcome: 'taken', tag });
    } else if (verdict.outcome === 'refused') settled.push({ sequence: text.sequence, outcome: 'refused', reason: String(verdict.error) });
    else settled.push({ sequence: text.sequence, outcome: 'superseded' });
    if (options.hold) await new Promise<void>((resolve) => releases.push(resolve));
  }, log);
  return { queue, settled, releases };
}

describe('WorkerConfigQueue', () => {
  it('takes a text that parses at once when no newer one came, and the next one received after it too', async () => {
    const { queue, settled } = recordingQueue();
    queue.receive(valid(1, 'one'));
    await waitFor(() => settled.length === 1, { timeoutMs: 5_000, message: 'the first text to be settled' });
    queue.receive(valid(2, 'two'));
    await waitFor(() => settled.length === 2, { timeoutMs: 5_000, message: 'the second text to be settled' });
    expect(settled).toEqual([
      { sequence: 1, outcome: 'taken', tag: 'one' },
      { sequence: 2, outcome: 'taken', tag: 'two' },
    ]);
  });

  it('supersedes a text that parses at once when a newer one is already queued behind it, and takes the newer one', async () => {
    const { queue, settled } = recordingQueue();
    queue.receive(valid(1, 'one'));
    queue.receive(valid(2, 'two'));
    await waitFor(() => settled.length === 2, { timeoutMs: 5_000, message: 'both texts to be settled' });
    expect(settled).toEqual([
      { sequence: 1, outcome: 'superseded' },
      { sequence: 2, outcome: 'taken', tag: 'two' },
    ]);
  });

  it('answers superseded for a refused text with a newer one behind it, where it was dropped with no answer', async () => {
    const { queue, settled } = recordingQueue();
    queue.receive(misspelt(1));
    queue.receive(valid(2, 'two'));
    await waitFor(() => settled.length === 2, { timeoutMs: 5_000, message: 'both texts to be settled' });
    expect(settled).toEqual([
      { sequence: 1, outcome: 'superseded' },
      { sequence: 2, outcome: 'taken', tag: 'two' },
    ]);
  });

  it('refuses the latest text when it does not parse, saying why', async () => {
    const { queue, settled } = recordingQueue();
    queue.receive(misspelt(1));
    await waitFor(() => settled.length === 1, { timeoutMs: 5_000, message: 'the text to be settled' });
    expect(settled[0]).toMatchObject({ sequence: 1, outcome: 'refused' });
    expect(settled[0]!.reason).toMatch(/servce/);
  });

  it('settles one text at a time in the order sent: of the texts that came while one was applied, only the newest is taken', async () => {
    const { queue, settled, releases } = recordingQueue({ hold: true });
    queue.receive(valid(1, 'one'));
    await waitFor(() => settled.length === 1, { timeoutMs: 5_000, message: 'the first text to be settling' });
    queue.receive(valid(2, 'two'));
    queue.receive(misspelt(3));
    queue.receive(valid(4, 'four'));
    // Nothing else is settled while the first one is being applied.
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toHaveLength(1);
    for (let settledCount = 1; settledCount <= 4; settledCount += 1) {
      await waitFor(() => releases.length === settledCount, { timeoutMs: 5_000, message: `text ${settledCount} to be settling` });
      releases[settledCount - 1]!();
    }
    expect(settled).toEqual([
      { sequence: 1, outcome: 'taken', tag: 'one' },
      { sequence: 2, outcome: 'superseded' },
      { sequence: 3, outcome: 'superseded' },
      { sequence: 4, outcome: 'taken', tag: 'four' },
    ]);
  });

  it('takes nothing once stopped, and its stop resolves once the text being applied is done', async () => {
    const { queue, settled, releases } = recordingQueue({ hold: true });
    queue.receive(valid(1, 'one'));
    await waitFor(() => releases.length === 1, { timeoutMs: 5_000, message: 'the first text to be settling' });
    let stopped = false;
    const stop = queue.stop().then(() => (stopped = true));
    queue.receive(valid(2, 'two'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    releases[0]!();
    await stop;
    expect(settled).toEqual([{ sequence: 1, outcome: 'taken', tag: 'one' }]);
  });
});
