import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { startSwitchableBackend } from '../src/health/health-testing.ts';
import { freePort } from '../test/harness/ports.ts';
import { waitFor } from '../test/harness/wait.ts';
import { BackendHealth } from './backend-health.ts';

const log = pino({ level: 'silent' });
const TIMING = { intervalMs: 20, timeoutMs: 2_000, rise: 1, fall: 1 };

describe('BackendHealth', () => {
  it('probes --health-port on the backend host when given, though the registered port refuses', async () => {
    const management = await startSwitchableBackend();
    const health = new BackendHealth({ host: '127.0.0.1', port: await freePort(), healthPort: management.target.port, probe: { kind: 'http', path: '/ready' }, ...TIMING }, log);
    try {
      health.start();
      await firstValueFrom(health.healthy$.pipe(filter(Boolean)));
      expect(management.requests[0]).toEqual({ path: '/ready', host: `127.0.0.1:${management.target.port}` });
      // And leaves the registration once the management port fails.
      management.status = 503;
      await firstValueFrom(health.healthy$.pipe(filter((healthy) => !healthy)));
    } finally {
      health.stop();
      await management.close();
    }
  });

  it('never overlaps probes: with --timeout longer than --interval the next starts --interval after the last one gave up', async () => {
    // A backend that takes every probe and never answers: each one runs its full --timeout.
    const arrivals: number[] = [];
    const backend = createServer(() => arrivals.push(performance.now()));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const timing = { intervalMs: 20, timeoutMs: 300, rise: 1, fall: 1 };
    const health = new BackendHealth({ host: '127.0.0.1', port: (backend.address() as AddressInfo).port, probe: { kind: 'http', path: '/ready' }, ...timing }, log);
    try {
      health.start();
      await waitFor(() => arrivals.length >= 4, { timeoutMs: 20_000, message: 'four probes' });
      // Probes started every --interval would arrive 20 ms apart; one at a time, at least --timeout
      // apart (less a margin for the loop's lag in noting an arrival, which a loaded machine only adds to the gaps).
      const gaps = arrivals.slice(1, 4).map((at, index) => at - arrivals[index]!);
      for (const gap of gaps) expect(gap).toBeGreaterThan(timing.timeoutMs - 100);
      expect(health.healthy).toBe(false);
    } finally {
      health.stop();
      backend.closeAllConnections();
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    }
  });

  it('probes the registered port without --health-port', async () => {
    const backend = await startSwitchableBackend();
    const health = new BackendHealth({ host: '127.0.0.1', port: backend.target.port, probe: { kind: 'tcp' }, ...TIMING }, log);
    try {
      health.start();
      await firstValueFrom(health.healthy$.pipe(filter(Boolean)));
    } finally {
      health.stop();
      await backend.close();
    }
  });
});
