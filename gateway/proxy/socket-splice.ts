import type { Socket } from 'node:net';
import type { CounterCell } from '../telemetry/index.ts';

/** What `spliceSockets` counts and tells; called on the data path, so cheap and never throwing. */
export interface SpliceHooks {
  /** Bytes read from the client and written upstream. */
  readonly bytesIn?: CounterCell;
  /** Bytes read from the upstream and written to the client. */
  readonly bytesOut?: CounterCell;
  /** The upstream socket closed with an error; `spoke` tells whether it had sent a byte. */
  upstreamFailed?(spoke: boolean): void;
  /** The idle timeout passed, and both sockets are being destroyed. */
  idled?(): void;
  /** Both sockets are closed; called once. */
  closed?(): void;
}

/**
 * Pipes `client` and `upstream` into each other until both are closed: a tcp entry point's
 * connection and its instance's, or a WebSocket and the upstream that accepted its upgrade. Both
 * are switched to half-open, so either side's FIN is passed on while the other direction keeps
 * flowing; a side that closes after ending its reading normally leaves the other to finish what it
 * still writes (its own FIN follows: `end`, never `destroy`, which would drop the bytes still in its
 * write buffer); a side that fails or is cut takes the other down with it. With `idleTimeoutMs`
 * above 0, no byte either way for that long destroys both.
 */
export function spliceSockets(client: Socket, upstream: Socket, idleTimeoutMs: number, hooks: SpliceHooks): void {
  client.allowHalfOpen = true;
  upstream.allowHalfOpen = true;
  // Errors surface as 'close' with hadError; without a listener a reset would crash the process.
  client.on('error', ignore);
  upstream.on('error', ignore);
  const counters = { upstreamSpoke: false };
  forward(client, upstream, hooks.bytesIn);
  forward(upstream, client, hooks.bytesOut, counters);

  const ended = new WeakSet<Socket>();
  // A client read ahead (`forwardConnection` while it connects) may have ended before the splice.
  if (client.readableEnded) ended.add(client);
  client.once('end', () => ended.add(client));
  upstream.once('end', () => ended.add(upstream));
  const onClose = (side: Socket, other: Socket) => (hadError: boolean) => {
    if (side === upstream && hadError) hooks.upstreamFailed?.(counters.upstreamSpoke);
    if (hadError || !ended.has(side)) other.destroy();
    else other.end();
  };
  client.once('close', onClose(client, upstream));
  upstream.once('close', onClose(upstream, client));

  if (idleTimeoutMs > 0) {
    const idle = () => {
      if (client.destroyed && upstream.destroyed) return;
      hooks.idled?.();
      client.destroy();
      upstream.destroy();
    };
    // Every byte either way is a read on one socket and a write on the other, so each sees all activity.
    client.setTimeout(idleTimeoutMs, idle);
    upstream.setTimeout(idleTimeoutMs, idle);
  }

  let open = 2;
  const release = () => {
    open -= 1;
    if (open === 0) hooks.closed?.();
  };
  client.once('close', release);
  upstream.once('close', release);
}

function ignore(): void {}

/**
 * Copies `from` into `to` with back-pressure (`from` pauses while `to` has more buffered than its
 * high-water mark, and resumes on 'drain') and passes `from`'s end on as `to`'s FIN. What
 * `Readable.pipe` does, written out so that one 'data' handler both counts and writes (instead of
 * `pipe` plus a second, counting 'data' listener on every chunk).
 */
function forward(from: Socket, to: Socket, bytes: CounterCell | undefined, spoke?: { upstreamSpoke: boolean }): void {
  from.on('data', (chunk: Buffer) => {
    if (bytes) bytes.value += chunk.length;
    if (spoke) spoke.upstreamSpoke = true;
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  // A socket whose FIN was read before (no data left to read) has emitted 'end' already.
  if (from.readableEnded) to.end();
  else from.once('end', () => to.end());
  from.resume();
}
