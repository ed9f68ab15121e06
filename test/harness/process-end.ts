/** What runs when the test process ends, in the order it was registered; emptied as it runs, so each runs once. */
const cleanups = new Set<() => void>();
let hooksInstalled = false;

/**
 * Runs `cleanup` once when this process ends: on 'exit', or on SIGINT, SIGTERM or SIGHUP, after which
 * the signal is raised again (unless something else still handles it) so that the process dies of it
 * and its exit status still tells a stopped run from a finished one. `cleanup` must be synchronous
 * (nothing awaited runs after these events) and best effort; an error it throws is printed and the
 * other cleanups still run. A function registered again is not added twice.
 */
export function onTestProcessEnd(cleanup: () => void): void {
  cleanups.add(cleanup);
  installHooks();
}

function runCleanups(): void {
  const due = [...cleanups];
  cleanups.clear();
  for (const cleanup of due) {
    try {
      cleanup();
    } catch (error) {
      process.stderr.write(`test process cleanup failed: ${String(error)}\n`);
    }
  }
}

// A run stopped mid-file (Ctrl-C) never gets to the file's last hooks: Vitest then ends the worker
// with SIGTERM, which no 'exit' sees.
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', runCleanups);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      runCleanups();
      // Keep the default "die on this signal" behaviour unless someone else still handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}
