import { ZooKeeperError } from './zookeeper-errors.ts';

/** Bytes of the length prefix of every frame the server sends. */
const LENGTH_BYTES = 4;

/**
 * Cuts the server's byte stream (each frame a 4-byte big-endian length, then that many bytes) into
 * whole frames without copying them. node-zookeeper-client 1.1.3 parses one frame per call and
 * copies the rest of the chunk before each next frame, so a chunk of n pipelined replies cost
 * O(n²) bytes copied: loading 1,000 services copied hundreds of megabytes, which stayed in RSS.
 * Fed through this, the library only ever sees exactly one frame per call.
 */
export class ZooKeeperFrameSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /**
   * Delivers every whole frame `chunk` completes, in order, as views of the received bytes (valid
   * only during the call). Stops when `deliver` returns false and drops what is left: the
   * connection it came from is gone. Throws a `ZooKeeperError` on a negative length.
   */
  push(chunk: Buffer, deliver: (frame: Buffer) => boolean): void {
    let buffer = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      // A frame split across chunks is joined once, when all of it (or its length) is here.
      if (this.pendingBytes < this.needed()) return;
      buffer = Buffer.concat(this.pending, this.pendingBytes);
      this.reset();
    }
    let offset = 0;
    while (buffer.length - offset >= LENGTH_BYTES) {
      const size = buffer.readInt32BE(offset);
      if (size < 0) throw new ZooKeeperError('MARSHALLING_ERROR', `ZooKeeper reply frame with negative length ${size}`);
      const end = offset + LENGTH_BYTES + size;
      if (end > buffer.length) break;
      const frame = buffer.subarray(offset, end);
      offset = end;
      if (!deliver(frame)) return;
    }
    if (offset < buffer.length) {
      this.pending = [buffer.subarray(offset)];
      this.pendingBytes = buffer.length - offset;
    }
  }

  /** Forgets a partial frame: the next chunk starts a new stream (a new socket). */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Bytes needed before the pending frame can be cut: its whole length once the prefix is readable. */
  private needed(): number {
    const head = this.pending[0]!;
    return head.length >= LENGTH_BYTES ? LENGTH_BYTES + head.readInt32BE(0) : LENGTH_BYTES;
  }
}
