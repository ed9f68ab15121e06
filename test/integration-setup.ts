import { relative } from 'node:path';
import { afterAll, expect } from 'vitest';
import { killLeftoverProcesses, markOwnedProcesses } from './harness/leftovers.ts';
import { REPO_ROOT } from './harness/programs.ts';
import { removeFileTempDirs } from './harness/temp-dirs.ts';

// A process that a file left running (a backend, a JVM, an orphan of a killed agent) would hold
// ports, CPU and registry state while the next files run, and fail them rather than the file at
// fault. Everything a test starts inherits a mark in its environment; after the file's last hook,
// whatever still runs with that mark is killed and fails that file, by name.
markOwnedProcesses();

// Then the file's temporary directories go, also when a test failed: Vitest ends its workers
// without the exit hooks that used to remove them, and they piled up in /tmp.
afterAll(async () => {
  const file = expect.getState().testPath;
  try {
    await killLeftoverProcesses(file ? relative(REPO_ROOT, file) : 'this test file');
  } finally {
    await removeFileTempDirs();
  }
});
