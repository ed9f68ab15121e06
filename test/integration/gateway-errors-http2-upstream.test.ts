// An `errors` page in place of an HTTP/2 instance's error answer: the client has the page on the
// upstream's head, and the upstream's body is dropped as a replaced answer's is (dropBody): a page
// that ends soon is read to its end, its stream not reset, and one that never ends is cancelled
// (RST_STREAM CANCEL) within a second, not read on until the route's idle-body timeout, its stream
// and the request's slots held meanwhile. The attempt ends with that body: the gateway's cancel
// blames nobody, and an upstream that resets its body midway is blamed as for a forwarded body.
import { writeFile } from 'node:fs/promises';
import { constants, createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, makeTempDir, removeTempDir, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const PAGE_5XX = '<h1>Something broke on our side</h1>';
/** Far longer than the waits below: a body read on until it passes is not dropped. */
const IDLE_BODY_S = 30;

describe('errors: a page in place of an HTTP/2 instance’s error answer', () => {
  let upstream: Http2Server;
  let gateway: GatewayProcess;
  let dir: string;
  /** The RST_STREAM code each upstream stream closed with (0 for none), by path. */
  const closes = new Map<string, number>();

  beforeAll(async () => {
    // /open sends the head and part of its body, and never ends it: only a cancel closes its stream.
    // /reset does the same, then resets its stream as soon as that part is sent: well inside the
    // second for which the gateway reads a dropped body, whatever the client does meanwhile.
    upstream = createHttp2Server((request, response) => {
      request.stream.once('close', () => closes.set(request.url, request.stream.rstCode ?? 0));
      response.writeHead(500, { 'content-type': 'text/plain' });
      if (request.url === '/reset') response.write('x'.repeat(4_000), () => setImmediate(() => request.stream.close(constants.NGHTTP2_INTERNAL_ERROR)));
      else if (request.url === '/open') response.write('x'.repeat(4_000));
      else response.end('upstream error body');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    dir = await makeTempDir('sb-errors-h2-');
    await writeFile(join(dir, '5xx.html'), PAGE_5XX);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: true
services:
  h2: { instances: [{ host: 127.0.0.1, port: ${(upstream.address() as AddressInfo).port}, protocol: h2c }], healthCheck: false, outlierDetection: false, retries: false }
middlewares:
  pages: { errors: { pages: { "5xx": ${join(dir, '5xx.html')} } } }
routes:
  - { path: /, service: h2, middlewares: [pages], timeouts: { idleBody: ${IDLE_BODY_S}s } }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await new Promise((resolve) => upstream?.close(resolve));
    if (dir) await removeTempDir(dir);
  });

  const accessLine = (path: string) =>
    waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"requestId"') && text.includes(`"path":"${path}"`)), {
      timeoutMs: 5_000,
      message: `the access log line of ${path}`,
    }).then((line) => JSON.parse(line) as Record<string, unknown>);

  it('cancels the stream of an error body that never ends within a second, the request logged as answered', async () => {
    expect(await sendRequest(gateway.port, '/open')).toMatchObject({ status: 500, body: PAGE_5XX });
    // Within the wait, far shorter than the idle-body timeout.
    expect(await waitFor(() => closes.get('/open'), { timeoutMs: 5_000, message: "the never-ending body's stream to close" })).toBe(constants.NGHTTP2_CANCEL);
    const line = await accessLine('/open');
    expect(line).toMatchObject({ status: 500, bytes: PAGE_5XX.length });
    expect(line.errorClass).toBeUndefined();
  });

  it('reads an error body that ends to its end: its stream is not reset', async () => {
    expect(await sendRequest(gateway.port, '/whole')).toMatchObject({ status: 500, body: PAGE_5XX });
    await waitFor(() => closes.has('/whole'), { timeoutMs: 5_000, message: "the whole body's stream to close" });
    expect(closes.get('/whole')).toBe(0);
  });

  it('blames the upstream that resets its error body midway, as it would for a forwarded body: the request logged reset-after-headers', async () => {
    // The client has the page from the head; the body is still being read (and dropped) when the upstream resets it.
    expect(await sendRequest(gateway.port, '/reset')).toMatchObject({ status: 500, body: PAGE_5XX });
    expect(await waitFor(() => closes.get('/reset'), { timeoutMs: 5_000, message: "the reset body's stream to close" })).toBe(constants.NGHTTP2_INTERNAL_ERROR);
    const line = await accessLine('/reset');
    expect(line).toMatchObject({ status: 500, bytes: PAGE_5XX.length, errorClass: 'reset-after-headers' });
  });
});
