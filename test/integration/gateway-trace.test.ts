import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendRequest, startGateway, type GatewayProcess } from '../harness/index.ts';

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
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
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

  it('forwards TRACE with forwardTrace, counting Max-Forwards down', async () => {
    const answer = await sendRequest(forwarding.port, '/echo', { method: 'TRACE', headers: { ...headers, 'max-forwards': '3' } });
    expect(answer.status).toBe(200);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatch(/^TRACE \/echo HTTP\/1\.1\r\n/);
    expect(received[0]).toMatch(/\r\nmax-forwards: 2\r\n/);
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
