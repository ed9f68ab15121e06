import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'gateway/**/*.test.ts', 'registry-agent/**/*.test.ts', 'bench/**/*.test.ts', 'scripts/**/*.test.ts'],
          testTimeout: 10_000,
          // Files share their worker's loaded modules instead of each loading them again in a fresh
          // one: on 2 cores that took ~110 s of CPU per run (the tests themselves ~70 s), now ~30 s.
          // A file that must replace a module's export does it for its own tests and puts it back
          // (src/discovery/file/unwatchable.test.ts); test/unit-setup.ts undoes clocks and stubs.
          isolate: false,
          // One worker per core (Vitest leaves one core free by default: on 2 cores, one worker). The
          // tests mostly wait on sockets and timers, so two workers on 2 cores took a run from ~138 s
          // to ~73 s of wall time for the same ~45 s of CPU.
          maxWorkers: '100%',
          setupFiles: ['test/unit-setup.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          // The programs run from dist/: build it from the current sources first (see the file).
          globalSetup: ['test/harness/build-programs.ts'],
          // Files run one after another in one test process that keeps its loaded modules, instead of
          // a fresh process per file that imports the harness again: that cost ~1.2 s per file, ~78 s
          // of a run, now ~21 s in all. What a file starts it must stop; the setup file kills what
          // it left running and fails that file by name.
          isolate: false,
          setupFiles: ['test/integration-setup.ts'],
          // Two files at a time, each in its own worker process (a worker runs its files one after
          // another). The files mostly wait (on sessions to expire, outages to last, timers, real
          // processes to start), so on 2 cores a CI run of the suite took ~475 s instead of ~860 s one
          // file at a time. Every file starts its own registries, backends and programs on port 0,
          // and the leftover check above works per worker. Not more: a file may run a 3-node
          // ZooKeeper ensemble, three JVMs, and CI machines have 2 cores shared with other work.
          fileParallelism: true,
          maxWorkers: 2,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
