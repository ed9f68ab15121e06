import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseStoreUrl, type StoreLocation } from '../../gateway/config-store/store-layout.ts';
import type { StoreListing } from '../../gateway/config-store/store-source.ts';
import { ZooKeeperStoreSource } from '../../gateway/config-store/store-source-zookeeper.ts';
import { connectZooKeeperClient, startZooKeeper, type ZooKeeperCluster } from '../harness/index.ts';

type ZooKeeperLocation = Extract<StoreLocation, { kind: 'zookeeper' }>;

const ROOT = `/sb-gather-${process.pid}`;

function call(run: (done: (error: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
}

/** Real time, whatever the fake timers: setImmediate and performance are not faked here. */
async function untilReal(condition: () => boolean, timeoutMs: number, message: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${message}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * The source's gathering, on a real ZooKeeper, with the clock in the test's hands: a change reaches
 * the source every 10 ms of the fake clock, never a 20 ms quiet. An integration test on real time
 * cannot tell a bounded gathering from an unbounded one, since a loaded machine pauses the writer or
 * the gateway for 20 ms now and then, and an unbounded gathering then lists too.
 */
describe('ZooKeeper config store source: a writer that never pauses', () => {
  let zk: ZooKeeperCluster;
  let writer: Client;
  let source: ZooKeeperStoreSource | undefined;

  beforeAll(async () => {
    zk = await startZooKeeper();
    writer = await connectZooKeeperClient(zk.connectString);
    await call((done) => writer.mkdirp(`${ROOT}/routes`, done));
    await call((done) => writer.create(`${ROOT}/routes/busy`, Buffer.from('{"path":"/busy","service":"echo"}'), done));
  }, 60_000);

  afterAll(async () => {
    vi.useRealTimers();
    await source?.close();
    writer?.close();
    await zk?.close();
  }, 30_000);

  it('lists the changes within 250 ms of the first, though they keep coming less than 20 ms apart', async () => {
    source = new ZooKeeperStoreSource(parseStoreUrl(`zk://${zk.connectString}${ROOT}`) as ZooKeeperLocation, { requestTimeoutMs: 10_000 });
    const listings: StoreListing[] = [];
    source.listings$.subscribe((listing) => listings.push(listing));
    const publish = vi.spyOn(source as unknown as { onPublish: (...args: unknown[]) => void }, 'onPublish');
    source.start();
    await untilReal(() => listings.length === 1, 30_000, 'the first listing');

    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const steps: number[] = [];
    for (let step = 1; step <= 40 && listings.length === 1; step += 1) {
      const published = publish.mock.calls.length;
      await call((done) => writer.setData(`${ROOT}/routes/busy`, Buffer.from(`{"path":"/busy-${step}","service":"echo"}`), -1, done));
      // The source heard this write before the clock moves: no step of 10 ms goes without a change.
      await untilReal(() => publish.mock.calls.length > published, 20_000, `the source to hear write ${step}`);
      vi.advanceTimersByTime(10);
      steps.push(step);
    }
    vi.useRealTimers();
    expect(listings.length, `no listing after ${steps.length} changes 10 ms apart`).toBe(2);
    // The first change came at step 1; the listing at most 250 ms of changes later.
    expect(steps.length).toBeLessThanOrEqual(26);
    expect(listings[1]!.entries.get(`${ROOT}/routes/busy`)).toContain('/busy-');
  }, 120_000);
});
