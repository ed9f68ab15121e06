import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acceptsConnections,
  logOf,
  makeCertificate,
  makeTempDir,
  presentedCertificate,
  replaceFile,
  startBackend,
  startGateway,
  waitFor,
  type BackendProcess,
  type GatewayProcess,
  type TestCertificate,
} from '../harness/index.ts';

/**
 * Sends one keep-alive HTTP/1.1 request on an open TLS socket and resolves with the status and body
 * (chunked or with a length); rejects when the connection fails or closes before the whole answer.
 */
function requestOn(socket: TLSSocket, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let received = '';
    // A gateway that drops the keep-alive connection (say, on a certificate reload) may do it with a
    // plain close, which emits no 'error': without this the test would hang instead of failing.
    const onClose = () => reject(new Error(`the connection closed before the whole answer to ${path} (got ${received.length} bytes)`));
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      const head = received.slice(0, headEnd);
      let rest = received.slice(headEnd + 4);
      const length = /\r\ncontent-length: (\d+)/i.exec(head)?.[1];
      if (length !== undefined ? rest.length < Number(length) : !rest.endsWith('\r\n0\r\n\r\n')) return;
      if (length === undefined) rest = rest.replace(/(?:^|\r\n)[0-9a-f]+\r\n/gi, '').replace(/\r\n$/, '');
      socket.off('data', onData);
      socket.off('error', reject);
      socket.off('close', onClose);
      resolve({ status: Number(head.slice(9, 12)), body: rest });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  });
}

/** One GET over TLS to 127.0.0.1:`port` with SNI `servername` (the test certificates are self-signed). */
function httpsGet(port: number, servername: string, path: string): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest({ host: '127.0.0.1', port, path, servername, headers: { host: servername }, rejectUnauthorized: false, agent: false }, (response) => {
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
      // A connection closed mid-body aborts the response with neither 'end' nor (unlisted) 'error'; after 'end' this is a no-op.
      response.once('close', () => reject(new Error(`GET ${path} (${servername}): the connection closed before the whole answer`)));
    });
    request.once('error', reject);
    request.end();
  });
}

