import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificate } from '../../test/harness/certificates.ts';
import { httpProbe } from './probe-http.ts';
import type { ProbeTarget } from './probe.ts';

const listen = async (server: Server | Http2SecureServer) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

describe('an active TLS check of an instance registered by IP whose certificate carries only its DNS name', () => {
  let dir: string;
  let ca: string;
  let https: Server;
  let h2: Http2SecureServer;
  const ports = { https: 0, h2: 0 };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-probe-tls-'));
    const certificate = await makeCertificate(dir, 'backend', { key: 'ec', names: ['backend.test'] });
    ca = readFileSync(certificate.certFile, 'utf8');
    const credentials = { cert: readFileSync(certificate.certFile), key: readFileSync(certificate.keyFile) };
    https = createHttpsServer(credentials, (_request, response) => response.end('ok'));
    ports.https = await listen(https);
    h2 = createSecureServer(credentials, (_request, response) => response.end('ok'));
    ports.h2 = await listen(h2);
  });
  afterAll(async () => {
    https.closeAllConnections();
    await new Promise((resolve) => https.close(resolve));
    await new Promise((resolve) => h2.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const target = (service: string, protocol: 'https' | 'h2'): ProbeTarget => ({ service, address: `127.0.0.1:${ports[protocol]}`, host: '127.0.0.1', port: ports[protocol], protocol });
  const probeOnce = (probe: ReturnType<typeof httpProbe>, probeTarget: ProbeTarget) => probe(probeTarget, AbortSignal.timeout(5_000));
  function capture() {
    const warnings: { msg: string; service?: string; code?: string }[] = [];
    return { warnings, log: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as { msg: string }) }) };
  }

  it('fails, and says once per service that tls.serverName must be set, as the data plane does', async () => {
    const { warnings, log } = capture();
    const probe = httpProbe({ tls: { ca }, tlsHintLog: log });
    for (const [service, protocol] of [['probe-hint-billing', 'https'], ['probe-hint-billing', 'h2'], ['probe-hint-streams', 'h2']] as const) {
      expect(await probeOnce(probe, target(service, protocol))).toEqual({ healthy: false, detail: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    }
    expect(warnings.map(({ service, code }) => [service, code])).toEqual([
      ['probe-hint-billing', 'ERR_TLS_CERT_ALTNAME_INVALID'],
      ['probe-hint-streams', 'ERR_TLS_CERT_ALTNAME_INVALID'],
    ]);
    expect(warnings[0]!.msg).toContain('set services.probe-hint-billing.tls.serverName');
  });

  it('passes with tls.serverName, and says nothing for other failures or without a log to say it on', async () => {
    const { warnings, log } = capture();
    expect(await probeOnce(httpProbe({ tls: { ca, serverName: 'backend.test' }, tlsHintLog: log }), target('probe-hint-named', 'https'))).toEqual({ healthy: true, detail: 'status 200' });
    const untrusted = await probeOnce(httpProbe({ tlsHintLog: log }), target('probe-hint-untrusted', 'https'));
    expect(untrusted.healthy).toBe(false);
    expect(untrusted.detail).not.toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect((await probeOnce(httpProbe({ tls: { ca } }), target('probe-hint-agent', 'https'))).detail).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(warnings).toEqual([]);
  });
});
