import { relative } from 'node:path';
import { afterAll, expect } from 'vitest';
import type { HarnessError } from './harness/errors.ts';
import { killLeftoverProcesses, markOwnedProcesses } from './harness/leftovers.ts';
import { REPO_ROOT } from './harness/programs.ts';
import { beginFileTempFolder, endFileTempFolder } from './harness/temp-dirs.ts';

// A process that a file left running (a backend, a JVM, an orphan of a killed agent) would hold
// ports, CPU and registry state while the next files run, and fail them rather than the file at
// fault. Everything a test starts inherits a mark in its environment; after the file's last hook,
// whatever still runs with that mark is killed and fails that file, by name.
markOwnedProcesses();

// What the file and the programs it starts put in os.tmpdir() goes into a folder of the file's own
// (TMPDIR), removed after its last hook once those programs are gone: a run leaves nothing in /tmp,
// a failed one neither. A directory of the suite's own that the file left there without makeTempDir
// fails the file, by name (see temp-dirs.ts).
beginFileTempFolder();

afterAll(async () => {
  const file = expect.getState().testPath;
  const name = file ? relative(REPO_ROOT, file) : 'this test file';
  let leftBehind: HarnessError | undefined;
  try {
    await killLeftoverProcesses(name);
  } finally {
    leftBehind = await endFileTempFolder(name);
  }
  if (leftBehind) throw leftBehind;
});
