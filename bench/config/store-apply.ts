// `switchboard config apply` of a file of many routes into a store that holds them already, against a
// real etcd and the compiled gateway: what the gateway's admin API spends judging (`--dry-run`, a dry
// run per changed object) and writing them (a dry run, then a write per changed object, each judged
// beside the whole store for its warnings). Prints the wall time of each command and the gateway's
// CPU time meanwhile (its /proc stat, which includes the store reader's compositions of the writes).
// Run: npx tsx bench/config/store-apply.ts  (BENCH_ROUTES, 3000 by default; comma-separated for several)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setup as buildPrograms } from '../../test/harness/build-programs.ts';
import { makeTempDir, REPO_ROOT, startEtcd, startGateway, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';

const COUNTS = (process.env.BENCH_ROUTES ?? '3000').split(',').map(Number);
const TOKEN = 'bench-store-apply-token';

/** The gateway's CPU time so far, in ms (utime + stime of /proc/<pid>/stat, at 100 ticks a second). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Runs `switchboard config <args>` to its end (no time limit: that is what is measured). */
function config(args: string[], adminUrl: string): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), 'config', ...args, '--admin', adminUrl], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SWITCHBOARD_ADMIN_TOKEN: TOKEN } });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stderr }));
  });
}

const routesFile = (count: number, suffix: string) => `services:\n  order: { instances: ["127.0.0.1:1"] }\nroutes:\n${Array.from({ length: count }, (_, index) => `  - { name: r${index}, path: /r/${index}${suffix}, service: order }`).join('\n')}\n`;

buildPrograms();
const etcd = await startEtcd();
const dir = await makeTempDir('sb-bench-store-apply-');
const rows: string[][] = [];
try {
  for (const count of COUNTS) {
    const root = `/bench-apply-${count}`;
    const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
configStore: { url: "etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${root}", timeout: 5s }
`);
    const adminUrl = `http://127.0.0.1:${gateway.adminPort}`;
    const pid = gateway.process.pid!;
    const routesInForce = async (suffix: string) => {
      const response = await fetch(`${adminUrl}/api/config`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return ((await response.json()) as { routes: { path?: string }[] }).routes.filter((route) => route.path?.endsWith(suffix)).length;
    };
    const measure = async (label: string, args: string[], settled: () => Promise<boolean>) => {
      const cpu = cpuMs(pid);
      const start = performance.now();
      const result = await config(args, adminUrl);
      if (result.status !== 0) throw new Error(`${label}: exit ${result.status}: ${result.stderr.slice(0, 2_000)}`);
      const wall = performance.now() - start;
      await waitFor(settled, { timeoutMs: 600_000, intervalMs: 500, message: `${label} to be applied` });
      rows.push([String(count), label, `${(wall / 1_000).toFixed(1)} s`, `${((cpuMs(pid) - cpu) / 1_000).toFixed(1)} s`]);
      process.stdout.write(`${rows.at(-1)!.join('  ')}\n`);
    };
    const first = join(dir, `first-${count}.yaml`);
    const changed = join(dir, `changed-${count}.yaml`);
    await writeFile(first, routesFile(count, '/a'));
    await writeFile(changed, routesFile(count, '/b'));
    await measure('apply into an empty store', ['apply', '-f', first], async () => (await routesInForce('/a')) === count);
    await measure('apply --dry-run, every route changed', ['apply', '-f', changed, '--dry-run'], () => Promise.resolve(true));
    await measure('apply, every route changed', ['apply', '-f', changed], async () => (await routesInForce('/b')) === count);
    await gateway.process.stop();
  }
} finally {
  await etcd.close();
}
process.stdout.write(`\n${table(['routes', 'command', 'wall', 'gateway CPU (until applied)'], rows)}\n`);