describe('an https entry point chooses certificates by SNI and reloads them', () => {
  let dir: string;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let tlsPort: number;
  let a: TestCertificate;
  let b: TestCertificate;

  beforeAll(async () => {
    dir = await makeTempDir('sb-tls-');
    [a, b] = await Promise.all([
      makeCertificate(dir, 'a', { key: 'rsa', names: ['a.test'] }),
      makeCertificate(dir, 'b', { key: 'ec', names: ['b.test', '*.b.test'] }),
      makeCertificate(dir, 'default', { key: 'ec', names: ['default.test'] }),
    ]);
    backend = await startBackend({ name: 'echo-1' });
    // Certificate paths are relative: they resolve against the configuration file's folder.
    const config = await readFile(a.certFile).then(() => `
admin: false
middlewares:
  to-https: { redirectScheme: { scheme: https, port: {{port:tls}}, permanent: true } }
  hsts: { hsts: { maxAge: 1d, includeSubDomains: true } }
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", middlewares: [to-https] }
  websecure:
    listen: 127.0.0.1:{{port:tls}}
    protocol: https
    middlewares: [hsts]
    tls:
      certificates:
        - { certFile: ${a.certFile}, keyFile: ${a.keyFile} }
        - { certFile: ${b.certFile}, keyFile: ${b.keyFile} }
      defaultCertificate: { certFile: ${dir}/default.pem, keyFile: ${dir}/default-key.pem }
services:
  echo: { instances: [127.0.0.1:${backend.port}] }
routes:
  - { path: /api/echo, service: echo, stripPrefix: true }
`);
    gateway = await startGateway(config);
    tlsPort = gateway.ports.tls!;
    await waitFor(() => acceptsConnections(tlsPort), { timeoutMs: 10_000, message: 'the https entry point to listen' });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  it('serves the RSA certificate to a.test, the ECDSA one to b.test and its wildcard, and the default to unknown names and to clients without SNI', async () => {
    const [forA, forB, forWildcard, forUnknown, forNone] = await Promise.all([
      presentedCertificate(tlsPort, 'a.test'),
      presentedCertificate(tlsPort, 'b.test'),
      presentedCertificate(tlsPort, 'x.b.test'),
      presentedCertificate(tlsPort, 'unknown.test'),
      presentedCertificate(tlsPort, undefined),
    ]);
    expect([forA.subject, forA.publicKey.asymmetricKeyType]).toEqual(['CN=a.test', 'rsa']);
    expect([forB.subjectAltName, forB.publicKey.asymmetricKeyType]).toEqual(['DNS:b.test, DNS:*.b.test', 'ec']);
    expect(forWildcard.fingerprint256).toBe(forB.fingerprint256);
    expect(forUnknown.subject).toBe('CN=default.test');
    expect(forNone.subject).toBe('CN=default.test');
  });

  it('redirects every path of the plain entry point to https, and sends HSTS only over TLS (entry point middlewares)', async () => {
    // Routed or not: the entry point's middleware run before routing.
    for (const path of ['/api/echo/x?q=1', '/no/route']) {
      const redirect = await fetch(`${gateway.url}${path}`, { redirect: 'manual' });
      expect(redirect.status).toBe(301);
      // The client's host without its port, then the https port.
      expect(redirect.headers.get('location')).toBe(`https://127.0.0.1:${tlsPort}${path}`);
      expect(redirect.headers.get('strict-transport-security')).toBeNull();
    }
    const secure = await httpsGet(tlsPort, 'a.test', '/api/echo/x');
    expect(secure.status).toBe(200);
    expect(secure.headers['strict-transport-security']).toBe('max-age=86400; includeSubDomains');
  });

  it('serves a replaced certificate to new handshakes while an open keep-alive connection keeps working', async () => {
    const before = await presentedCertificate(tlsPort, 'a.test');
    const socket = tlsConnect({ host: '127.0.0.1', port: tlsPort, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    try {
      expect((await requestOn(socket, '/api/echo/first')).status).toBe(200);
      // The same names with a new key: written as a certificate tool does, to temporary files renamed over the old ones.
      await makeCertificate(dir, 'a', { key: 'rsa', names: ['a.test', 'renewed.a.test'] });
      const after = await waitFor(
        async () => {
          const presented = await presentedCertificate(tlsPort, 'a.test');
          return presented.fingerprint256 !== before.fingerprint256 ? presented : undefined;
        },
        { timeoutMs: 10_000, message: 'new handshakes to get the replaced certificate' },
      );
      expect(after.subjectAltName).toBe('DNS:a.test, DNS:renewed.a.test');
      const second = await requestOn(socket, '/api/echo/second');
      expect(second.status).toBe(200);
      expect(JSON.parse(second.body)).toMatchObject({ url: '/second' });
      expect(socket.getPeerX509Certificate()?.fingerprint256).toBe(before.fingerprint256);
    } finally {
      socket.destroy();
    }
  });

  it('refuses a corrupt certificate and a key that does not match, naming the file, and keeps serving the old certificate', async () => {
    const before = await presentedCertificate(tlsPort, 'b.test');
    const goodCert = await readFile(b.certFile);
    await replaceFile(b.certFile, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    await waitFor(async () => (await logOf(gateway.process)).includes(`"path":"${b.certFile}","reason":"${b.certFile}: not a PEM certificate`), {
      timeoutMs: 10_000,
      message: 'the gateway to refuse the corrupt certificate, naming it',
    });
    expect((await presentedCertificate(tlsPort, 'b.test')).fingerprint256).toBe(before.fingerprint256);

    // A valid certificate whose key is another one's.
    await replaceFile(b.certFile, goodCert);
    const other = await makeCertificate(dir, 'other', { key: 'ec', names: ['other.test'] });
    await replaceFile(b.keyFile, await readFile(other.keyFile));
    await waitFor(async () => (await logOf(gateway.process)).includes(`"path":"${b.keyFile}","reason":"${b.keyFile}: the key does not match the certificate ${b.certFile}"`), {
      timeoutMs: 10_000,
      message: 'the gateway to refuse the mismatched key, naming it',
    });
    expect((await presentedCertificate(tlsPort, 'b.test')).fingerprint256).toBe(before.fingerprint256);
    expect((await presentedCertificate(tlsPort, 'x.b.test')).fingerprint256).toBe(before.fingerprint256);
  });

  it('refuses to start on a certificate that does not parse, as a refused configuration naming the file and the key path', async () => {
    const broken = `${dir}/broken.pem`;
    await replaceFile(broken, 'garbage\n');
    // The https entry point is the one the harness waits on: a plain one started first could
    // answer before the gateway gives up and exits.
    const failing = startGateway(`
admin: false
entryPoints:
  websecure:
    listen: "127.0.0.1:{{port}}"
    protocol: https
    tls: { certificates: [{ certFile: ${broken}, keyFile: ${a.keyFile} }] }
`);
    await expect(failing).rejects.toThrow(`${broken}: not a PEM certificate`);
    await expect(failing).rejects.toThrow('entryPoints.websecure.tls.certificates.0.certFile (line ');
  });
});
