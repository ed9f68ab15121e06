import { relative } from 'node:path';
import { afterAll, expect } from 'vitest';
import { killLeftoverProcesses, markOwnedProcesses } from './harness/leftovers.ts';
import { REPO_ROOT } from './harness/programs.ts';

// A process that a file left running (a backend, a JVM, an orphan of a killed agent) would hold
// ports, CPU and registry state while the next files run, and fail them rather than the file at
// fault. Everything a test starts inherits a mark in its environment; after the file's last hook,
// whatever still runs with that mark is killed and fails that file, by name.
markOwnedProcesses();

afterAll(async () => {
  const file = expect.getState().testPath;
  await killLeftoverProcesses(file ? relative(REPO_ROOT, file) : 'this test file');
});
