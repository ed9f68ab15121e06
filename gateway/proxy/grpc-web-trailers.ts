import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { GatewayContext } from '../context.ts';
import { Base64Stream } from '../../src/base64-stream.ts';
import { parseGrpcStatus } from './grpc-status.ts';

/** The frame flag of a gRPC-Web trailer frame (its most significant bit). */
const TRAILER_FLAG = 0x80;

/** The largest trailer frame read: trailers are a few short lines; a larger one is left unread. */
const MAX_TRAILER_BYTES = 16 * 1_024;

/**
 * Reads the `grpc-status` of a gRPC-Web answer from its body, where gRPC-Web carries the trailers:
 * length-prefixed frames (a flag byte, a 4-byte big-endian length), the last one with flag 0x80
 * holding `name:value` lines (grpc/doc/PROTOCOL-WEB.md). Fed the body chunks as they are relayed:
 * message payloads are skipped without a copy, only the trailer frame is kept. `application/
 * grpc-web-text` bodies are base64, decoded in 4-character groups as they come (each write of
 * such a body may end with its own padding). `status` stays undefined when the body holds no
 * readable trailer frame.
 */
export class GrpcWebTrailerReader {
  /** The code of the trailer frame's `grpc-status`, once it has been read. */
  status: number | undefined = undefined;
  /** The body is base64 (`application/grpc-web-text`). */
  readonly text: boolean;
  /** A text body's base64, decoded as it comes (`Base64Stream`). */
  private readonly base64 = new Base64Stream();
  /** Bytes of the current frame's 5-byte prefix read so far; 5 while in its payload. */
  private prefixRead = 0;
  private flags = 0;
  private remaining = 0;
  private trailer: Buffer | undefined = undefined;
  private trailerRead = 0;
  /** Nothing more to read: the trailer frame was read, or the body is not what gRPC-Web sends. */
  private done = false;

  /**
   * @param lengthKnown the answer announced its length (`Content-Length`): nothing may follow its body
   */
  constructor(
    contentType: string,
    readonly lengthKnown = false,
  ) {
    this.text = isGrpcWebText(contentType);
  }

  /**
   * True while what was read ends with a whole frame, no trailer frame among them, and the body's
   * length was not announced: a trailer frame of the gateway's own may follow (`endGrpcCall`) and
   * reads as one, where after part of a frame it would read as that frame's bytes.
   */
  get mayAppendTrailers(): boolean {
    return !this.done && !this.lengthKnown && this.prefixRead === 0 && this.base64.pending === '' && this.trailer === undefined;
  }

  /** Takes the next chunk of the body. */
  push(chunk: Buffer): void {
    if (this.done) return;
    this.frames(this.text ? this.base64.decode(chunk.toString('latin1')) : chunk);
  }

  private frames(bytes: Buffer): void {
    let index = 0;
    while (index < bytes.length && !this.done) {
      if (this.prefixRead < 5) {
        const byte = bytes[index++]!;
        if (this.prefixRead === 0) this.flags = byte;
        else this.remaining = this.remaining * 256 + byte;
        this.prefixRead += 1;
        if (this.prefixRead === 5) this.frameStarts();
        continue;
      }
      const take = Math.min(this.remaining, bytes.length - index);
      if (this.trailer) bytes.copy(this.trailer, this.trailerRead, index, index + take);
      this.trailerRead += take;
      this.remaining -= take;
      index += take;
      if (this.remaining === 0) this.frameEnds();
    }
  }

  private frameStarts(): void {
    if ((this.flags & TRAILER_FLAG) !== 0) {
      if (this.remaining > MAX_TRAILER_BYTES) return void (this.done = true);
      this.trailer = Buffer.allocUnsafe(this.remaining);
      this.trailerRead = 0;
    }
    if (this.remaining === 0) this.frameEnds();
  }

  private frameEnds(): void {
    this.prefixRead = 0;
    const trailer = this.trailer;
    if (!trailer) return;
    this.done = true;
    for (const line of trailer.toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'grpc-status') {
        this.status = parseGrpcStatus(line.slice(colon + 1).trim());
        return;
      }
    }
  }
}

/**
 * Reads the status of an upstream's answer to a gRPC call from its headers: `outcome.grpcStatus`
 * becomes their `grpc-status` (a Trailers-Only answer), undefined when they carry none, and a
 * gRPC-Web answer without one gets the reader of its body's trailer frame, returned. A gRPC-Web
 * call sent as it came that got plain gRPC back marks its outcome `grpcWebUnsupported`
 * (`answersGrpcWebWithGrpc`). Called for gRPC calls only, once their answer's headers are in.
 */
