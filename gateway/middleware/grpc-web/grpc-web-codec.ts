import type { OutgoingHttpHeaders } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { Base64Error, Base64Stream } from '../../../src/base64-stream.ts';
import { BodyMalformedError } from '../../transports/transport-outcome.ts';
import { GrpcWebTrailerReader, grpcWebTrailerFrame } from '../../proxy/grpc-web-trailers.ts';

/**
 * Decodes an `application/grpc-web-text` request body into the binary frames gRPC reads, as it
 * streams: its chunks may be cut anywhere within a 4-character group, and each run the client
 * wrote may end with its own padding (`Base64Stream`). A body that is not base64 (a character
 * outside it, padding within a group, an end within a group) fails the decoder with a
 * `BodyMalformedError`, as Envoy refuses it: the client's fault, never forwarded decoded as far
 * as it goes, where the instance would fail the truncated message and be blamed for it.
 */
export class GrpcWebTextDecoder extends Transform {
  private readonly base64 = new Base64Stream();

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let bytes: Buffer;
    try {
      bytes = this.base64.decode(chunk.toString('latin1'), true);
    } catch (error) {
      if (!(error instanceof Base64Error)) throw error;
      return done(new BodyMalformedError(`the grpc-web-text body is not base64: ${error.message}`));
    }
    done(null, bytes.length > 0 ? bytes : undefined);
  }

  override _flush(done: TransformCallback): void {
    const left = this.base64.pending.length;
    done(left === 0 ? null : new BodyMalformedError(`the grpc-web-text body is not base64: it ends within a 4-character group (${left} characters left over)`));
  }
}

type WriteCallback = (error?: Error | null) => void;

/**
 * The body of a gRPC answer on its way to a gRPC-Web client: messages pass as they come (in base64
 * for `-text`, each chunk encoded on its own with its own padding, as Envoy does, so that a
 * streamed message is never held back for the bytes of the next), and the upstream's trailers
 * (`takeTrailers`) end it as a trailer frame, since a browser sees no HTTP trailers. A body the
 * upstream ended without trailers ends without a frame.
 */
export class GrpcWebAnswerBody extends Transform {
  private trailers: OutgoingHttpHeaders | undefined = undefined;
  /**
   * Follows the message frames (gRPC's framing is gRPC-Web's) of every byte written, encoded yet or
   * not, to know whether the body stands between two: behind a client that reads slowly, chunks wait
   * unencoded, and a trailer frame `end` appends comes after them.
   */
  private readonly frames = new GrpcWebTrailerReader('application/grpc');

  constructor(readonly text: boolean) {
    super();
  }

  /** Takes the trailers that end the body; they are written as its last frame when it ends. */
  takeTrailers(trailers: OutgoingHttpHeaders): void {
    this.trailers = trailers;
  }

  /** Whether what was written ends between two messages, so that a trailer frame appended reads as one. */
  get betweenMessages(): boolean {
    return this.frames.mayAppendTrailers;
  }

  override write(chunk: string | Uint8Array, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    this.frames.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    return super.write(chunk, encoding as BufferEncoding, callback);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    done(null, this.encoded(chunk));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.trailers === undefined ? undefined : this.encoded(grpcWebTrailerFrame(this.trailers)));
  }

  private encoded(bytes: Buffer): Buffer {
    return this.text ? Buffer.from(bytes.toString('base64'), 'latin1') : bytes;
  }
}
