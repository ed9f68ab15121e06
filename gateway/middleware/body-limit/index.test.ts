import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sendTestRequest, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { announcesMoreThan, bodyLimit } from './index.ts';

/** Sends `head` and `body` on a raw connection and resolves with everything the server wrote before closing. */
function exchange(port: number, head: string, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // The answer is whole once its JSON body has closed: end our side, as a client told `connection: close` does.
      if (Buffer.concat(chunks).toString('latin1').endsWith('}')) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.write(head);
    socket.write(body);
  });
}

describe('bodyLimit', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it.each([
    [{ 'content-length': '11' }, 10, true],
    [{ 'content-length': '10' }, 10, false],
    [{ 'content-length': '0' }, 10, false],
    [{}, 10, false],
    [{ 'transfer-encoding': 'chunked' }, 10, false],
  ])('says whether %j announces more than %d bytes: %s', (headers, maxBytes, over) => {
    expect(announcesMoreThan(headers, maxBytes)).toBe(over);
  });

  it('passes a request whose content-length is at the limit to the proxy', async () => {
    server = await serveMiddleware([bodyLimit({ maxBytes: 5 })]);
    const answer = await sendTestRequest(server.port, '/', { method: 'POST', headers: { 'content-length': '5' }, body: 'hello' });
    expect(answer.status).toBe(200);
  });

  it('leaves a chunked body to the proxy to count, and does not count one with content-length', async () => {
    server = await serveMiddleware([bodyLimit({ maxBytes: 5 })]);
    expect((await sendTestRequest(server.port, '/', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: 'hello, world' })).status).toBe(200);
    expect((await sendTestRequest(server.port, '/', { method: 'POST', headers: { 'content-length': '5' }, body: 'hello' })).status).toBe(200);
    expect(server.contexts.map((context) => context.get('requestBodyLimit'))).toEqual([5, undefined]);
  });

  it('answers a content-length over the limit 413 body-too-large without the proxy, closing the connection', async () => {
    server = await serveMiddleware([bodyLimit({ maxBytes: 5 })]);
    const text = await exchange(server.port, 'POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 100000\r\n\r\n', Buffer.alloc(64 * 1024, 'x'));
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'body-too-large', status: 413 });
    expect(server.contexts[0]!.outcome).toMatchObject({ status: 413, errorClass: 'body-too-large' });
  });
});
