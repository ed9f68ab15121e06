import { describe, expect, it } from 'vitest';
import { Base64Stream } from '../../../src/base64-stream.ts';
import { grpcWebFrame } from '../../proxy/proxy-testing.ts';
import { grpcWebTrailerFrame } from '../../proxy/grpc-web-trailers.ts';
import { GrpcWebAnswerBody, GrpcWebTextDecoder } from './grpc-web-codec.ts';
import { BodyMalformedError } from '../../transports/transport-outcome.ts';
import { classifyUpstreamError } from '../../proxy/upstream-error.ts';

/** Everything `stream` puts out once `chunks` were written to it one by one and it was ended. */
async function through(stream: NodeJS.ReadWriteStream, chunks: readonly Buffer[], beforeEnd?: () => void): Promise<Buffer> {
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => stream.once('end', resolve));
  for (const chunk of chunks) stream.write(chunk);
  beforeEnd?.();
  stream.end();
  await ended;
  return Buffer.concat(out);
}

/** `bytes` in pieces of `sizes` (the rest last). */
function pieces(bytes: Buffer, sizes: readonly number[]): Buffer[] {
  const result: Buffer[] = [];
  let offset = 0;
  for (const size of sizes) {
    result.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return [...result, bytes.subarray(offset)];
}

describe('GrpcWebTextDecoder', () => {
  it('decodes a -text request body cut anywhere, in odd-sized chunks, into the frames it encodes', async () => {
    const frames = Buffer.concat([grpcWebFrame(0, 'hello'), grpcWebFrame(0, 'again, longer')]);
    const text = Buffer.from(frames.toString('base64'), 'latin1');
    for (const sizes of [[1], [3, 5, 7], [2, 2, 2, 2, 9], [text.length]]) expect(await through(new GrpcWebTextDecoder(), pieces(text, sizes))).toEqual(frames);
  });

  it('decodes a body whose client padded each frame on its own', async () => {
    const text = Buffer.from(grpcWebFrame(0, 'a').toString('base64') + grpcWebFrame(0, 'bc').toString('base64'), 'latin1');
    expect(await through(new GrpcWebTextDecoder(), pieces(text, [5, 6]))).toEqual(Buffer.concat([grpcWebFrame(0, 'a'), grpcWebFrame(0, 'bc')]));
  });
});

describe('GrpcWebTextDecoder refuses a body that is not base64, as Envoy does', () => {
  /** The error `chunks` fail the decoder with, undefined when they decode; what came out before it in `out`. */
  async function failureOf(chunks: readonly string[]): Promise<{ error: Error | undefined; out: Buffer }> {
    const decoder = new GrpcWebTextDecoder();
    const out: Buffer[] = [];
    decoder.on('data', (chunk: Buffer) => out.push(chunk));
    const settled = new Promise<Error | undefined>((resolve) => {
      decoder.once('error', resolve);
      decoder.once('end', () => resolve(undefined));
    });
    for (const chunk of chunks) decoder.write(Buffer.from(chunk, 'latin1'));
    decoder.end();
    return { error: await settled, out: Buffer.concat(out) };
  }
  const good = grpcWebFrame(0, 'hello').toString('base64');

  it.each([
    ['a character outside base64', [good.slice(0, 4) + '!' + good.slice(5)]],
    ['base64url characters', [good.slice(0, 4) + '-_' + good.slice(6)]],
    ['padding within a group', ['A=AA']],
    ['a length not a multiple of 4 at the end', [good, 'AAA']],
    ['a bad character in a later piece, after good ones went on', [good, 'AA*A']],
  ])('%s: a BodyMalformedError, the client-body-error of its client', async (_what, chunks) => {
    const { error } = await failureOf(chunks);
    expect(error).toBeInstanceOf(BodyMalformedError);
    expect(classifyUpstreamError(error, false)).toBe('client-body-error');
    expect(error!.message).toMatch(/grpc-web-text body is not base64/);
  });

  it('decodes what came before the bad piece and nothing of it', async () => {
    const { error, out } = await failureOf([good, 'AA*A']);
    expect(error).toBeInstanceOf(BodyMalformedError);
    expect(out).toEqual(grpcWebFrame(0, 'hello'));
  });

  it('takes a body whose every run has its own padding, cut anywhere', async () => {
    const text = grpcWebFrame(0, 'a').toString('base64') + grpcWebFrame(0, 'bc').toString('base64');
    expect(await failureOf([text.slice(0, 3), text.slice(3, 11), text.slice(11)])).toEqual({ error: undefined, out: Buffer.concat([grpcWebFrame(0, 'a'), grpcWebFrame(0, 'bc')]) });
  });
});

describe('GrpcWebAnswerBody', () => {
  const messages = Buffer.concat([grpcWebFrame(0, 'first'), grpcWebFrame(0, 'second message')]);
  const trailers = { 'grpc-status': '0', 'x-custom': 'yes' };

  it('passes binary messages as they come and ends the body with the trailers as its last frame', async () => {
    const body = new GrpcWebAnswerBody(false);
    const out = await through(body, pieces(messages, [3, 9]), () => body.takeTrailers(trailers));
    expect(out).toEqual(Buffer.concat([messages, grpcWebTrailerFrame(trailers)]));
  });

  it('encodes each -text chunk on its own, its own padding included, so that none waits for the next; the whole reads back 4 characters at a time', async () => {
    const body = new GrpcWebAnswerBody(true);
    const written: string[] = [];
    body.on('data', (chunk: Buffer) => written.push(chunk.toString('latin1')));
    const out = await through(body, pieces(messages, [1, 4, 2]), () => body.takeTrailers(trailers));
    // Every piece is whole 4-character groups: a streamed message is never held back.
    expect(written.every((piece) => piece.length % 4 === 0)).toBe(true);
    expect(written.join('')).toMatch(/=.+/);
    expect(new Base64Stream().decode(out.toString('latin1'))).toEqual(Buffer.concat([messages, grpcWebTrailerFrame(trailers)]));
  });

  it('ends without a frame when the upstream sent no trailers', async () => {
    expect(await through(new GrpcWebAnswerBody(false), [messages])).toEqual(messages);
  });

  it('knows whether what went through ends between two messages, where a frame of the gateway\'s own may follow', async () => {
    const body = new GrpcWebAnswerBody(false);
    body.resume();
    expect(body.betweenMessages).toBe(true);
    await new Promise((resolve) => body.write(messages.subarray(0, 7), resolve));
    expect(body.betweenMessages).toBe(false);
    await new Promise((resolve) => body.write(messages.subarray(7), resolve));
    expect(body.betweenMessages).toBe(true);
  });

  it('counts what waits unencoded behind a client that reads slowly: a message begun there is not between two', () => {
    // Nobody reads: the first message fills the output, and the start of the next waits in the input.
    const body = new GrpcWebAnswerBody(false);
    // Larger than the output's buffer (16 KiB on Node 20, 64 KiB from Node 22), so that it fills it.
    const size = body.readableHighWaterMark + 4_000;
    const second = grpcWebFrame(0, Buffer.alloc(size, 0x62));
    body.write(grpcWebFrame(0, Buffer.alloc(size, 0x61)));
    body.write(second.subarray(0, 100));
    expect(body.writableLength).toBeGreaterThan(100);
    expect(body.betweenMessages).toBe(false);
    body.write(second.subarray(100));
    expect(body.betweenMessages).toBe(true);
  });
});

