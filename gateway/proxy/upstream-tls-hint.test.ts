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

const listen = async (server: Server | Http2SecureServer) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

describe('an instance registered by IP whose certificate carries only its DNS name', () => {
  const transports = new UpstreamTransports();
  let dir: string;
  let backend: Server;
  let h2Backend: Http2SecureServer;
  const ports = { https: 0, h2: 0 };
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
  });
  afterAll(async () => {
    await transports.close();
    backend.closeAllConnections();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => h2Backend.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  /** A gateway sending every request to `service`, whose one instance is 127.0.0.1 speaking `protocol`, with `tls`; collects warnings. */
  async function gatewayFor(service: string, tls: UpstreamTlsOptions, protocol: 'https' | 'h2' = 'https') {
    const warnings: { msg: string; service?: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as { msg: string }) });
    const conf$ = new BehaviorSubject<ServiceConf>({ service, instances: [{ id: 'ip', service, host: '127.0.0.1', port: ports[protocol], weight: 1, protocol, metadata: {} }], sources: new Map(), version: 1 });
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
        expect(gateway.warnings).toHaveLength(1);
        expect(gateway.warnings[0]!.service).toBe(service);
        expect(gateway.warnings[0]!.msg).toContain(`services.${service}.tls.serverName`);
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
});
