import { readFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createHttp2Server, type ClientHttp2Session, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
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

/**
 * POSTs `SIZE` bytes over `session` (node:http2, as a browser or curl --http2 would) and reads the
 * answer: status and body once the stream closed, an error as its code. No Content-Length when `chunked`.
 */
function uploadHttp2(session: ClientHttp2Session, path: string, chunked: boolean): Promise<{ status: number; body: string } | string> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': 'POST', ':path': path, ...(chunked ? {} : { 'content-length': String(SIZE) }) });
    const chunk = Buffer.alloc(64 * 1024, 1);
    let [sent, status, body] = [0, 0, ''];
    const pump = (): void => {
      while (sent < SIZE && !stream.closed) {
        sent += chunk.length;
        const more = stream.write(chunk);
        if (sent >= SIZE) return void stream.end();
        if (!more) return void stream.once('drain', pump);
      }
    };
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => (body += text));
    stream.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
    stream.on('close', () => resolve({ status, body }));
    pump();
  });
}

/** `answer`, or 'no answer within 10 s' past that deadline (an upload stalled on flow control never ends by itself). */
async function answeredWithin<T>(answer: Promise<T>): Promise<T | string> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((resolve) => (timer = setTimeout(resolve, 10_000, 'no answer within 10 s')));
  try {
    return await Promise.race([answer, deadline]);
  } finally {
    clearTimeout(timer);
  }
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
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  h2: { listen: "127.0.0.1:{{port:h2}}", h2c: true }
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
  - { path: /counted/http1, service: http1, middlewares: [counted] }
  - { path: /counted/https, service: https, middlewares: [counted] }
  - { path: /counted/h2c, service: h2c, middlewares: [counted] }
middlewares:
  counted: { bodyLimit: { maxSize: 16MiB } }
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

    it(`hands an HTTP/2 client the early 413 of an ${service} instance within seconds, and its session serves on`, async () => {
      const session = connect(`http://127.0.0.1:${gateway.ports.h2}`);
      session.on('error', () => undefined);
      try {
        for (const [path, chunked] of [[`/${service}/h2-upload`, false], [`/${service}/h2-upload`, true], [`/counted/${service}/h2-upload`, false], [`/counted/${service}/h2-upload`, true]] as const) {
          // The client stops sending once the gateway resets the rest of its upload (RFC 9113 §8.1);
          // without that it waits for flow-control window nobody opens, and the deadline passes.
          const answer = await answeredWithin(uploadHttp2(session, path, chunked));
          expect(answer, await logOf(gateway.process)).toEqual({ status: 413, body: 'too big\n' });
        }
        const after = await new Promise<number>((resolve, reject) => {
          const stream = session.request({ ':path': `/${service}/after` });
          stream.on('response', (headers) => resolve(Number(headers[':status'])));
          stream.on('error', reject);
          stream.resume();
        });
        expect(after).toBe(413);
        expect(session.destroyed).toBe(false);
      } finally {
        session.close();
      }
      const instance = await instanceOf(service);
      expect(instance.errors).toBe(0);
    });

    it(`still blames an ${service} instance that resets an upload without an answer`, async () => {
      const before = (await instanceOf(service)).errors;
      const answer = await upload(gateway.port, `/${service}/crash`, false);
      expect(answer, await logOf(gateway.process)).toMatchObject({ status: 502 });
      await waitFor(async () => (await instanceOf(service)).errors === before + 1, { message: `the reset counted against the ${service} instance` });
    });
  }
});
