import { errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';

/**
 * How long a `close()` waits for a client still loading (a lazy import, then its constructor)
 * before it abandons it: importing the etcd or ZooKeeper client takes well under a second, even on
 * a loaded machine; one that takes longer is stuck, and would hold the gateway's stop for good.
 */
export const LOAD_WAIT_ON_CLOSE_MS = 2_000;

/** What the wait in `loadedForClose` resolves with once `waitMs` has passed. */
const PASSED = Symbol('passed');

/**
 * What a closing owner gets of a client it may still be loading: `loading`'s value if it settles
 * within `waitMs`, else undefined at once, with a warning naming `what`; a value `loading` still
 * yields later goes to `closeLate` (never started, it only needs closing), so nothing it opens
 * outlives the owner. The owner's close is then bounded by `waitMs` plus the client's own close.
 * A rejection of `loading`, or of `closeLate`, counts as no client (the owner reported it already).
 */
export async function loadedForClose<T>(
  loading: Promise<T | undefined>,
  what: string,
  log: Logger,
  closeLate: (late: T) => Promise<void>,
  waitMs: number = LOAD_WAIT_ON_CLOSE_MS,
): Promise<T | undefined> {
  const settled = loading.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const passed = new Promise<typeof PASSED>((resolve) => (timer = setTimeout(resolve, waitMs, PASSED)));
  const first = await Promise.race([settled, passed]).finally(() => clearTimeout(timer));
  if (first !== PASSED) return first;
  log.warn({ waitedMs: waitMs }, `closing without ${what}, still loading after ${waitMs} ms: abandoned (closed unstarted should it load later)`);
  void settled.then(async (late) => {
    if (late === undefined) return;
    await closeLate(late).catch((error: unknown) => log.warn({ err: errorMessage(error) }, `${what}, loaded after its owner closed, failed to close`));
  });
  return undefined;
}
