import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DROPPED_BODY_MAX_BYTES, dropsSmallBody } from './http1-unread-body.ts';

describe('dropsSmallBody on a real node:http server', () => {
  let server: Server;
  let port: number;
  /** What dropsSmallBody said of each request, by its `x-id`. */
  const said = new Map<string, boolean>();

  beforeAll(async () => {
    server = createServer((request, response) => {
      // Asked at once, as the gateway's answers are: the body has not been parsed whole yet.
      said.set(String(request.headers['x-id']), dropsSmallBody(request, response, request.socket as Socket));
      response.end('answered');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** Sends `head` (its fields) and `body` in one write and resolves with what dropsSmallBody said. */
  const ask = async (id: string, fields: string, body: string, version = '1.1'): Promise<boolean | undefined> => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    try {
      socket.write(`POST /x HTTP/${version}\r\nhost: t\r\nx-id: ${id}\r\n${fields}\r\n${body}`);
      await new Promise((resolve) => socket.once('data', resolve));
      return said.get(id);
    } finally {
      socket.destroy();
    }
  };

  it.each([
    ['a small content-length body on a keep-alive connection', 'content-length: 20\r\n', 'x'.repeat(20), '1.1', true],
    ['a body of exactly the largest dropped size', `content-length: ${DROPPED_BODY_MAX_BYTES}\r\n`, 'x'.repeat(DROPPED_BODY_MAX_BYTES), '1.1', true],
    ['a body one byte larger', `content-length: ${DROPPED_BODY_MAX_BYTES + 1}\r\n`, 'x'.repeat(DROPPED_BODY_MAX_BYTES + 1), '1.1', false],
    ['a chunked body', 'transfer-encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n', '1.1', false],
    ['a request whose client closes the connection', 'content-length: 20\r\nconnection: close\r\n', 'x'.repeat(20), '1.1', false],
    ['an HTTP/1.0 request', 'content-length: 20\r\n', 'x'.repeat(20), '1.0', false],
    ['a request with Expect: 100-continue', 'content-length: 20\r\nexpect: 100-continue\r\n', 'x'.repeat(20), '1.1', false],
  ] as const)('decides for %s whether its body is read and dropped with the connection kept', async (name, fields, body, version, drops) => {
    expect(await ask(name, fields, body, version)).toBe(drops);
  });
});
