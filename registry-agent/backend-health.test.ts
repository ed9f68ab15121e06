import pino from 'pino';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { startSwitchableBackend } from '../src/health/health-testing.ts';
import { freePort } from '../test/harness/ports.ts';
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
