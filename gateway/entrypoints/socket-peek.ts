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
    let seen: Buffer = Buffer.alloc(0);
    const finish = (verdict: T | undefined) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onGone);
      socket.off('end', onGone);
      socket.off('close', onGone);
      if (verdict === undefined) socket.destroy();
      else if (seen.length > 0) socket.unshift(seen);
      resolve(verdict);
    };
    const onGone = () => finish(undefined);
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
        const verdict = judge(seen);
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
