import { readFile } from 'node:fs/promises';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { rawMethod } from '../harness/grpc.ts';
import { acceptsConnections, createTestCa, logOf, makeTempDir, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const SECURE_SERVICE = {
  Echo: rawMethod('/secure.Echo/Echo', false, false),
  Stream: rawMethod('/secure.Echo/Stream', false, true),
  Chat: rawMethod('/secure.Echo/Chat', true, true),
};
const HEALTH_SERVICE = { Check: rawMethod('/grpc.health.v1.Health/Check', false, false) };
type SecureClient = grpc.Client & Record<keyof typeof SECURE_SERVICE, (...args: unknown[]) => unknown>;

describe('gRPC over TLS end to end: grpc-js through an https entry point (ALPN h2) to a grpcs instance checked with grpc.health.v1 over TLS', () => {
  let server: grpc.Server;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let client: SecureClient;
  let healthChecks = 0;

  beforeAll(async () => {
    const dir = await makeTempDir('sb-grpc-tls-');
    const ca = await createTestCa(dir);
    const [gatewayCertificate, backendCertificate] = await Promise.all([ca.issue('gateway', 'gw.test'), ca.issue('backend', 'backend.test')]);
    server = new grpc.Server();
    server.addService(SECURE_SERVICE, {
      Echo(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
        const text = call.request.toString();
        if (text === 'fail') return callback({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        callback(null, Buffer.from(`secure:${text}:${String(call.metadata.get('x-tag')[0] ?? '')}`));
      },
      Stream(call: grpc.ServerWritableStream<Buffer, Buffer>) {
        for (let index = 0; index < 5; index += 1) call.write(Buffer.from(`part-${index}`));
        call.end();
      },
      Chat(call: grpc.ServerDuplexStream<Buffer, Buffer>) {
        call.on('data', (message: Buffer) => call.write(Buffer.from(message.toString().toUpperCase())));
        call.on('end', () => call.end());
      },
    });
    server.addService(HEALTH_SERVICE, {
      Check(_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
        healthChecks += 1;
        // HealthCheckResponse { status = SERVING (1) }.
        callback(null, Buffer.from([0x08, 0x01]));
      },
    });
    const [backendCert, backendKey] = await Promise.all([readFile(backendCertificate.certFile), readFile(backendCertificate.keyFile)]);
    const backendPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{ cert_chain: backendCert, private_key: backendKey }]), (error, port) => (error ? reject(error) : resolve(port))),
    );
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
workers: 1
entryPoints:
  websecure:
    listen: 127.0.0.1:{{port:tls}}
    protocol: https
    tls: { certificates: [{ certFile: ${gatewayCertificate.certFile}, keyFile: ${gatewayCertificate.keyFile} }] }
  web: { listen: "127.0.0.1:{{port}}" }
services:
  secure:
    instances: [{ host: 127.0.0.1, port: ${backendPort}, protocol: grpcs }]
    tls: { caFile: ${ca.caFile}, serverName: backend.test }
    healthCheck: { interval: 200ms, healthyThreshold: 1 }
routes:
  - { grpcService: secure.Echo, service: secure }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const tlsPort = gateway.ports.tls!;
    await waitFor(() => acceptsConnections(tlsPort), { timeoutMs: 10_000, message: 'the https entry point to listen' });
    const Client = grpc.makeGenericClientConstructor(SECURE_SERVICE, 'secure.Echo');
    client = new Client(`127.0.0.1:${tlsPort}`, grpc.credentials.createSsl(await readFile(ca.caFile)), { 'grpc.ssl_target_name_override': 'gw.test' }) as never;
  });

  afterAll(async () => {
    client?.close();
    await gateway?.process.stop();
    server?.forceShutdown();
  });

  it('the instance passes its grpc.health.v1 checks over TLS (the CA and serverName of the service)', async () => {
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'secure')?.instances[0]?.health.reason === 'check-passing' && healthChecks > 0, {
      timeoutMs: 10_000,
      message: 'the grpcs instance healthy by its checks',
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await admin.services())}\n${await logOf(gateway.process)}`);
    });
  });

  it('unary calls with metadata, an application error, a server stream and a bidi conversation go through as over cleartext', async () => {
    const secure = async () => (await admin.services()).find((service) => service.name === 'secure')!.instances[0]!;
    const before = await secure();
    const unary = (request: string) =>
      new Promise<{ code: number; details: string; value?: string }>((resolve) => {
        const metadata = new grpc.Metadata();
        metadata.set('x-tag', 'tagged');
        (client.Echo as (...args: unknown[]) => grpc.ClientUnaryCall)(Buffer.from(request), metadata, { deadline: Date.now() + 10_000 }, (error: grpc.ServiceError | null, answer?: Buffer) =>
          resolve(error ? { code: error.code, details: error.details } : { code: 0, details: '', value: answer!.toString() }),
        );
      });
    expect(await unary('hello')).toEqual({ code: 0, details: '', value: 'secure:hello:tagged' });
    expect(await unary('fail')).toEqual({ code: grpc.status.NOT_FOUND, details: 'no such thing' });

    const parts = await new Promise<string[]>((resolve, reject) => {
      const received: string[] = [];
      const call = (client.Stream as (request: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.from('go'));
      call.on('data', (message: Buffer) => received.push(message.toString()));
      call.on('error', reject);
      call.on('end', () => resolve(received));
    });
    expect(parts).toEqual(['part-0', 'part-1', 'part-2', 'part-3', 'part-4']);

    const answers = await new Promise<string[]>((resolve, reject) => {
      const received: string[] = [];
      const words = ['ping', 'pong'];
      const call = (client.Chat as () => grpc.ClientDuplexStream<Buffer, Buffer>)();
      call.on('data', (message: Buffer) => {
        received.push(message.toString());
        const next = words[received.length];
        if (next) call.write(Buffer.from(next));
        else call.end();
      });
      call.on('error', reject);
      call.on('end', () => resolve(received));
      call.write(Buffer.from(words[0]!));
    });
    expect(answers).toEqual(['PING', 'PONG']);
    // NOT_FOUND is the caller's: the instance has no error, once its four calls are counted (an error counted late would otherwise go unseen).
    await waitFor(async () => (await secure()).requests >= before.requests + 4, { timeoutMs: 10_000, message: 'the four calls in the instance counts' });
    expect(await secure()).toMatchObject({ errors: before.errors });
  });
});
