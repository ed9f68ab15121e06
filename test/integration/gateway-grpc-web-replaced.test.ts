// A gRPC-Web call whose upstream answers something that is not gRPC (a 404 page) gets a Trailers-Only
// status in its place. The page's body is dropped: over HTTP/2 a page that ends soon is read to its
// end, its stream not reset, and one that never ends is cancelled (RST_STREAM CANCEL) rather than
// read on until the idle-body timeout, and its trailers are dropped with it (the call is logged with
// the status the client got); over HTTP/1.1 it is read, and the connection serves the next call. The page's validators and ranges do not go on with the empty answer.
import { createServer as createHttpServer, type Server } from 'node:http';
import { constants, createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http1Call } from '../harness/grpc-web-calls.ts';
import { readGrpcWebAnswer } from '../harness/grpc-web-reader.ts';
import { logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const TYPE = 'application/grpc-web+proto';
/** What the 404 page says of itself, beside the upstream's own header. */
const PAGE_HEADERS = { 'content-type': 'text/html', etag: '"page-1"', 'last-modified': 'Mon, 07 Dec 2026 10:00:00 GMT', 'accept-ranges': 'bytes', 'x-upstream': 'kept' };
const PAGE = `<html>${'x'.repeat(4_000)}</html>`;

describe("grpcWeb: an upstream's 404 page in place of gRPC", () => {
  let h2: Http2Server;
  let h1: Server;
  let gateway: GatewayProcess;
  /** The RST_STREAM code each HTTP/2 stream of a never-ending page closed with (0 for none), in order. */
  const h2Closes: number[] = [];
  /** The same for the streams of whole pages. */
  const wholeCloses: number[] = [];
  let h2Sessions = 0;
  /** HTTP/1.1 connections opened to the page server. */
  let h1Connections = 0;

  beforeAll(async () => {
    // Sends the head and part of the page, and never ends it: only a cancel closes the stream. The
    // method Whole gets the whole page, its END_STREAM in a frame of its own after the page (node's
    // way), and WholeSoon gets it 20 ms after the page: a cancel at the head always comes first then.
    h2 = createHttp2Server((request, response) => {
      // A page that ends with trailers of its own, a `grpc-status` among them: dropped with its body.
      if (request.url.endsWith('/Trailers')) {
        response.writeHead(404, PAGE_HEADERS);
        response.addTrailers({ 'grpc-status': '0', 'x-page-trailer': 'dropped' });
        return void response.end(PAGE);
      }
      const whole = request.url.includes('/Whole');
      request.stream.once('close', () => (whole ? wholeCloses : h2Closes).push(request.stream.rstCode ?? 0));
      response.writeHead(404, PAGE_HEADERS);
      if (request.url.endsWith('/Whole')) response.end(PAGE);
      else if (whole) response.write(PAGE, () => setTimeout(() => response.end(), 20));
      else response.write(PAGE);
    });
    h2.on('session', () => (h2Sessions += 1));
    h1 = createHttpServer((request, response) => {
      request.resume();
      response.writeHead(404, PAGE_HEADERS).end(PAGE);
    });
    h1.on('connection', () => (h1Connections += 1));
    await Promise.all([new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve)), new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve))]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: true
middlewares:
  grpc-web: { grpcWeb: {} }
services:
  h2-pages: { instances: [{ host: 127.0.0.1, port: ${(h2.address() as AddressInfo).port}, protocol: grpc }], healthCheck: false }
  h1-pages: { instances: ["127.0.0.1:${(h1.address() as AddressInfo).port}"], healthCheck: false }
routes:
  - { headers: { x-target: h2-pages }, service: h2-pages, middlewares: [grpc-web] }
  - { headers: { x-target: h1-pages }, service: h1-pages, middlewares: [grpc-web] }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    h1?.closeAllConnections();
    await Promise.all([new Promise((resolve) => h2?.close(resolve)), new Promise((resolve) => h1?.close(resolve))]);
  });

  const expectReplaced = (answer: Awaited<ReturnType<typeof http1Call>>) => {
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe(TYPE);
    expect(answer.body.length).toBe(0);
    expect(readGrpcWebAnswer(TYPE, answer.headers, answer.body)).toEqual({ status: 12, message: 'the upstream answered HTTP 404 (text/html), not gRPC' });
    expect(answer.headers['x-upstream']).toBe('kept');
    for (const name of ['etag', 'last-modified', 'accept-ranges', 'content-encoding']) expect(answer.headers[name], name).toBeUndefined();
  };

  it('over HTTP/2, cancels the stream of the page it dropped', async () => {
    expectReplaced(await http1Call(gateway.port, 'h2-pages', '/helloworld.Greeter/SayHello', TYPE, 'page'));
    await waitFor(() => h2Closes.length === 1 || undefined, { timeoutMs: 5_000, message: "the page's stream to close" });
    expect(h2Closes).toEqual([constants.NGHTTP2_CANCEL]);
  });

  it('over HTTP/2, reads a whole page it dropped to its end: no stream reset, one session', async () => {
    const calls = 50;
    for (let call = 0; call < calls; call += 1) expectReplaced(await http1Call(gateway.port, 'h2-pages', call % 2 === 0 ? 'Whole' : 'WholeSoon', TYPE, 'page'));
    await waitFor(() => wholeCloses.length === calls || undefined, { timeoutMs: 5_000, message: "the pages' streams to close" });
    expect(wholeCloses).toEqual(Array.from({ length: calls }, () => 0));
    expect(h2Sessions).toBe(1);
  });

  it("over HTTP/2, drops the trailers of the page it dropped: the call is logged with the status the client got, not the page's", async () => {
    const answer = await http1Call(gateway.port, 'h2-pages', 'Trailers', TYPE, 'page');
    expectReplaced(answer);
    expect(answer.trailers['x-page-trailer']).toBeUndefined();
    const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"requestId"') && text.includes('/helloworld.Greeter/Trailers')), {
      timeoutMs: 5_000,
      message: 'the access log line of the call',
    });
    expect(JSON.parse(line)).toMatchObject({ status: 404, grpcStatus: 12 });
  });

  it('over HTTP/1.1, reads the page it dropped, and the connection serves the next call', async () => {
    for (let call = 0; call < 3; call += 1) expectReplaced(await http1Call(gateway.port, 'h1-pages', '/helloworld.Greeter/SayHello', TYPE, 'page'));
    expect(h1Connections).toBe(1);
  });
});
