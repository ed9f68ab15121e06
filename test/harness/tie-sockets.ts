import type { Socket } from 'node:net';

/**
 * Ties the two ends of a relayed connection: when either closes (an error closes it too, and is
 * otherwise ignored: a relay in a test must not crash the run), the other is destroyed and
 * `closed` is called, once per end.
 */
export function tieSockets(client: Socket, upstream: Socket, closed: () => void): void {
  for (const [one, other] of [
    [client, upstream],
    [upstream, client],
  ] as const) {
    one.on('error', () => undefined);
    one.on('close', () => {
      closed();
      other.destroy();
    });
  }
}
