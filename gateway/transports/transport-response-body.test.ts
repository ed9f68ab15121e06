import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import type { GatewayContext, ResponseBodyTap } from '../context.ts';
import { bodyUnwanted, readsOnWithoutClient, startResponseBody, stopTap, whenBodyUnwanted } from './transport-response-body.ts';

/** A real server's response to a real request, handed over once the server has it. */
async function serverResponse(): Promise<{ server: Server; response: ServerResponse }> {
  let handOver: (response: ServerResponse) => void = () => undefined;
  const received = new Promise<ServerResponse>((resolve) => (handOver = resolve));
  const server = createServer((_request, response) => handOver(response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = request({ host: '127.0.0.1', port: (server.address() as { port: number }).port, agent: false });
  client.once('error', () => undefined);
  client.end();
  return { server, response: await received };
}

describe('startResponseBody', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it.each([
    ['closed while the body streams', false],
    ['already closed when the head is written', true],
  ])('destroys the encoder of a response %s', async (_name, closedFirst) => {
    const started = await serverResponse();
    server = started.server;
    const { response } = started;
    let encoder: Transform | undefined;
    const context = { response, responseEncoder: () => (encoder = createGzip()) } as unknown as GatewayContext;
    if (closedFirst) {
      response.destroy();
      await waitFor(() => response.closed);
    }
    const sink = startResponseBody(context, 200, { 'content-type': 'text/plain' });
    expect(sink).toBe(encoder);
    if (!closedFirst) {
      sink.write('part of the answer');
      response.destroy();
    }
    await waitFor(() => encoder!.destroyed, { timeoutMs: 5_000, message: 'the encoder to be destroyed' });
  });

  it('ends the response with its part at once, reads the body on for a tap that keeps it, and leaves the rest unwanted once it keeps nothing', async () => {
    const started = await serverResponse();
    server = started.server;
    const { response } = started;
    let keeping = true;
    const seen: string[] = [];
    const tap: ResponseBodyTap = {
      chunk: (chunk) => void seen.push(chunk.toString()),
      end: () => void seen.push('end'),
      abort: () => void seen.push('abort'),
      keeping: () => keeping,
      part: { status: 206, start: 2, end: 6, length: 100 },
    };
    const context = { response, outcome: { bytesOut: 0 }, responseTapper: () => tap } as unknown as GatewayContext;
    const sink = startResponseBody(context, 200, { 'content-length': '4', 'content-range': 'bytes 2-5/100' });
    let left = 0;
    expect(whenBodyUnwanted(sink, () => (left += 1))).toBe(true);
    sink.write(Buffer.from('0123456789'));
    // The part went through: the client's answer ends, while the tap still keeps the body.
    await waitFor(() => response.writableEnded, { timeoutMs: 5_000, message: 'the response to end with its part' });
    sink.write(Buffer.from('abcdefghij'));
    await waitFor(() => seen.length === 2, { timeoutMs: 5_000, message: 'the tap to see the chunk read on' });
    expect([bodyUnwanted(sink), left]).toEqual([false, 0]);
    // A copy past the cache's bounds: nothing more is kept, and the rest is unwanted.
    keeping = false;
    sink.write(Buffer.from('klmnopqrst'));
    await waitFor(() => left === 1, { timeoutMs: 5_000, message: 'the transport to be told to leave the body' });
    expect(bodyUnwanted(sink)).toBe(true);
    expect(seen).toEqual(['0123456789', 'abcdefghij', 'klmnopqrst']);
    expect([response.statusCode, context.outcome.bytesOut]).toEqual([206, 4]);
    // Chunks the transport still writes are dropped, and it is told once.
    sink.write(Buffer.from('uvwxyz'));
    await new Promise((resolve) => setImmediate(resolve));
    expect([seen.length, left]).toEqual([3, 1]);
  });

  it.each([
    ['keeps the body: it is read on for the tap, which gets its end', true, ['ab', 'cd', 'end']],
    ['keeps nothing: the upstream is to stop, and the tap is aborted', false, ['ab', 'abort']],
  ])('after a client left mid-answer, a tap that %s', async (_name, keeping, expected) => {
    const started = await serverResponse();
    server = started.server;
    const { response } = started;
    const seen: string[] = [];
    const tap: ResponseBodyTap = { chunk: (chunk) => void seen.push(chunk.toString()), end: () => void seen.push('end'), abort: () => void seen.push('abort'), keeping: () => keeping };
    const context = { response, outcome: { bytesOut: 0 }, responseTapper: () => tap } as unknown as GatewayContext;
    const sink = startResponseBody(context, 200, { 'content-length': '4' });
    sink.write(Buffer.from('ab'));
    let readOn: boolean | undefined;
    // As a transport's 'close' listener runs: before the one the tap's pass-through adds.
    response.prependOnceListener('close', () => (readOn = readsOnWithoutClient(sink)));
    response.destroy();
    await waitFor(() => readOn !== undefined, { timeoutMs: 5_000, message: 'the response to close' });
    expect(readOn).toBe(keeping);
    if (keeping) {
      expect(context.outcome.errorClass).toBe('cancelled');
      sink.end(Buffer.from('cd'));
      await waitFor(() => seen.length === 3, { timeoutMs: 5_000, message: 'the tap to end' });
    } else await waitFor(() => seen.length === 2, { timeoutMs: 5_000, message: 'the tap to be aborted' });
    expect(seen).toEqual(expected);
    expect(context.outcome.bytesOut).toBe(2);
  });

  it('aborts the tap of a body read on once the transport gives it up', async () => {
    const started = await serverResponse();
    server = started.server;
    const { response } = started;
    const seen: string[] = [];
    const tap: ResponseBodyTap = { chunk: () => undefined, end: () => void seen.push('end'), abort: () => void seen.push('abort'), part: { status: 206, start: 0, end: 1, length: 10 } };
    const context = { response, outcome: { bytesOut: 0 }, responseTapper: () => tap } as unknown as GatewayContext;
    const sink = startResponseBody(context, 200, { 'content-length': '1', 'content-range': 'bytes 0-0/10' });
    sink.write(Buffer.from('0123'));
    await waitFor(() => response.writableEnded, { timeoutMs: 5_000, message: 'the response to end with its part' });
    stopTap(sink);
    expect(seen).toEqual(['abort']);
  });

  it('leaves a part that ends with the body to the body\'s end (its connection reusable), whatever the tap keeps', async () => {
    const started = await serverResponse();
    server = started.server;
    const { response } = started;
    const tap: ResponseBodyTap = { chunk: () => undefined, end: () => undefined, abort: () => undefined, keeping: () => false, part: { status: 206, start: 8, end: 10, length: 10 } };
    const context = { response, outcome: { bytesOut: 0 }, responseTapper: () => tap } as unknown as GatewayContext;
    const sink = startResponseBody(context, 200, { 'content-length': '2', 'content-range': 'bytes 8-9/10' });
    sink.write(Buffer.from('0123456789'));
    expect(bodyUnwanted(sink)).toBe(false);
    sink.end();
    await waitFor(() => response.writableEnded, { timeoutMs: 5_000, message: 'the response to end' });
  });
});
