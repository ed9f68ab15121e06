import { describe, expect, it } from 'vitest';
import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayContext } from '../context.ts';
import { answersGrpcWebWithGrpc, grpcWebTrailerFrame, grpcWebTrailerReader, GrpcWebTrailerReader } from './grpc-web-trailers.ts';
import { grpcWebFrame } from './proxy-testing.ts';

const message = (size: number) => grpcWebFrame(0, Buffer.alloc(size, 0x61));
const trailers = (text: string) => grpcWebFrame(0x80, Buffer.from(text, 'latin1'));

/** The status `body` reads as when fed in pieces of `size` bytes. */
function readInPieces(body: Buffer, size: number, contentType = 'application/grpc-web+proto'): number | undefined {
  const reader = new GrpcWebTrailerReader(contentType);
  for (let start = 0; start < body.length; start += size) reader.push(body.subarray(start, start + size));
  return reader.status;
}

describe('GrpcWebTrailerReader', () => {
  const body = Buffer.concat([message(3), message(0), message(70_000), trailers('grpc-message: it failed\r\nGrpc-Status: 14\r\n')]);

  it.each([1, 2, 3, 5, 7, 4_096, body.length])('reads grpc-status from the trailer frame after the messages, the body in pieces of %i bytes', (size) => {
    expect(readInPieces(body, size)).toBe(14);
  });

  it.each([1, 3, 4, 5, 64])('decodes a grpc-web-text body whose writes are each padded base64, read in pieces of %i characters', (size) => {
    // Each write of a text body is base64 on its own, padding included (as grpcwebproxy and Envoy send it).
    const text = [message(1), message(2), trailers('grpc-status:0\r\n')].map((part) => part.toString('base64')).join('');
    expect(readInPieces(Buffer.from(text, 'latin1'), size, 'application/grpc-web-text')).toBe(0);
  });

  it.each([
    ['a body without a trailer frame', Buffer.concat([message(10)])],
    ['a trailer frame without grpc-status', Buffer.concat([message(1), trailers('grpc-message: x\r\n')])],
    ['a trailer frame larger than any trailers', Buffer.concat([message(1), trailers(`x-pad: ${'p'.repeat(20_000)}\r\ngrpc-status: 14\r\n`)])],
    ['a trailer frame cut short', Buffer.concat([message(1), trailers('grpc-status: 14\r\n')]).subarray(0, 12)],
  ])('leaves the status unknown for %s', (_name, bytes) => {
    expect(readInPieces(bytes, 2)).toBeUndefined();
  });

  it('reads a malformed grpc-status as UNKNOWN', () => {
    expect(readInPieces(trailers('grpc-status: oops\r\n'), 100)).toBe(2);
  });

  it('is made for gRPC-Web answers without their status in the headers only', () => {
    expect(grpcWebTrailerReader({ 'content-type': 'application/grpc-web+proto' })).toBeInstanceOf(GrpcWebTrailerReader);
    expect(grpcWebTrailerReader({ 'content-type': 'application/grpc-web-text' })).toBeInstanceOf(GrpcWebTrailerReader);
    expect(grpcWebTrailerReader({ 'content-type': 'application/grpc-web', 'grpc-status': '0' })).toBeUndefined();
    expect(grpcWebTrailerReader({ 'content-type': 'application/grpc' })).toBeUndefined();
    expect(grpcWebTrailerReader({ 'content-type': 'application/json' })).toBeUndefined();
    expect(grpcWebTrailerReader({})).toBeUndefined();
  });
});

describe('GrpcWebTrailerReader.mayAppendTrailers: whether a trailer frame of the gateway would read as one after what was relayed', () => {
  const read = (contentType: string, parts: readonly Buffer[], lengthKnown = false) => {
    const reader = new GrpcWebTrailerReader(contentType, lengthKnown);
    for (const part of parts) reader.push(part);
    return reader.mayAppendTrailers;
  };
  const whole = message(5);
  const base64 = (bytes: Buffer) => Buffer.from(bytes.toString('base64'), 'latin1');

  it.each([
    ['nothing yet', 'application/grpc-web', [], false, true],
    ['whole frames', 'application/grpc-web', [whole, message(0)], false, true],
    ['a frame cut in its prefix', 'application/grpc-web', [whole.subarray(0, 3)], false, false],
    ['a frame cut in its payload', 'application/grpc-web', [whole.subarray(0, 7)], false, false],
    ['whole frames of an answer whose length was announced', 'application/grpc-web', [whole], true, false],
    ['the upstream trailer frame', 'application/grpc-web', [whole, trailers('grpc-status:0\r\n')], false, false],
    ['whole frames in padded base64 pieces', 'application/grpc-web-text', [base64(whole), base64(message(1))], false, true],
    ['base64 cut within a 4-character group', 'application/grpc-web-text', [base64(whole).subarray(0, 6)], false, false],
  ] as const)('after %s (%s)', (_what, contentType, parts, lengthKnown, expected) => {
    expect(read(contentType, parts, lengthKnown)).toBe(expected);
  });
});

describe('grpcWebTrailerFrame', () => {
  it('writes flag 0x80, the 4-byte length and one lower-case `name: value` line per value, leaving pseudo-headers out', () => {
    const frame = grpcWebTrailerFrame({ 'grpc-status': '5', 'Grpc-Message': 'no%20such', 'x-many': ['a', 'b'], 'x-none': undefined });
    const lines = 'grpc-status: 5\r\ngrpc-message: no%20such\r\nx-many: a\r\nx-many: b\r\n';
    expect(frame).toEqual(Buffer.concat([Buffer.from([0x80, 0, 0, 0, lines.length]), Buffer.from(lines, 'latin1')]));
  });

  it('writes an empty frame for no trailers', () => {
    expect(grpcWebTrailerFrame({})).toEqual(Buffer.from([0x80, 0, 0, 0, 0]));
  });
});

describe('answersGrpcWebWithGrpc: a plain gRPC server refusing a gRPC-Web call sent as it came', () => {
  const call = { request: { headers: { 'content-type': 'application/grpc-web+proto' } } } as unknown as GatewayContext;

  it.each([
    ['grpcio: UNKNOWN "Missing :te header" in an HTTP 200', { 'content-type': 'application/grpc', 'grpc-status': '2' }],
    ['grpc-go: INVALID_ARGUMENT "invalid gRPC request content-type" in an HTTP 415', { 'content-type': 'application/grpc', 'grpc-status': '3' }],
    ['UNIMPLEMENTED', { 'content-type': 'application/grpc+proto', 'grpc-status': '12' }],
  ])('is the route\'s mismatch for %s', (_what, headers) => {
    expect(answersGrpcWebWithGrpc(call, headers satisfies IncomingHttpHeaders)).toBe(true);
  });

  it.each([
    ['UNAVAILABLE, an instance failing every call', { 'content-type': 'application/grpc', 'grpc-status': '14' }],
    ['an answer with its status in trailers', { 'content-type': 'application/grpc' }],
    ['a gRPC-Web answer', { 'content-type': 'application/grpc-web+proto', 'grpc-status': '2' }],
  ])('is the instance\'s own answer for %s', (_what, headers) => {
    expect(answersGrpcWebWithGrpc(call, headers satisfies IncomingHttpHeaders)).toBe(false);
  });
});
