import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startGrpcioBackend } from '../harness/grpc.ts';
import { callBody, frame, http1Call, http2Call, message, readAnswer } from '../harness/grpc-web-calls.ts';
import { startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

const TEXT = 'application/grpc-web-text';

/** A name whose call is `decoded` bytes once decoded (a 5-byte frame head, 2 bytes of field header): its -text body is 4/3 as long. */
function nameOf(decoded: number): string {
  return 'x'.repeat(decoded - 7);
}

describe('grpcWeb: the size limits of a -text body, base64 or decoded, through the real gateway', () => {
  let backend: BackendProcess;
  let shadow: Server;
  /** The bodies the mirror's instance received. */
  const mirrored: Buffer[] = [];
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backend = await startGrpcioBackend();
    shadow = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        mirrored.push(Buffer.concat(chunks));
        response.end();
      });
    });
    await new Promise<void>((resolve) => shadow.listen(0, '127.0.0.1', resolve));
    gateway = await startGateway(`
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
middlewares:
  grpc-web: { grpcWeb: {} }
  small: { bodyLimit: { maxSize: 100 } }
services:
  greeter:
    instances: [{ id: grpcio, host: 127.0.0.1, port: ${backend.port}, protocol: grpc }]
  shadow:
    instances: [{ id: shadow, host: 127.0.0.1, port: ${(shadow.address() as AddressInfo).port}, protocol: http }]
routes:
  - { headers: { x-target: limited }, service: greeter, middlewares: [grpc-web, small] }
  - { name: mirrored, headers: { x-target: mirrored }, service: greeter, middlewares: [grpc-web], mirror: { service: shadow, maxBodySize: 100 } }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
    shadow?.closeAllConnections();
    await new Promise((resolve) => shadow?.close(resolve));
  });

  // 87 bytes decoded, 116 characters of base64: over a maxSize of 100 as the client sent it.
  const OVER_AS_SENT = nameOf(87);

  it.each([
    ['with a Content-Length', undefined],
    ['chunked', [10, 30, 50]],
  ] as const)("bodyLimit holds a -text call sent %s to the base64 the client sent: over maxSize, it is refused, whatever it decodes to", async (_how, pieces) => {
    expect(callBody(TEXT, OVER_AS_SENT).length).toBe(116);
    const answer = await http1Call(gateway.port, 'limited', 'SayHello', TEXT, OVER_AS_SENT, pieces);
    expect(readAnswer(TEXT, answer)).toMatchObject({ messages: [], trailers: { 'grpc-status': '8' } });
  });

  it('so does it over HTTP/2, where the call has no Content-Length', async () => {
    const answer = await http2Call(gateway.port, 'limited', 'SayHello', TEXT, OVER_AS_SENT);
    expect(readAnswer(TEXT, answer)).toMatchObject({ messages: [], trailers: { 'grpc-status': '8' } });
  });

  it('a -text call within maxSize as sent goes through, chunked', async () => {
    const name = nameOf(75);
    expect(callBody(TEXT, name).length).toBe(100);
    const answer = await http1Call(gateway.port, 'limited', 'SayHello', TEXT, name, [7, 40]);
    expect(readAnswer(TEXT, answer)).toMatchObject({ messages: [`Hello ${name}`], trailers: { 'grpc-status': '0' } });
  });

  it.each([
    ['with a Content-Length', undefined],
    ['chunked', [10, 30, 50]],
  ] as const)("a mirror's maxBodySize holds the copy it sends, decoded, for a -text call sent %s: 87 bytes are copied, 107 are not", async (_how, pieces) => {
    const dropped = async () => sampleValue(await admin.metrics(), 'switchboard_mirror_dropped_total', { route: 'mirrored', reason: 'body-too-large' }) ?? 0;
    const answered = async () => sampleValue(await admin.metrics(), 'switchboard_mirror_requests_total', { route: 'mirrored', result: 'answered' }) ?? 0;
    const before = { dropped: await dropped(), answered: await answered(), mirrored: mirrored.length };
    const copied = await http1Call(gateway.port, 'mirrored', 'SayHello', TEXT, OVER_AS_SENT, pieces);
    expect(readAnswer(TEXT, copied).trailers['grpc-status']).toBe('0');
    await waitFor(async () => (await answered()) === before.answered + 1, { timeoutMs: 5_000, message: 'the copy answered' });
    expect(mirrored.slice(before.mirrored)).toEqual([frame(message(OVER_AS_SENT))]);
    const tooLarge = await http1Call(gateway.port, 'mirrored', 'SayHello', TEXT, nameOf(107), pieces);
    expect(readAnswer(TEXT, tooLarge).trailers['grpc-status']).toBe('0');
    await waitFor(async () => (await dropped()) === before.dropped + 1, { timeoutMs: 5_000, message: 'the copy dropped' });
    expect(await answered()).toBe(before.answered + 1);
  });
});
