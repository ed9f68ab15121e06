import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { writeSliced } from './sliced-work.ts';

/** Far more than one write (64 KiB): every write waits for `drain`, many times over. */
const BODY_PARTS = Array.from({ length: 256 }, () => Buffer.alloc(16 * 1024, 'x'));
const BODY_BYTES = BODY_PARTS.reduce((sum, part) => sum + part.length, 0);
const WATCHED_EVENTS = ['drain', 'close', 'error', 'finish'] as const;

type ListenerCounts = Record<(typeof WATCHED_EVENTS)[number], number>;

function listenerCounts(response: ServerResponse): ListenerCounts {
  return Object.fromEntries(WATCHED_EVENTS.map((event) => [event, response.listenerCount(event)])) as ListenerCounts;
}

/** A server whose one response is written with `writeSliced`; resolves with the listener counts before and after it. */
async function serveSliced(): Promise<{ server: Server; port: number; result: Promise<{ before: ListenerCounts; after: ListenerCounts }> }> {
  let settle!: (counts: { before: ListenerCounts; after: ListenerCounts }) => void;
  const result = new Promise<{ before: ListenerCounts; after: ListenerCounts }>((resolve) => (settle = resolve));
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY_BYTES });
    const before = listenerCounts(response);
    void writeSliced(response, BODY_PARTS).then(() => settle({ before, after: listenerCounts(response) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, result };
}

describe('writeSliced', () => {
  let server: Server | undefined;

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    server = undefined;
  });

  it('leaves no listener on the response after a body that waited for drain many times', async () => {
    const served = await serveSliced();
    server = served.server;
    const received = await new Promise<number>((resolve, reject) => {
      request({ port: served.port, host: '127.0.0.1' }, (response) => {
        let bytes = 0;
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.on('end', () => resolve(bytes));
      })
        .on('error', reject)
        .end();
    });
    expect(received).toBe(BODY_BYTES);
    const { before, after } = await served.result;
    expect(after).toEqual(before);
  });

  it('leaves no listener on the response when the client goes away while a write waits for drain', async () => {
    const served = await serveSliced();
    server = served.server;
    // The client stops reading after the first bytes and then goes: the write waiting for drain sees `close` instead.
    await new Promise<void>((resolve, reject) => {
      const client = request({ port: served.port, host: '127.0.0.1' }, (response) => {
        response.once('data', () => {
          response.pause();
          client.destroy();
          resolve();
        });
      }).on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
      client.end();
    });
    const { before, after } = await served.result;
    expect(after).toEqual(before);
  });
});
