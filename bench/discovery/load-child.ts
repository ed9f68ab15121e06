// Child process of the discovery benchmark: loads every service of one registry through a fresh
// provider and prints {ms, rssMb, heapMb, externalMb, peakRssMb, rssBeforeMb} as one JSON line. A separate process, so that
// its memory figures hold nothing but the provider and what it loaded.
import { readFileSync } from 'node:fs';
import { filter, firstValueFrom, scan } from 'rxjs';
import { createProvider } from '../../src/discovery/index.ts';

const [url, servicesArg, perServiceArg] = process.argv.slice(2);
const services = Number(servicesArg);
const perService = Number(perServiceArg);
if (!url || !services || !perService) {
  process.stderr.write('usage: load-child.ts <registry-url> <services> <instances-per-service>\n');
  process.exit(2);
}

globalThis.gc?.();
const rssBefore = process.memoryUsage().rss;
const started = performance.now();
const provider = createProvider(url);
const loaded = firstValueFrom(
  provider.snapshots$.pipe(
    scan((full, snapshot) => {
      if (snapshot.instances.length === perService) full.add(snapshot.service);
      else full.delete(snapshot.service);
      return full;
    }, new Set<string>()),
    filter((full) => full.size === services),
  ),
);
provider.start();
await loaded;
const elapsed = performance.now() - started;
globalThis.gc?.();
const memory = process.memoryUsage();
const mb = (bytes: number) => bytes / 2 ** 20;
process.stdout.write(
  `${JSON.stringify({ ms: elapsed, rssMb: mb(memory.rss), heapMb: mb(memory.heapUsed), heapTotalMb: mb(memory.heapTotal), externalMb: mb(memory.external), peakRssMb: peakRssMb(), rssBeforeMb: mb(rssBefore) })}\n`,
);
await provider.close();
process.exit(0);

/** The process's RSS high-water mark (VmHWM), or NaN where /proc is missing. */
function peakRssMb(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
