// `npm run bench:dashboard`: how long an update of a service with many instances (200 by default,
// as `BENCH_INSTANCES`) blocks the dashboard's main thread in headless Chromium. etcd holds the
// instances, on addresses nobody serves (no traffic, no checks); each round changes one instance's
// weight `UPDATES` times, and the page turns each change into a `weight-changed` event, a render,
// a fetch of /api/services and another render. Per update, in the page: the longest stretch a timer
// chain (due every ~4 ms) waited, which is the longest the thread was blocked, give or take 4 ms,
// and the long tasks (50 ms and more) a PerformanceObserver saw; and Chrome's own main-thread busy
// time (`TaskDuration` of CDP's Performance.getMetrics). `BENCH_BASELINE=<ref>` runs that commit's
// gateway, and so its dashboard, beside this checkout's on the same etcd, the rounds alternating.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup as buildPrograms } from '../../test/harness/build-programs.ts';
import { startChromium } from '../../test/harness/chromium.ts';
import { etcdClient } from '../../test/harness/etcd-client.ts';
import { REPO_ROOT, startEtcd, startGateway, waitFor, type GatewayProcess } from '../../test/harness/index.ts';
import { checkoutBaseline, type Baseline } from '../proxy/baseline.ts';
import { ms, summarize, table } from '../lib/stats.ts';

const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const UPDATES = Number(process.env.BENCH_UPDATES ?? 10);
const BASELINE = process.env.BENCH_BASELINE;
const SERVICE = 'big';
/** After the change shows: the settling fetch (150 ms later) and its render are done well within this. */
const SETTLE_MS = 1_000;
const PAGE_MS = 30_000;

interface UpdateSample {
  readonly blockedMs: number;
  readonly longestTaskMs: number;
  readonly busyMs: number;
}

/** Installed in the page: the longest wait of a timer chain and the long tasks since the last `take`. */
const PROBE = `(() => {
  const probe = { maxGap: 0, longest: 0 };
  new PerformanceObserver((list) => { for (const entry of list.getEntries()) probe.longest = Math.max(probe.longest, entry.duration); }).observe({ type: 'longtask' });
  let last = performance.now();
  const tick = () => { const now = performance.now(); probe.maxGap = Math.max(probe.maxGap, now - last); last = now; setTimeout(tick, 0); };
  setTimeout(tick, 0);
  window.benchTake = () => { const taken = { ...probe }; probe.maxGap = 0; probe.longest = 0; return taken; };
})()`;

const entry = (index: number, weight: number) => JSON.stringify({ id: `i${String(index).padStart(3, '0')}`, service: SERVICE, host: '127.0.0.2', port: 10_000 + index, weight });

buildPrograms();
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-dashboard-'));
const etcd = await startEtcd();
const writer = etcdClient(etcd.endpoints);
const put = (index: number, weight: number) => writer.put(`/services/${SERVICE}/i${String(index).padStart(3, '0')}`).value(entry(index, weight)).exec();
let baseline: Baseline | undefined;
const contenders: { name: string; gateway: GatewayProcess; samples: UpdateSample[] }[] = [];
const browser = await startChromium({ width: 1280, height: 800 });
try {
  await Promise.all(Array.from({ length: INSTANCES }, (_, index) => put(index, 1)));
  const config = `listen: 127.0.0.1:{{port}}\nadmin: 127.0.0.1:{{adminPort}}\naccessLog: false\nregistries: ["${etcd.endpoints[0]!.replace('http://', 'etcd://')}/services"]\n`;
  contenders.push({ name: 'this checkout', gateway: await startGateway(config), samples: [] });
  if (BASELINE) {
    baseline = await checkoutBaseline(REPO_ROOT, BASELINE, join(dir, 'baseline'));
    contenders.push({ name: `baseline ${baseline.commit}`, gateway: await startGateway(config, {}, { bin: baseline.program }), samples: [] });
  }
  const { page, context } = browser;
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const busySeconds = async () => (await cdp.send('Performance.getMetrics')).metrics.find((metric) => metric.name === 'TaskDuration')!.value;
  let change = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const contender of contenders) {
      await page.goto(`http://127.0.0.1:${contender.gateway.adminPort}/`);
      await page.locator('#connection[data-state="live"]').waitFor({ timeout: PAGE_MS });
      await waitFor(async () => (await page.locator(`article[data-service="${SERVICE}"] tbody tr`).count()) === INSTANCES, { timeoutMs: PAGE_MS, message: `${INSTANCES} rows` });
      await page.evaluate(PROBE);
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      await page.evaluate('window.benchTake()');
      for (let update = 0; update < UPDATES; update += 1) {
        change += 1;
        const index = (change * 37) % INSTANCES;
        const weight = 2 + (change % 9);
        const busyBefore = await busySeconds();
        await put(index, weight);
        const cell = page.locator(`article[data-service="${SERVICE}"] tr[data-instance="i${String(index).padStart(3, '0')}"] td`).nth(1);
        await waitFor(async () => (await cell.textContent()) === String(weight), { timeoutMs: PAGE_MS, message: `weight ${weight} shown` });
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        const taken = (await page.evaluate('window.benchTake()')) as { maxGap: number; longest: number };
        contender.samples.push({ blockedMs: taken.maxGap, longestTaskMs: taken.longest, busyMs: ((await busySeconds()) - busyBefore) * 1_000 });
      }
    }
  }
  const rows = contenders.map(({ name, samples }) => {
    const of = (pick: (sample: UpdateSample) => number) => summarize(samples.map(pick));
    const [blocked, longest, busy] = [of((sample) => sample.blockedMs), of((sample) => sample.longestTaskMs), of((sample) => sample.busyMs)];
    return [name, String(samples.length), `${ms(blocked.p50)} / ${ms(blocked.max)}`, `${ms(longest.p50)} / ${ms(longest.max)}`, `${ms(busy.p50)} / ${ms(busy.max)}`];
  });
  process.stdout.write(`\n${INSTANCES} instances in one service, ${UPDATES} weight changes × ${ROUNDS} rounds; per update, p50 / max:\n`);
  process.stdout.write(`${table(['dashboard of', 'updates', 'main thread blocked ms (timer gap)', 'longest long task ms (0: none ≥ 50)', 'main thread busy ms (CDP TaskDuration)'], rows)}\n`);
} finally {
  await browser.close();
  for (const { gateway } of contenders) await gateway.process.stop();
  writer.close();
  await etcd.close();
  await baseline?.remove();
  await rm(dir, { recursive: true, force: true });
}
