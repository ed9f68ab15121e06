import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acceptsConnections,
  createTestCa,
  logOf,
  makeTempDir,
  replaceFile,
  startBackend,
  startGateway,
  waitFor,
  type BackendProcess,
  type GatewayProcess,
  type TestCa,
  type TestCertificate,
} from '../harness/index.ts';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

const run = promisify(execFile);

/** What the echo backend saw of a request that went through. */
interface Echoed {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
}

/**
 * One GET over HTTPS to 127.0.0.1:`port` with SNI `servername` (none: undefined), trusting `ca`,
 * with the client certificate `client` if given; resolves with the status and the headers the
 * backend got, rejects when the connection is refused or closed before an answer.
 */
function get(port: number, ca: string, servername: string | undefined, client: TestCertificate | undefined, headers: Record<string, string> = {}): Promise<Echoed> {
  return new Promise((resolve, reject) => {
    void Promise.all([client && readFile(client.certFile), client && readFile(client.keyFile)]).then(([cert, key]) => {
      const request = httpsRequest(
        { host: '127.0.0.1', port, path: '/echo', ca, agent: false, headers, ...(servername ? { servername } : { checkServerIdentity: () => undefined }), ...(cert && key ? { cert, key } : {}) },
        (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.statusCode === 200 ? (JSON.parse(body) as { headers: IncomingHttpHeaders }).headers : {} }));
        },
      );
      request.once('error', reject);
      request.end();
    }, reject);
  });
}

