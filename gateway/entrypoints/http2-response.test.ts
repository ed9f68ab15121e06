import type { OutgoingHttpHeaders } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientResponse } from '../context.ts';
import { startPlainHttp2, type PlainHttp2 } from './http2-testing.ts';

describe('GatewayHttp2Response', () => {
  let started: PlainHttp2 | undefined;
  afterEach(() => started?.close());

  /** One request over plaintext HTTP/2 answered by `answer`: what the client received, trailers included. */
  async function exchange(answer: (response: ClientResponse) => void): Promise<{ headers: IncomingHttpHeaders; trailers: IncomingHttpHeaders; body: string }> {
    started = await startPlainHttp2((_request, response) => answer(response));
    const stream = started.client.request({ ':path': '/' }, { endStream: true });
    return new Promise((resolve, reject) => {
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders = {};
      let body = '';
      stream.on('response', (received) => (headers = received));
      stream.on('trailers', (received) => (trailers = received));
      stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
      stream.on('error', reject);
      stream.on('end', () => resolve({ headers, trailers, body }));
    });
  }

  it('passes on what HTTP/2 can carry of headers node:http2 refuses: the first of a repeated single-value one, without connection-specific ones', async () => {
    const { headers } = await exchange((response) => {
      response.setHeader('content-type', ['text/plain', 'text/html']);
      response.setHeader('te', 'gzip');
      // As undici hands an upstream's headers over: a repeated one as an array, whatever its name.
      const upstream: Record<string, string | string[]> = { location: ['/a', '/b'], 'http2-settings': 'AAMAAABk', connection: 'close', te: 'trailers', 'x-many': ['1', '2'] };
      response.writeHead(302, upstream as OutgoingHttpHeaders);
      response.end();
    });
    expect(headers).toMatchObject({ ':status': 302, location: '/a', 'content-type': 'text/plain', te: 'trailers', 'x-many': '1, 2' });
    expect(headers).not.toHaveProperty('http2-settings');
    expect(headers).not.toHaveProperty('connection');
  });

  it('refuses a status HTTP/2 cannot carry before taking any header, so the next answer goes out clean', async () => {
    let refused: unknown;
    const { headers, body } = await exchange((response) => {
      try {
        response.writeHead(999, { location: '/elsewhere', 'x-from-upstream': 'yes' });
      } catch (error) {
        refused = error;
      }
      response.writeHead(502, { 'content-type': 'application/json' });
      response.end('{"error":"upstream-protocol"}');
    });
    expect(refused).toMatchObject({ code: 'ERR_HTTP2_STATUS_INVALID' });
    expect(headers[':status']).toBe(502);
    expect(headers).not.toHaveProperty('location');
    expect(body).toBe('{"error":"upstream-protocol"}');
  });

  it('drops a connection-specific trailer, which node:http2 would throw on while sending the trailers', async () => {
    const { trailers } = await exchange((response) => {
      response.writeHead(200, { 'content-type': 'application/grpc' });
      response.addTrailers({ 'grpc-status': '0', 'http2-settings': 'AAMAAABk' });
      response.end();
    });
    expect(trailers).toMatchObject({ 'grpc-status': '0' });
    expect(trailers).not.toHaveProperty('http2-settings');
  });
});
