import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, makeTempDir, startBackend, startGateway, type BackendProcess, type GatewayProcess, type TestCa, type TestCertificate } from '../harness/index.ts';

const run = promisify(execFile);

/** The cipher a TLS handshake with the gateway on `port` agreed on, or the error that ended it. */
function negotiatedCipher(port: number, options: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      resolve(socket.getCipher().standardName);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('an https entry point with a cipher list, spoken to in plain HTTP', () => {
  let dir: string;
  let ca: TestCa;
  let server: TestCertificate;
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    dir = await makeTempDir('sb-tls-options-');
    ca = await createTestCa(dir);
    server = await ca.issue('server', 'gw.test');
    backend = await startBackend({ name: 'echo-1' });
    gateway = await startGateway(`
admin: false
entryPoints:
  websecure:
    listen: "127.0.0.1:{{port}}"
    protocol: https
    tls:
      certificates: [{ certFile: ${server.certFile}, keyFile: ${server.keyFile} }]
      ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256"
services:
  echo: { instances: [127.0.0.1:${backend.port}] }
routes:
  - { path: /, service: echo }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  it('agrees on TLS 1.2 only on a cipher of the list, by SNI and without it, and refuses a client that offers none of them', async () => {
    const offered = 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256';
    for (const servername of ['gw.test', undefined]) {
      const cipher = await negotiatedCipher(gateway.port, { maxVersion: 'TLSv1.2', ciphers: offered, ...(servername ? { servername } : {}) });
      expect(cipher).toBe('TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
    }
    await expect(negotiatedCipher(gateway.port, { servername: 'gw.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' })).rejects.toThrow(/handshake failure/);
  });

  it('answers plain HTTP on the TLS port with 400 and connection: close, as nginx does, to curl and to Node', async () => {
    const { stdout } = await run('curl', ['-sS', '-i', `http://127.0.0.1:${gateway.port}/x`], { timeout: 10_000 });
    expect(stdout).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(stdout.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(stdout.slice(stdout.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'plain-http-on-tls-port', status: 400, message: 'The plain HTTP request was sent to HTTPS port' });

    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = httpRequest({ host: '127.0.0.1', port: gateway.port, method: 'POST', path: '/x', agent: false }, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.once('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      request.once('error', reject);
      // A body on its way when the answer comes must not turn the answer into a reset.
      request.end('x'.repeat(200_000));
    });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'plain-http-on-tls-port' });

    // TLS on the same port is untouched.
    const { stdout: secure } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', ca.caFile, '--resolve', `gw.test:${gateway.port}:127.0.0.1`, `https://gw.test:${gateway.port}/x`], { timeout: 10_000 });
    expect(secure).toBe('200');
  });
});