export function readGrpcStatus(context: GatewayContext, headers: IncomingHttpHeaders): GrpcWebTrailerReader | undefined {
  const outcome = context.outcome;
  const status = headers['grpc-status'];
  outcome.grpcStatus = status === undefined ? undefined : parseGrpcStatus(status);
  if (answersGrpcWebWithGrpc(context, headers)) outcome.grpcWebUnsupported = { grpcMessage: String(headers['grpc-message'] ?? '') };
  const reader = status === undefined ? grpcWebTrailerReader(headers) : undefined;
  if (reader !== undefined) BODY_READERS.set(outcome, reader);
  return reader;
}

/**
 * The `grpc-status` codes of the refusal a plain gRPC server gives a gRPC-Web call it cannot read:
 * UNKNOWN (grpcio: "Missing :te header"), INVALID_ARGUMENT (grpc-go: HTTP 415, "invalid gRPC
 * request content-type"), INTERNAL (a body or header it cannot parse) and UNIMPLEMENTED. Any
 * other status is the instance's own answer to a call it did read. The same codes may be that
 * too: grpc-js reads a gRPC-Web call as gRPC and answers a handler that throws with Trailers-Only
 * UNKNOWN, which nothing in the answer tells from grpcio's refusal.
 */
const GRPC_WEB_REFUSAL_STATUSES: ReadonlySet<number> = new Set([2, 3, 12, 13]);

/**
 * True when a gRPC-Web call went to the instance as it came (no `grpcWeb` middleware translated
 * it) and the answer may be the refusal of a plain gRPC server that cannot read gRPC-Web: plain
 * gRPC (`application/grpc`, `+proto`…), Trailers-Only (its status in the headers) with UNKNOWN,
 * INVALID_ARGUMENT, INTERNAL or UNIMPLEMENTED (grpcio answers UNKNOWN, "Missing :te header";
 * grpc-go INVALID_ARGUMENT in an HTTP 415). A server that read the call and failed it (a grpc-js
 * handler that throws: UNKNOWN) answers alike, and no header tells the two apart, so both count
 * against no instance: a route's mismatch never ejects one, at the cost of not counting such a
 * failure. Any other plain gRPC answer (UNAVAILABLE from an instance failing every call) counts as usual.
 */
export function answersGrpcWebWithGrpc(context: GatewayContext, headers: IncomingHttpHeaders): boolean {
  if (context.grpcWeb !== undefined || !isGrpcWebType(context.request.headers['content-type'])) return false;
  const type = headers['content-type'];
  if (!isPlainGrpcType(type)) return false;
  const status = headers['grpc-status'];
  return status !== undefined && GRPC_WEB_REFUSAL_STATUSES.has(parseGrpcStatus(status));
}

/** `application/grpc-web`, `-web+proto`, `-web-text`…: a gRPC-Web content type. */
export function isGrpcWebType(type: string | undefined): type is string {
  return type !== undefined && type.startsWith('application/grpc-web');
}

/** `application/grpc`, `application/grpc+proto`…: a gRPC content type that is not gRPC-Web. */
export function isPlainGrpcType(type: unknown): type is string {
  return typeof type === 'string' && type.startsWith('application/grpc') && !isGrpcWebType(type);
}

/** `application/grpc-web-text`, `-web-text+proto`: a gRPC-Web content type whose body is base64. */
export function isGrpcWebText(type: string): boolean {
  return type.startsWith('application/grpc-web-text');
}

/** The reader of each request's gRPC-Web answer body (by its outcome), for `endGrpcCall` to know where the body stands. */
const BODY_READERS = new WeakMap<object, GrpcWebTrailerReader>();

/** The reader of the gRPC-Web answer body relayed for the request of `outcome` (`readGrpcStatus`), if its answer is one. */
export function grpcWebBodyReader(outcome: object): GrpcWebTrailerReader | undefined {
  return BODY_READERS.get(outcome);
}

/**
 * A reader for the body of an upstream's answer to a gRPC call when that answer is gRPC-Web
 * without its status in the headers (not Trailers-Only); undefined for every other answer.
 */
export function grpcWebTrailerReader(headers: IncomingHttpHeaders): GrpcWebTrailerReader | undefined {
  const type = headers['content-type'];
  return isGrpcWebType(type) && headers['grpc-status'] === undefined ? new GrpcWebTrailerReader(type, headers['content-length'] !== undefined) : undefined;
}

/**
 * The gRPC-Web trailer frame of `trailers` (PROTOCOL-WEB.md): flag 0x80, the payload's length in 4
 * bytes big-endian, then one `name: value\r\n` line per value, names lower-case; pseudo-headers
 * and values left undefined are not written.
 */
export function grpcWebTrailerFrame(trailers: OutgoingHttpHeaders): Buffer {
  let lines = '';
  for (const name in trailers) {
    const value = trailers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */) continue;
    const lower = name.toLowerCase();
    if (Array.isArray(value)) for (const each of value) lines += `${lower}: ${each}\r\n`;
    else lines += `${lower}: ${value}\r\n`;
  }
  const payload = Buffer.from(lines, 'latin1');
  const frame = Buffer.allocUnsafe(5 + payload.length);
  frame[0] = TRAILER_FLAG;
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return frame;
}
