import { relative } from 'node:path';
import { afterAll, expect, vi } from 'vitest';
import { configStoreState } from '../gateway/config-store/store-status.ts';
import { beginFileTempFolder, endFileTempFolder } from './harness/temp-dirs.ts';

// What the file puts in os.tmpdir() goes into a folder of the file's own (TMPDIR), removed after its
// last hook: a run leaves nothing in /tmp, a failed one neither. A directory of the suite's own that
// the file left there without makeTempDir fails the file, by name (see temp-dirs.ts).
beginFileTempFolder();

// The unit project runs its files one after another in shared workers (isolate: false, see
// vitest.config.ts), and Vitest itself restores only spies between them: a clock or stub that a
// file left switched on must not reach the next file, where it would fail tests that are not at fault.
afterAll(async () => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
  // A config store location a file's reader recorded would make the next file's gateways wait for a
  // store on /ready (the location is the process's, set once by the store reader of a real gateway).
  configStoreState.setLocation(undefined);
  const file = expect.getState().testPath;
  const leftBehind = await endFileTempFolder(file ? relative(process.cwd(), file) : 'this test file');
  if (leftBehind) throw leftBehind;
});
