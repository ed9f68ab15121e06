import type { GatewayContext } from '../../context.ts';
import { whileClientStays } from '../client-gone.ts';

/** How a request that found another's fetch of its key under way came out of its wait. */
export type LockWait = 'released' | 'timeout' | 'gone';

/** How a miss came out of `FetchLocks.awaitTurn`: a `LockWait`, or `free` to go upstream (holding the lock when it may take one). */
export type LockTurn = LockWait | 'free';

/**
 * The fetches of new entries under way in one `cache`, one per lock key (nginx's
 * `proxy_cache_lock`; the cache's `lockKey`: a primary key, or one `Vary` variant of it): the first
 * miss of a key takes its lock and goes upstream; a later miss of that key waits for it
 * (`waitForFetch`) and then looks again, instead of going upstream beside it. A lock is let go as
 * its holder's response closes (the answer stored by then, or never to be), or, when its fetch
 * gathers the answer (`gathering`), as that ends, which may be later (the body read on after the
 * client's answer was done, transport-response-body.ts); a fetch that stored
 * nothing for a waiter hands it to one of them (`awaitTurn`).
 */
export class FetchLocks {
  private readonly held = new Map<string, FetchLock>();
  /** The lock each holder holds (one at a time), for `release`. */
  private readonly holders = new WeakMap<GatewayContext, { readonly key: string; readonly lock: FetchLock }>();

  /** The release of `key`'s lock when another request holds it, or undefined after taking it for `context` (until its response closes, or `release`). */
  holderOf(key: string, context: GatewayContext): Promise<void> | undefined {
    const held = this.held.get(key);
    if (held !== undefined) return held.released;
    // A response destroyed already may have closed: no lock that nothing would let go.
    if (context.response.destroyed) return undefined;
    let resolve!: () => void;
    const released = new Promise<void>((done) => (resolve = done));
    const lock: FetchLock = { holder: context, released, letGo: resolve };
    this.held.set(key, lock);
    this.holders.set(context, { key, lock });
    context.response.once('close', () => {
      if (!lock.gathering) this.letGo(key, lock);
    });
    return undefined;
  }

  /** The fetch of `context` gathers its answer to store: its lock, if it holds one, is let go by `release` alone, not as its response closes. */
  gathering(context: GatewayContext): void {
    const holding = this.holders.get(context);
    if (holding !== undefined) holding.lock.gathering = true;
  }

  /**
   * Lets go of the lock `context` holds, if any, before its response closes: its fetch stored its
   * answer, or will store nothing (an answer that may not be kept, a copy past the bounds) while its
   * body may stream on for long; its waiters look again at once instead of at the lock's timeout.
   */
  release(context: GatewayContext): void {
    const holding = this.holders.get(context);
    if (holding !== undefined) this.letGo(holding.key, holding.lock);
  }

  /**
   * Waits as a miss of `lockKey()` (asked at each look) that takes the lock when it may (`takes`;
   * a HEAD, which stores nothing, only waits as it arrives, so that it holds up no GET after it):
   * `free` when no fetch is under way (the lock now its own when `takes`, or when it waited: see
   * below); `released` once a fetch it waited for stored what `lookAgain` finds; `timeout` once `timeoutMs`
   * passed since it began waiting; `gone` when its client left. A fetch that stored nothing (a
   * failure, an answer not to keep) hands the lock to one waiter, the first to look again (a HEAD
   * too, holding it until its response closes), and the others wait on that one's fetch within
   * what is left of their own `timeoutMs` (it does not start again): a failing upstream sees one
   * request of the key at a time, not every waiter at once.
   */
  async awaitTurn(lockKey: () => string, context: GatewayContext, takes: boolean, timeoutMs: number, lookAgain: () => boolean): Promise<LockTurn> {
    let held = takes ? this.holderOf(lockKey(), context) : this.peek(lockKey());
    if (held === undefined) return 'free';
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const waited = await waitForFetch(context, held, deadline - performance.now());
      if (waited !== 'released') return waited;
      if (lookAgain()) return 'released';
      // A client that left as the lock was let go (its 'close' not yet heard) takes no lock: it would go upstream for nobody.
      if (context.response.destroyed) return 'gone';
      // After a fetch that stored nothing for it every waiter goes upstream in its turn, also one that
      // stores nothing itself (a HEAD): peeking, it would go beside whichever waiter took the lock.
      // The key is asked again: once the fetch stored what the key varies by, this miss waits only on
      // a fetch of its own variant.
      held = this.holderOf(lockKey(), context);
      if (held === undefined) return 'free';
    }
  }

  /** The release of `key`'s lock when a request holds it, taking nothing. */
  peek(key: string): Promise<void> | undefined {
    return this.held.get(key)?.released;
  }

  /** Keys whose fetch is under way. */
  get size(): number {
    return this.held.size;
  }

  private letGo(key: string, lock: FetchLock): void {
    // A later holder's lock of the same key is its own.
    if (this.held.get(key) === lock) this.held.delete(key);
    if (this.holders.get(lock.holder)?.lock === lock) this.holders.delete(lock.holder);
    lock.letGo();
  }
}

/** One key's fetch under way: who holds it, and what its waiters wait for. */
interface FetchLock {
  readonly holder: GatewayContext;
  readonly released: Promise<void>;
  readonly letGo: () => void;
  /** Its fetch gathers the answer, whose end or abort lets the lock go (`release`). */
  gathering?: boolean;
}

/**
 * Waits until `released` (the holder's response closed), `timeoutMs` passed (nginx's
 * `proxy_cache_lock_timeout`) or the client of `context` left, whichever comes first; the timer
 * cleared either way.
 */
export async function waitForFetch(context: GatewayContext, released: Promise<void>, timeoutMs: number): Promise<LockWait> {
  let timer: NodeJS.Timeout | undefined;
  const watched = await whileClientStays(context, (controller) =>
    new Promise<LockWait>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs));
      void released.then(() => resolve('released'));
      controller.signal.addEventListener('abort', () => resolve('gone'), { once: true });
    }),
  );
  clearTimeout(timer);
  if (watched === undefined || watched.clientGone) return 'gone';
  return watched.result;
}
