import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { BehaviorSubject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceBalancer } from '../../src/balance/index.ts';
import type { ServiceConf } from '../../src/discovery/load-balance-conf.ts';
import { createTestCa } from '../../test/harness/certificates.ts';
import { sendTestRequest } from '../middleware/middleware-testing.ts';
import { createContext } from '../request-handler.ts';
import { UpstreamTransports, type UpstreamTlsOptions } from '../transports/index.ts';
import { createProxy, type ProxyPolicy } from './proxy.ts';
import { TEST_PROXY_POLICY } from './proxy-testing.ts';
import { UPSTREAM_TLS_WARN_EVERY_MS, warnUpstreamTlsFailure } from './upstream-tls-warning.ts';

const listen = async (server: Server | Http2SecureServer) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

describe('an instance registered by IP whose certificate carries only its DNS name', () => {
  const transports = new UpstreamTransports();
  let dir: string;
  let backend: Server;
  let h2Backend: Http2SecureServer;
  let mutualBackend: Server;
  const ports = { https: 0, h2: 0, mutual: 0 };
  let ca: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-tls-hint-'));
    const testCa = await createTestCa(dir);
    const issued = await testCa.issue('backend', 'backend.test');
    ca = readFileSync(testCa.caFile, 'utf8');
    const credentials = { cert: readFileSync(issued.certFile), key: readFileSync(issued.keyFile) };
    backend = createHttpsServer(credentials, (_request, response) => response.end('backend'));
    ports.https = await listen(backend);
    h2Backend = createSecureServer(credentials, (_request, response) => response.end('backend'));
    ports.h2 = await listen(h2Backend);
    mutualBackend = createHttpsServer({ ...credentials, ca, requestCert: true, rejectUnauthorized: true }, (_request, response) => response.end('backend'));
    ports.mutual = await listen(mutualBackend);
  });
  afterAll(async () => {
    await transports.close();
    backend.closeAllConnections();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => h2Backend.close(resolve));
    mutualBackend.closeAllConnections();
    await new Promise((resolve) => mutualBackend.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  /** A gateway sending every request to `service`, whose one instance is 127.0.0.1 speaking `protocol`, with `tls`; collects warnings. */
  async function gatewayFor(service: string, tls: UpstreamTlsOptions, protocol: 'https' | 'h2' = 'https', port = ports[protocol]) {
    const warnings: { msg: string; service?: string; upstream?: string; code?: string; reason?: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as { msg: string }) });
    const conf$ = new BehaviorSubject<ServiceConf>({ service, instances: [{ id: 'ip', service, host: '127.0.0.1', port, weight: 1, protocol, metadata: {} }], sources: new Map(), version: 1 });
    const balancer = createServiceBalancer({ service, conf$ }, { balancer: { algorithm: 'round-robin' }, health: { outlier: false, panicThresholdPercent: 0 } });
    const policy: ProxyPolicy = { ...TEST_PROXY_POLICY, connection: { connectTimeoutMs: 2_000, tls, key: `${service}|${tls.serverName ?? ''}` } };
    const proxy = createProxy({ pickerFor: () => balancer.picker, policyFor: () => policy, transports });
    const server = createServer((request, response) => {
      const context = createContext(request, response, log);
      context.service = service;
      void proxy(context);
    });
    const gatewayPort = await listen(server);
    return {
      warnings,
      get: () => sendTestRequest(gatewayPort, '/', { headers: { host: 'backend.test' } }),
      close: async () => {
        balancer.close();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  it('fails the handshake without tls.serverName, whatever the Host, and logs once per service that serverName must be set', async () => {
    const noName: UpstreamTlsOptions = { ca, cert: undefined, key: undefined, serverName: undefined, verify: true };
    for (const [service, protocol] of [['billing', 'https'], ['orders', 'https'], ['streams', 'h2']] as const) {
      const gateway = await gatewayFor(service, noName, protocol);
      try {
        for (let request = 0; request < 3; request += 1) expect((await gateway.get()).status).toBe(502);
        const hints = gateway.warnings.filter(({ msg }) => msg.includes('tls.serverName'));
        expect(hints).toHaveLength(1);
        expect(hints[0]!.service).toBe(service);
        expect(hints[0]!.msg).toContain(`services.${service}.tls.serverName`);
        // The failure itself, with its reason, once for the three requests.
        expect(gateway.warnings.filter(({ msg }) => msg.includes('TLS session'))).toEqual([expect.objectContaining({ service, code: 'ERR_TLS_CERT_ALTNAME_INVALID', reason: expect.stringContaining('127.0.0.1') })]);
      } finally {
        await gateway.close();
      }
    }
  });

  it('reaches the instance once tls.serverName names the certificate, and logs nothing', async () => {
    const gateway = await gatewayFor('named', { ca, cert: undefined, key: undefined, serverName: 'backend.test', verify: true });
    try {
      const answer = await gateway.get();
      expect(answer.status).toBe(200);
      expect(answer.body.toString()).toBe('backend');
      expect(gateway.warnings).toEqual([]);
    } finally {
      await gateway.close();
    }
  });

  it('warns with the TLS reason once per instance per period when an instance wants a client certificate the gateway does not send', async () => {
    const gateway = await gatewayFor('wants-certificate', { ca, cert: undefined, key: undefined, serverName: 'backend.test', verify: true }, 'https', ports.mutual);
    try {
      for (let request = 0; request < 3; request += 1) expect((await gateway.get()).status).toBe(502);
      const failures = gateway.warnings.filter(({ msg }) => msg.includes('TLS session'));
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ service: 'wants-certificate', upstream: `127.0.0.1:${ports.mutual}`, code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
      expect(failures[0]!.reason).toMatch(/certificate required/i);
    } finally {
      await gateway.close();
    }
  });
});

describe('warnUpstreamTlsFailure', () => {
  it('warns once per instance per period, and again once the period has passed', () => {
    const warnings: { service: string; upstream: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as { service: string; upstream: string }) });
    const error = Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' });
    const at = 1_000_000;
    warnUpstreamTlsFailure(log, 'period', '10.0.0.1:443', 'CERT_HAS_EXPIRED', error, at);
    warnUpstreamTlsFailure(log, 'period', '10.0.0.1:443', 'CERT_HAS_EXPIRED', error, at + UPSTREAM_TLS_WARN_EVERY_MS - 1);
    warnUpstreamTlsFailure(log, 'period', '10.0.0.2:443', 'CERT_HAS_EXPIRED', error, at + 1);
    warnUpstreamTlsFailure(log, 'period', '10.0.0.1:443', 'CERT_HAS_EXPIRED', error, at + UPSTREAM_TLS_WARN_EVERY_MS);
    expect(warnings.map(({ upstream }) => upstream)).toEqual(['10.0.0.1:443', '10.0.0.2:443', '10.0.0.1:443']);
    expect(warnings[0]).toMatchObject({ code: 'CERT_HAS_EXPIRED', reason: 'certificate has expired' });
  });
});
