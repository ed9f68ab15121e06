import { createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, grpcFrame, grpcProbe } from './probe-grpc.ts';

describe('the grpc.health.v1 messages, encoded by hand', () => {
  it('encodes HealthCheckRequest.service as field 1 and the empty name as an empty message', () => {
    expect(encodeHealthCheckRequest('')).toEqual(Buffer.alloc(0));
    expect(encodeHealthCheckRequest('a.B')).toEqual(Buffer.from([0x0a, 3, 0x61, 0x2e, 0x42]));
    expect(encodeHealthCheckRequest('x'.repeat(200)).subarray(0, 3)).toEqual(Buffer.from([0x0a, 0xc8, 0x01]));
  });

  it('reads HealthCheckResponse.status, UNKNOWN when absent', () => {
    expect(decodeHealthCheckResponse(grpcFrame(Buffer.from([0x08, 1])))).toBe(1);
    expect(decodeHealthCheckResponse(grpcFrame(Buffer.from([0x08, 2])))).toBe(2);
    expect(decodeHealthCheckResponse(grpcFrame(Buffer.alloc(0)))).toBe(0);
    expect(decodeHealthCheckResponse(Buffer.alloc(2))).toBe(0);
  });
});

describe('grpcProbe against a real HTTP/2 server speaking the health protocol', () => {
  let server: Http2Server | undefined;
  afterEach(() => server?.close());

  async function serve(answer: { status?: number; grpcStatus: string; metadata?: number }): Promise<{ port: number; seen: Buffer[] }> {
    const seen: Buffer[] = [];
    server = createServer();
    server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        seen.push(Buffer.concat(chunks));
        expect(headers[':path']).toBe('/grpc.health.v1.Health/Check');
        const metadata = Object.fromEntries(Array.from({ length: answer.metadata ?? 0 }, (_, index) => [`x-meta-${index}`, 'v']));
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...metadata }, { waitForTrailers: true });
        // A client that reset the stream (too many fields for it) must fail the check, not crash the test process.
        stream.on('error', () => undefined);
        stream.on('wantTrailers', () => {
          if (!stream.destroyed) stream.sendTrailers({ 'grpc-status': answer.grpcStatus });
        });
        stream.end(answer.status === undefined ? undefined : grpcFrame(Buffer.from([0x08, answer.status])));
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as AddressInfo).port, seen };
  }

  const check = (port: number, service = '') =>
    grpcProbe({ service })({ address: `127.0.0.1:${port}`, host: '127.0.0.1', port, protocol: 'grpc' }, AbortSignal.timeout(5_000));

  it('passes on SERVING, asking about the configured service', async () => {
    const { port, seen } = await serve({ status: 1, grpcStatus: '0' });
    expect(await check(port, 'pkg.Svc')).toEqual({ healthy: true, detail: 'SERVING' });
    expect(seen[0]).toEqual(grpcFrame(encodeHealthCheckRequest('pkg.Svc')));
  });

  it('passes an answer with as many metadata entries as proxied traffic accepts (more than node:http2\'s default 128 fields)', async () => {
    const { port } = await serve({ status: 1, grpcStatus: '0', metadata: 300 });
    expect(await check(port)).toEqual({ healthy: true, detail: 'SERVING' });
  });

  it('fails on NOT_SERVING, on a non-OK grpc-status and on a refused connection', async () => {
    const notServing = await serve({ status: 2, grpcStatus: '0' });
    expect(await check(notServing.port)).toEqual({ healthy: false, detail: 'NOT_SERVING' });
    server!.close();
    const unimplemented = await serve({ grpcStatus: '12' });
    expect(await check(unimplemented.port)).toEqual({ healthy: false, detail: 'grpc-status 12' });
    server!.close();
    server = undefined;
    expect((await check(unimplemented.port)).healthy).toBe(false);
  });
});
