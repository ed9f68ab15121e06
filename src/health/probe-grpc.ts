import { constants } from 'node:http2';
import { http2ProbeSession } from './http2-probe-session.ts';
import type { HealthProbe } from './probe.ts';
import type { ProbeTlsOptions } from './probe-tls.ts';

/** Options of the gRPC health probe. */
export interface GrpcProbeOptions {
  /** The `service` field of the check; '' (the server as a whole) by default. */
  readonly service?: string;
  /** `:authority`; the target's `host:port` by default. */
  readonly authority?: string;
  /** TLS settings for `grpcs` (and `h2`, `https`) targets. */
  readonly tls?: ProbeTlsOptions;
}

const TLS_PROTOCOLS = new Set(['h2', 'grpcs', 'https']);
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
/** `HealthCheckResponse.ServingStatus.SERVING`. */
const SERVING = 1;
const STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/**
 * The standard gRPC health check (`grpc.health.v1.Health/Check`) on a fresh HTTP/2 session:
 * healthy when the call ends with `grpc-status` 0 and the answer's status is SERVING. The two
 * one-field messages are encoded by hand (field 1, a string out, a varint back), which needs no
 * protobuf library. Resolves, never rejects; an abort destroys the session at once.
 */
export function grpcProbe(options: GrpcProbeOptions = {}): HealthProbe {
  const request = grpcFrame(encodeHealthCheckRequest(options.service ?? ''));
  return (target, signal) =>
    http2ProbeSession(target, signal, { tls: TLS_PROTOCOLS.has(target.protocol), tlsOptions: options.tls }, (session, settle) => {
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: HEALTH_CHECK_PATH,
        [constants.HTTP2_HEADER_AUTHORITY]: options.authority ?? target.address,
        'content-type': 'application/grpc',
        te: 'trailers',
        'user-agent': 'switchboard-health-check',
      });
      const chunks: Buffer[] = [];
      let grpcStatus: string | undefined;
      stream.once('response', (headers) => {
        const status = Number(headers[constants.HTTP2_HEADER_STATUS] ?? 0);
        if (status !== 200) return settle(false, `status ${status}`);
        grpcStatus = headers['grpc-status'] as string | undefined;
      });
      stream.once('trailers', (trailers) => {
        grpcStatus = trailers['grpc-status'] as string | undefined;
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.once('end', () => {
        if (grpcStatus !== '0') return settle(false, `grpc-status ${grpcStatus ?? 'missing'}`);
        const status = decodeHealthCheckResponse(Buffer.concat(chunks));
        settle(status === SERVING, STATUS_NAMES[status] ?? `status ${status}`);
      });
      stream.end(request);
      return stream;
    });
}

/** `HealthCheckRequest { string service = 1; }` in protobuf wire format. */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0);
  const name = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
}

/** The `status` (field 1, varint) of a `HealthCheckResponse` in one gRPC frame; 0 (UNKNOWN) when absent or unreadable. */
export function decodeHealthCheckResponse(frame: Buffer): number {
  if (frame.length < 5 || frame[0] !== 0) return 0;
  const message = frame.subarray(5, 5 + frame.readUInt32BE(1));
  let offset = 0;
  while (offset < message.length) {
    const key = message[offset++]!;
    const [value, next] = readVarint(message, offset);
    if (key === 0x08) return value;
    // Only varint fields are expected; anything else means a message this probe does not know.
    if ((key & 7) !== 0) return 0;
    offset = next;
  }
  return 0;
}

/** One uncompressed gRPC length-prefixed message. */
export function grpcFrame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function readVarint(buffer: Buffer, start: number): [number, number] {
  let value = 0;
  let shift = 0;
  let offset = start;
  while (offset < buffer.length && shift < 35) {
    const byte = buffer[offset++]!;
    value |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
  }
  return [value, offset];
}
