import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import type { GatewayContext } from '../context.ts';
import { startResponseBody } from './transport-response-body.ts';

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
});
