import type { Client } from 'node-zookeeper-client';
import { ZooKeeperError, toZooKeeperError } from './zookeeper-errors.ts';

/** Deadline of one operation on a client that reports no session timeout (a fake, or before any handshake). */
export const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;

/**
 * Deadline of one operation on `client`: its session timeout. An answer later than that cannot
 * matter any more: by then the supervisor has dropped a silent connection (read timeout, 2/3 of it)
 * or counted a disconnected session as expired, and the caller retries on the next session.
 */
export function operationTimeoutOf(client: Pick<Client, 'getSessionTimeout'>): number {
  const timeoutMs = typeof client.getSessionTimeout === 'function' ? client.getSessionTimeout() : undefined;
  return typeof timeoutMs === 'number' && timeoutMs > 0 ? timeoutMs : DEFAULT_OPERATION_TIMEOUT_MS;
}

/**
 * Runs one library call and settles exactly once: with its results, with a `ZooKeeperError` for
 * an error it called back with or threw synchronously (the library asserts arguments by
 * throwing), or with `OPERATION_TIMEOUT` after `timeoutMs`, because the library never answers a
 * request queued on a client that is closed or reconnects forever. A late answer is ignored. A
 * function `start` returns is called on that timeout (to give back a slot the call held).
 */
export function callZooKeeper<A extends unknown[]>(
  operation: string,
  path: string,
  timeoutMs: number,
  start: (done: (error: unknown, ...results: A) => void) => void | (() => void),
): Promise<A> {
  return new Promise<A>((resolve, reject) => {
    let cancel: void | (() => void);
    const timer = setTimeout(() => {
      cancel?.();
      reject(new ZooKeeperError('OPERATION_TIMEOUT', `${operation} ${path}: no answer within ${timeoutMs} ms`, { path }));
    }, timeoutMs);
    const settle = (error: unknown, results: A | undefined): void => {
      clearTimeout(timer);
      if (error) reject(toZooKeeperError(error, operation, path));
      else resolve(results!);
    };
    try {
      cancel = start((error, ...results) => settle(error, results));
    } catch (error) {
      settle(error ?? new Error('unknown failure'), undefined);
    }
  });
}
