import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import type { GatewayContext, ResponseBodyTap } from '../context.ts';
import { bodyUnwanted, startResponseBody } from './transport-response-body.ts';

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

  it('ends the response with its part once the tap gives up keeping the body, and not before: the rest is unwanted', async () => {
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
    sink.write(Buffer.from('0123456789'));
    // The part went through, but the tap still keeps the body: the response waits for the rest.
    expect(bodyUnwanted(sink)).toBe(false);
    // A copy past the cache's bounds: nothing more is kept, and the next chunk ends the response.
    keeping = false;
    sink.write(Buffer.from('abcdefghij'));
    expect(bodyUnwanted(sink)).toBe(true);
    await waitFor(() => response.writableEnded, { timeoutMs: 5_000, message: 'the response to end' });
    expect(seen).toEqual(['0123456789', 'abcdefghij', 'end']);
    expect([response.statusCode, context.outcome.bytesOut]).toEqual([206, 4]);
    // Chunks the transport still writes are dropped.
    sink.write(Buffer.from('klmnopqrst'));
    expect(seen).toHaveLength(3);
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
