import type { RequestBodyTap } from './request-body-limit.ts';

/**
 * A copy of a request body for its mirror, kept as the proxy streams the body upstream: up to
 * `maxBytes`, past which it lets go of what it holds and calls `tooLarge` once (a body whose length
 * was not announced: chunked, HTTP/2 without `content-length`). `whole` gets the body once it ends
 * within the limit; a body cut short calls neither.
 */
export class MirrorBodyCopy implements RequestBodyTap {
  private chunks: Buffer[] | undefined = [];
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly whole: (body: Buffer) => void,
    private readonly tooLarge: () => void,
  ) {}

  data(chunk: Buffer): void {
    if (this.chunks === undefined) return;
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      this.chunks = undefined;
      return this.tooLarge();
    }
    // Copied: the chunk's memory belongs to the stream, which may reuse it once it has passed on.
    this.chunks.push(Buffer.from(chunk));
  }

  end(): void {
    if (this.chunks === undefined) return;
    const body = Buffer.concat(this.chunks, this.bytes);
    this.chunks = undefined;
    this.whole(body);
  }
}
