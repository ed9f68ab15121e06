import { afterAll, vi } from 'vitest';
import { removeFileTempDirs } from './harness/temp-dirs.ts';

// The unit project runs its files one after another in shared workers (isolate: false, see
// vitest.config.ts), and Vitest itself restores only spies between them: a clock or stub that a
// file left switched on must not reach the next file, where it would fail tests that are not at fault.
// Nor may the file's temporary directories outlive it: Vitest ends its workers without exit hooks.
afterAll(async () => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
  await removeFileTempDirs();
});
