import { createServer, type Server } from 'node:http';
import { connect as connectHttp2 } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { accessLineOf, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** The secret a header policy adds upstream: no TRACE answer may carry it back. */
const SECRET = 'upstream-secret-7f3a';

describe('TRACE', () => {
  let echo: Server;
  let received: string[];
  let refusing: GatewayProcess;
  let forwarding: GatewayProcess;

  beforeAll(async () => {
    received = [];
    // An instance that answers TRACE as a final recipient does (RFC 9110 §9.3.8): the request it got, as message/http.
    echo = createServer((request, response) => {
      let head = `${request.method} ${request.url} HTTP/${request.httpVersion}\r\n`;
      for (let index = 0; index < request.rawHeaders.length; index += 2) head += `${request.rawHeaders[index]}: ${request.rawHeaders[index + 1]}\r\n`;
      received.push(head);
      response.writeHead(200, { 'content-type': 'message/http' }).end(head);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const config = (forward: boolean) => `
admin: { listen: 127.0.0.1:{{adminPort}} }
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  h2: { listen: "127.0.0.1:{{port:h2c}}", h2c: true }
${forward ? 'forwardTrace: true' : ''}
services:
  app: { instances: [127.0.0.1:${(echo.address() as AddressInfo).port}] }
routes:
  - { path: /, service: app, requestHeaders: { set: { x-upstream-key: ${SECRET} } } }
`;
    refusing = await startGateway(config(false));
    forwarding = await startGateway(config(true));
  });
  afterAll(async () => {
    await Promise.all([refusing?.process.stop(), forwarding?.process.stop()]);
    echo.closeAllConnections();
    await new Promise((resolve) => echo.close(resolve));
  });

  // A test that failed before its own reset leaves the next one what the instance received.
  beforeEach(() => void (received.length = 0));

  const headers = { cookie: 'session=client-cookie', authorization: 'Basic dXNlcjpwYXNz', 'x-client': 'one' };

  it('refuses TRACE by default with a 405 that lists the methods served, as nginx does, and sends nothing upstream', async () => {
    const answer = await sendRequest(refusing.port, '/echo', { method: 'TRACE', headers });
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe('GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH');
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'method-not-allowed', status: 405 });
    expect(answer.body).not.toContain(SECRET);
    expect(received).toEqual([]);
    // Other methods are served as before.
    expect((await sendRequest(refusing.port, '/echo')).status).toBe(200);
    received.length = 0;
  });

  it("refuses TRACE over HTTP/2 as over HTTP/1.1, each logged and counted as the gateway's own answer", async () => {
    const unrouted4xx = async () => sampleValue(await adminClient(`http://127.0.0.1:${refusing.adminPort}`).metrics(), 'switchboard_requests_total', { route: '', service: '', status: '4xx' }) ?? 0;
    const before = await unrouted4xx();
    expect((await sendRequest(refusing.port, '/over-http1', { method: 'TRACE', headers })).status).toBe(405);
    const session = connectHttp2(`http://127.0.0.1:${refusing.ports.h2c!}`);
    try {
      const answer = await new Promise<{ status: number; allow: unknown; body: string }>((resolve, reject) => {
        const stream = session.request({ ':method': 'TRACE', ':path': '/over-http2', ...headers });
        let body = '';
        let head: Record<string, unknown> = {};
        stream.setEncoding('utf8');
        stream.once('error', reject);
        stream.once('response', (received) => (head = received));
        stream.on('data', (chunk: string) => (body += chunk));
        stream.once('end', () => resolve({ status: Number(head[':status']), allow: head.allow, body }));
        stream.end();
      });
      expect(answer).toMatchObject({ status: 405, allow: 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH' });
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'method-not-allowed' });
    } finally {
      session.close();
    }
    expect(received).toEqual([]);
    for (const path of ['/over-http1', '/over-http2']) expect(await accessLineOf(refusing.process, path)).toMatchObject({ method: 'TRACE', status: 405, errorClass: 'method-not-allowed' });
    await waitFor(async () => (await unrouted4xx()) === before + 2, { message: 'both 405s counted among the unrouted 4xx' });
  });

  it('forwards TRACE with forwardTrace, counting Max-Forwards down', async () => {
    const answer = await sendRequest(forwarding.port, '/echo', { method: 'TRACE', headers: { ...headers, 'max-forwards': '3' } });
    expect(answer.status).toBe(200);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatch(/^TRACE \/echo HTTP\/1\.1\r\n/);
    expect(received[0]).toMatch(/\r\nmax-forwards: 2\r\n/);
    received.length = 0;
  });

  it('counts down a Max-Forwards past 2^53 exactly, never sending it on as another count or as 1e+23', async () => {
    expect((await sendRequest(forwarding.port, '/echo', { method: 'TRACE', headers: { 'max-forwards': '100000000000000000000000' } })).status).toBe(200);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatch(/\r\nmax-forwards: 99999999999999999999999\r\n/);
    received.length = 0;
  });

  it("answers a TRACE whose Max-Forwards is 0 itself with the client's own head, without its credentials or any header the gateway adds", async () => {
    const answer = await sendRequest(forwarding.port, '/echo?q=1', { method: 'TRACE', headers: { ...headers, 'max-forwards': '0' } });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('message/http');
    expect(answer.body).toMatch(/^TRACE \/echo\?q=1 HTTP\/1\.1\r\n/);
    expect(answer.body).toContain('x-client: one\r\n');
    expect(answer.body).toContain('max-forwards: 0\r\n');
    expect(answer.body).not.toContain(SECRET);
    expect(answer.body.toLowerCase()).not.toMatch(/x-upstream-key|x-forwarded-|x-real-ip|cookie|authorization/);
    expect(received).toEqual([]);
  });
});
