import type { Socket } from 'node:net';

/**
 * Reads the first bytes of a fresh connection until `judge` decides what they are, then puts them
 * back (`unshift`), so that whichever server the socket is handed to next (`emit('connection')`)
 * reads the connection from its start: Node's HTTP/1.1 parser reads them as 'data', and its TLS
 * and HTTP/2 sessions feed bytes already buffered in the socket to OpenSSL and nghttp2. Resolves
 * undefined, with the socket destroyed, when the client closes, errs or has not been judged within
 * `timeoutMs`: a connection that never speaks holds nothing.
 */
export function peekSocket<T>(socket: Socket, timeoutMs: number, judge: (bytes: Buffer) => T | undefined): Promise<T | undefined> {
  return new Promise((resolve) => {
    // The bytes so far are the first `length` of `seen`, which grows by doubling: copying all of
    // them for each chunk made a client that drips a byte at a time cost time in their square.
    let seen: Buffer = Buffer.alloc(0);
    let length = 0;
    const finish = (verdict: T | undefined) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onGone);
      socket.off('end', onGone);
      socket.off('close', onGone);
      if (verdict === undefined) socket.destroy();
      else if (length > 0) socket.unshift(seen.subarray(0, length));
      resolve(verdict);
    };
    const onGone = () => finish(undefined);
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        if (length === 0) seen = chunk;
        else {
          if (length + chunk.length > seen.length) {
            const grown = Buffer.allocUnsafe(2 * (length + chunk.length));
            seen.copy(grown, 0, 0, length);
            seen = grown;
          }
          chunk.copy(seen, length);
        }
        length += chunk.length;
        const verdict = judge(length === seen.length ? seen : seen.subarray(0, length));
        if (verdict !== undefined) return finish(verdict);
      }
    };
    const timer = setTimeout(onGone, timeoutMs);
    socket.on('readable', onReadable);
    socket.on('error', onGone);
    socket.on('end', onGone);
    socket.on('close', onGone);
  });
}
