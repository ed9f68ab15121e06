// Child process of the discovery benchmark: loads every service of one registry through a fresh
// provider and prints {ms, rssMb, heapMb, rssBeforeMb} as one JSON line. A separate process, so that
// its memory figures hold nothing but the provider and what it loaded.
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
process.stdout.write(
  `${JSON.stringify({ ms: elapsed, rssMb: memory.rss / 2 ** 20, heapMb: memory.heapUsed / 2 ** 20, rssBeforeMb: rssBefore / 2 ** 20 })}\n`,
);
await provider.close();
process.exit(0);
