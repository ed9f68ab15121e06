import { readFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { createTestCa, logOf, makeTempDir, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const SIZE = 3 * 1024 * 1024;
const ROUNDS = 30;

/**
 * As node's http server answers what it will not read: 413 with `Connection: close` on the head,
 * the body left unread, so the kernel resets the connection once the server closes it. `/crash`
 * resets it without an answer, a backend that dies during the upload (over TLS by closing the
 * socket with the body unread, which the kernel sends as a reset too).
 */
function earlyAnswer(request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse): void {
  request.on('error', () => undefined);
  if (request.url?.endsWith('/crash')) return void ('encrypted' in request.socket ? request.socket.destroy() : request.socket.resetAndDestroy());
  const headers: Record<string, string> = { 'content-type': 'text/plain' };
  if (!('stream' in request)) headers.connection = 'close';
  response.writeHead(413, headers);
  response.end('too big\n');
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** POSTs `SIZE` bytes (with Content-Length, or chunked) and reads the answer; an error is its code. */
function upload(port: number, path: string, chunked: boolean): Promise<{ status: number; body: string } | string> {
  return new Promise((resolve) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: chunked ? {} : { 'content-length': SIZE } });
    const chunk = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    const pump = (): void => {
      while (sent < SIZE) {
        sent += chunk.length;
        const more = request.write(chunk);
        if (sent >= SIZE) return void request.end();
        if (!more) return void request.once('drain', pump);
      }
    };
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (text: string) => (body += text));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', (error: NodeJS.ErrnoException) => resolve(`response ${error.code}`));
    });
    request.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
    pump();
  });
}

describe('an upstream that answers an upload early and resets the connection for the unread body', () => {
  const servers: Server[] = [];
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    const ca = await createTestCa(await makeTempDir('sb-early-answer-'));
    const certificate = await ca.issue('backend', 'backend.test');
    const [cert, key] = await Promise.all([readFile(certificate.certFile), readFile(certificate.keyFile)]);
    // HTTP/1.1 over TLS too: the connector wraps the TLS socket's writes, which fail the same way.
    const http1 = createServer(earlyAnswer);
    const https = createHttpsServer({ cert, key }, earlyAnswer);
    const h2c = createHttp2Server(earlyAnswer);
    servers.push(http1, https, h2c);
    const [http1Port, httpsPort, h2cPort] = [await listen(http1), await listen(https), await listen(h2c)];
    // Panic off and outlier detection at its default 5 in a row: an ejection shows as 503s.
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  http1: { instances: [127.0.0.1:${http1Port}], healthCheck: false, panicThreshold: 0 }
  https:
    instances: [{ host: 127.0.0.1, port: ${httpsPort}, protocol: https }]
    tls: { caFile: ${ca.caFile}, serverName: backend.test }
    healthCheck: false
    panicThreshold: 0
  h2c: { instances: [{ host: 127.0.0.1, port: ${h2cPort}, protocol: h2c }], healthCheck: false, panicThreshold: 0 }
routes:
  - { path: /http1, service: http1 }
  - { path: /https, service: https }
  - { path: /h2c, service: h2c }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).filter((service) => service.instances.length === 1).length === 3, { message: 'every service to list its instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  const instanceOf = async (name: string) => (await admin.services()).find((service) => service.name === name)!.instances[0]!;

  for (const service of ['http1', 'https', 'h2c']) {
    it(`passes every early 413 of an ${service} instance on, with Content-Length or chunked, and blames it for none`, async () => {
      const answers: Record<string, number> = {};
      for (let round = 0; round < ROUNDS; round += 1) {
        const answer = await upload(gateway.port, `/${service}/upload-${round}`, round % 2 === 1);
        const key = typeof answer === 'string' ? answer : `${answer.status} ${answer.body.trim()}`;
        answers[key] = (answers[key] ?? 0) + 1;
      }
      expect(answers, await logOf(gateway.process)).toEqual({ '413 too big': ROUNDS });
      const instance = await instanceOf(service);
      expect(instance.errors).toBe(0);
      expect(instance.health.ejectedUntil).toBeNull();
    });

    it(`still blames an ${service} instance that resets an upload without an answer`, async () => {
      const before = (await instanceOf(service)).errors;
      const answer = await upload(gateway.port, `/${service}/crash`, false);
      expect(answer, await logOf(gateway.process)).toMatchObject({ status: 502 });
      await waitFor(async () => (await instanceOf(service)).errors === before + 1, { message: `the reset counted against the ${service} instance` });
    });
  }
});