describe('client certificates at https entry points (tls.clientAuth)', () => {
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let caText: string;
  let client: TestCertificate;
  let stranger: TestCertificate;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let strictPort: number;
  let optionalPort: number;
  let auditedPort: number;
  let caCopy: string;

  beforeAll(async () => {
    dir = await makeTempDir('sb-tls-client-auth-');
    [ca, otherCa] = await Promise.all([createTestCa(dir), makeTempDir('sb-tls-other-ca-').then(createTestCa)]);
    caText = await readFile(ca.caFile, 'utf8');
    // The CA bundle the entry points read, a copy the test replaces (the test CA's own file stays as it is).
    caCopy = `${dir}/clients-ca.pem`;
    await replaceFile(caCopy, caText);
    const [gw, other, named] = await Promise.all([ca.issue('gw', 'gw.test'), ca.issue('other', 'other.test'), ca.issue('named', 'named.test')]);
    [client, stranger] = await Promise.all([ca.issue('client', 'client.test', { clientAuth: true }), otherCa.issue('stranger', 'stranger.test', { clientAuth: true })]);
    backend = await startBackend({ name: 'echo-1' });
    const tls = (mode: string) => `{ certificates: [{ certFile: ${gw.certFile}, keyFile: ${gw.keyFile} }, { certFile: ${other.certFile}, keyFile: ${other.keyFile} }], clientAuth: { caFile: ${caCopy}, mode: ${mode} } }`;
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  strict: { listen: "127.0.0.1:{{port:strict}}", protocol: https, tls: ${tls('require')} }
  lenient: { listen: "127.0.0.1:{{port:lenient}}", protocol: https, tls: ${tls('optional')} }
  audited: { listen: "127.0.0.1:{{port:audited}}", protocol: https, tls: ${tls('require')} }
certificates:
  named: { certFile: ${named.certFile}, keyFile: ${named.keyFile} }
services:
  echo: { instances: [127.0.0.1:${backend.port}] }
routes:
  - { path: /, service: echo }
`);
    [strictPort, optionalPort, auditedPort] = [gateway.ports.strict!, gateway.ports.lenient!, gateway.ports.audited!];
    await waitFor(async () => (await acceptsConnections(strictPort)) && (await acceptsConnections(optionalPort)) && acceptsConnections(auditedPort), { timeoutMs: 10_000, message: 'the https entry points to listen' });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  it('require: passes a client certificate the CA signed, whatever certificate SNI picks, and tells the upstream who it is in place of what the client claimed', async () => {
    const forged = { 'x-ssl-client-verify': 'SUCCESS', 'x-ssl-client-s-dn': 'CN=admin' };
    // gw.test is the default certificate, other.test one chosen by SNI, named.test a named certificate.
    for (const servername of ['gw.test', 'other.test', 'named.test', undefined]) {
      const answer = await get(strictPort, caText, servername, client, forged);
      expect([servername, answer.status]).toEqual([servername, 200]);
      expect(answer.headers['x-ssl-client-verify']).toBe('SUCCESS');
      expect(answer.headers['x-ssl-client-s-dn']).toBe('CN=client.test');
    }
    // curl, over HTTP/2.
    const { stdout } = await run(
      'curl',
      ['-sS', '--http2', '--cacert', ca.caFile, '--cert', client.certFile, '--key', client.keyFile, '--resolve', `other.test:${strictPort}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://other.test:${strictPort}/echo`],
      { timeout: 10_000 },
    );
    expect(stdout).toBe('2 200');
  });

  it('require: refuses the handshake of a client without a certificate, and of one another CA signed, before any request', async () => {
    await expect(get(strictPort, caText, 'gw.test', undefined)).rejects.toThrow();
    await expect(get(strictPort, caText, 'other.test', stranger)).rejects.toThrow();
    await expect(get(strictPort, caText, undefined, stranger)).rejects.toThrow();
    const curl = run('curl', ['-sS', '--cacert', ca.caFile, '--resolve', `gw.test:${strictPort}:127.0.0.1`, `https://gw.test:${strictPort}/echo`], { timeout: 10_000 });
    await expect(curl).rejects.toMatchObject({ code: expect.any(Number) });
  });

  it('counts and warns of refused client certificates and of plain HTTP sent to the TLS port, by entry point and reason, warning once per reason', async () => {
    const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const refused = async (reason: string) => sampleValue(await admin.metrics(), 'switchboard_tls_handshake_failures_total', { entry_point: 'strict', reason }) ?? 0;
    const [certificatesBefore, plainBefore, lenientBefore] = [await refused('client-certificate'), await refused('plain-http'), sampleValue(await admin.metrics(), 'switchboard_tls_handshake_failures_total', { entry_point: 'lenient', reason: 'client-certificate' }) ?? 0];
    // node:tls without a certificate and with one another CA signed, then openssl s_client without one.
    await expect(get(strictPort, caText, 'gw.test', undefined)).rejects.toThrow();
    await expect(get(strictPort, caText, 'gw.test', stranger)).rejects.toThrow();
    await run('openssl', ['s_client', '-connect', `127.0.0.1:${strictPort}`, '-servername', 'gw.test', '-CAfile', ca.caFile], { timeout: 10_000 }).catch(() => undefined);
    const plain = await new Promise<string>((resolve, reject) => {
      const socket = netConnect(strictPort, '127.0.0.1', () => socket.end('GET /echo HTTP/1.1\r\nHost: gw.test\r\n\r\n'));
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.once('close', () => resolve(answer));
      socket.once('error', reject);
    });
    expect(plain).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*plain-http-on-tls-port/);
    await waitFor(async () => (await refused('client-certificate')) === certificatesBefore + 3 && (await refused('plain-http')) === plainBefore + 1, { timeoutMs: 5_000, message: 'three refused certificates and one plain HTTP connection counted' });
    // The optional entry point refuses no certificate: it passes the verdict on.
    expect(await get(optionalPort, caText, 'gw.test', stranger)).toMatchObject({ status: 200 });
    expect(sampleValue(await admin.metrics(), 'switchboard_tls_handshake_failures_total', { entry_point: 'lenient', reason: 'client-certificate' }) ?? 0).toBe(lenientBefore);
    const warnings = (await logOf(gateway.process)).split('\n').filter((line) => line.includes('"level":40') && line.includes('"entryPoint":"strict"'));
    const byReason = (reason: string) => warnings.filter((line) => line.includes(`"reason":"${reason}"`));
    // Once per reason and entry point per minute, however many were refused (this file's earlier tests refused some too).
    expect([byReason('client-certificate').length, byReason('plain-http').length]).toEqual([1, 1]);
    expect(byReason('plain-http')[0]).toContain('plain HTTP sent to the TLS port');
  });

  it('warns of a certificate another CA signed with the client address and the OpenSSL code, though node:tls has closed that connection by then', async () => {
    // The audited entry point's first refusal is this one: its warning is not taken by an earlier test's.
    await expect(get(auditedPort, caText, 'gw.test', stranger)).rejects.toThrow();
    const warnings = async () => (await logOf(gateway.process)).split('\n').filter((line) => line.includes('"level":40') && line.includes('"entryPoint":"audited"') && line.includes('"reason":"client-certificate"'));
    await waitFor(async () => (await warnings()).length > 0, { timeoutMs: 5_000, message: 'the refused certificate to be warned of' });
    expect(JSON.parse((await warnings())[0]!)).toMatchObject({ reason: 'client-certificate', code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', remoteAddress: '127.0.0.1' });
  });

  it('optional: passes every client and tells the upstream what the check found (SUCCESS, NONE, FAILED:<reason>)', async () => {
    const verified = await get(optionalPort, caText, 'other.test', client);
    expect([verified.status, verified.headers['x-ssl-client-verify'], verified.headers['x-ssl-client-s-dn']]).toEqual([200, 'SUCCESS', 'CN=client.test']);
    const none = await get(optionalPort, caText, 'gw.test', undefined, { 'x-ssl-client-verify': 'SUCCESS', 'x-ssl-client-s-dn': 'CN=admin' });
    expect([none.status, none.headers['x-ssl-client-verify'], none.headers['x-ssl-client-s-dn']]).toEqual([200, 'NONE', undefined]);
    const failed = await get(optionalPort, caText, 'named.test', stranger);
    expect(failed.status).toBe(200);
    expect(failed.headers['x-ssl-client-verify']).toMatch(/^FAILED:[A-Z_]+$/);
    expect(failed.headers['x-ssl-client-s-dn']).toBeUndefined();

    // HTTP/2: the headers come from the session's TLS socket.
    const session = http2Connect(`https://127.0.0.1:${optionalPort}`, { ca: caText, servername: 'gw.test', cert: await readFile(client.certFile), key: await readFile(client.keyFile) });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':path': '/echo' });
        let text = '';
        stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
        stream.once('end', () => resolve(text));
        stream.once('error', reject);
      });
      expect((JSON.parse(body) as { headers: IncomingHttpHeaders }).headers['x-ssl-client-verify']).toBe('SUCCESS');
    } finally {
      session.close();
    }
  });

  it('strips the client-certificate headers a client sends to an entry point without clientAuth', async () => {
    const response = await fetch(`${gateway.url}/echo`, { headers: { 'x-ssl-client-verify': 'SUCCESS', 'x-ssl-client-s-dn': 'CN=admin' } });
    const { headers } = (await response.json()) as { headers: IncomingHttpHeaders };
    expect([headers['x-ssl-client-verify'], headers['x-ssl-client-s-dn']]).toEqual([undefined, undefined]);
  });

  it('reloads a replaced CA bundle for new handshakes, and keeps the running one when the new file is not a CA bundle', async () => {
    await replaceFile(caCopy, await readFile(otherCa.caFile));
    await waitFor(async () => (await get(strictPort, caText, 'other.test', stranger).catch(() => undefined))?.status === 200, { timeoutMs: 10_000, message: 'the other CA to be trusted' });
    await expect(get(strictPort, caText, 'other.test', client)).rejects.toThrow();

    await replaceFile(caCopy, 'not a certificate\n');
    await waitFor(async () => (await logOf(gateway.process)).includes(`"path":"${caCopy}","reason":"${caCopy}: not a usable CA bundle`), {
      timeoutMs: 10_000,
      message: 'the gateway to refuse the broken CA bundle, naming it',
    });
    expect((await get(strictPort, caText, undefined, stranger)).status).toBe(200);
    await expect(get(strictPort, caText, 'gw.test', client)).rejects.toThrow();
    await replaceFile(caCopy, caText);
    await waitFor(async () => (await get(strictPort, caText, 'gw.test', client).catch(() => undefined))?.status === 200, { timeoutMs: 10_000, message: 'the first CA to be trusted again' });
  });

  it('refuses to start when the CA bundle is missing, naming the file and the key path', async () => {
    const failing = startGateway(`
admin: false
entryPoints:
  websecure:
    listen: "127.0.0.1:{{port}}"
    protocol: https
    tls: { certificates: [{ certFile: ${client.certFile}, keyFile: ${client.keyFile} }], clientAuth: { caFile: ${dir}/missing-ca.pem } }
`);
    await expect(failing).rejects.toThrow(`entryPoints.websecure.tls.clientAuth.caFile (line 7): ${dir}/missing-ca.pem: cannot read the file (ENOENT)`);
  });
});
