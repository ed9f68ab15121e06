import { describe, expect, it } from 'vitest';
import { tcpForwardPolicy, tcpServiceFor } from '../proxy/tcp-policy.ts';
import { parseConfig } from './load.ts';
import { expectRefused } from './config-testing.ts';

const TLS = 'tls: { certificates: [{ certFile: a.pem, keyFile: a-key.pem }] }';

describe('tcp entry points in the configuration file', () => {
  it('reads the service, PROXY protocol, idle timeout and SNI table, with a 10 min idle timeout by default', () => {
    const config = parseConfig(
      '/etc/switchboard/gateway.yaml',
      `entryPoints:\n  redis: { listen: 6380, protocol: tcp, service: redis }\n  db: { listen: 5433, protocol: tcp, service: pg, proxyProtocol: 2, idleTimeout: 30s, ${TLS}, sni: { "PG-A.example.com": pg-a, "*.tenants.example.com": pg-t } }\n`,
      // The schema alone: the certificate files do not exist.
      { readFiles: false },
    );
    const [redis, db] = config.entryPoints;
    expect(redis).toMatchObject({ name: 'redis', protocol: 'tcp', h2c: false, http2: false, tls: undefined });
    expect(redis!.tcp).toEqual({ service: 'redis', sni: new Map(), proxyProtocol: undefined, idleTimeoutMs: 600_000 });
    expect(db!.tcp).toEqual({ service: 'pg', sni: new Map([['pg-a.example.com', 'pg-a'], ['*.tenants.example.com', 'pg-t']]), proxyProtocol: 2, idleTimeoutMs: 30_000 });
    expect(db!.tls?.certificates).toEqual([{ certFile: '/etc/switchboard/a.pem', keyFile: '/etc/switchboard/a-key.pem' }]);
  });

  it('gives services behind tcp entry points TCP connect checks by default, keeping their own settings and a false', () => {
    const config = parseConfig(
      'g.yaml',
      `entryPoints:\n  a: { listen: 7001, protocol: tcp, service: plain }\n  b: { listen: 7002, protocol: tcp, service: tuned }\n  c: { listen: 7003, protocol: tcp, service: off }\n  web: { listen: 8080 }\n` +
        `defaults:\n  healthCheck: { path: /healthz }\nservices:\n  tuned: { healthCheck: { interval: 3s } }\n  off: { healthCheck: false }\n  web-api: {}\n`,
    );
    expect(config.services.get('plain')!.healthCheck).toMatchObject({ type: 'tcp' });
    expect(config.services.get('tuned')!.healthCheck).toMatchObject({ type: 'tcp', intervalMs: 3_000 });
    expect(config.services.get('off')!.healthCheck).toBe(false);
    expect(config.services.get('web-api')!.healthCheck).toMatchObject({ type: 'http', path: '/healthz' });
  });

  it.each([
    ['a tcp entry point without a service', 'entryPoints:\n  r: { listen: 6380, protocol: tcp }\n', 'entryPoints.r.service (line 2): a tcp entry point forwards to one service'],
    ['sni without tls or passthrough', 'entryPoints:\n  r: { listen: 6380, protocol: tcp, service: r, sni: { a.example: a } }\n', 'entryPoints.r.sni (line 2): sni routing reads the TLS server name: add passthrough: true'],
    ['passthrough beside tls', `entryPoints:\n  r: { listen: 6380, protocol: tcp, passthrough: true, sni: { a.example: a }, ${TLS} }\n`, 'entryPoints.r.passthrough (line 2): passthrough forwards the TLS bytes to the instance'],
    ['passthrough on an https entry point', `entryPoints:\n  w: { listen: 8443, protocol: https, passthrough: true, ${TLS} }\n`, 'entryPoints.w.passthrough (line 2): passthrough is for tcp entry points'],
    ['passthrough without a service or an sni table', 'entryPoints:\n  r: { listen: 6380, protocol: tcp, passthrough: true }\n', 'entryPoints.r.service (line 2): a tcp entry point forwards to one service'],
    ['passthrough with an empty sni table and no service', 'entryPoints:\n  r: { listen: 6380, protocol: tcp, passthrough: true, sni: {} }\n', 'entryPoints.r.service (line 2): a tcp entry point forwards to one service'],
    ['middlewares on tcp', 'middlewares:\n  h: { hsts: { maxAge: 1d } }\nentryPoints:\n  r: { listen: 6380, protocol: tcp, service: r, middlewares: [h] }\n', 'entryPoints.r.middlewares (line 4): middlewares act on HTTP requests'],
    ['service on http', 'entryPoints:\n  web: { listen: 8080, service: api }\n', 'entryPoints.web.service (line 2): service is for tcp entry points'],
    ['a PROXY protocol version 3', 'entryPoints:\n  r: { listen: 6380, protocol: tcp, service: r, proxyProtocol: 3 }\n', 'entryPoints.r.proxyProtocol (line 2): expected 1 (text) or 2 (binary)'],
    ['a route on a tcp entry point', 'entryPoints:\n  web: { listen: 8080 }\n  r: { listen: 6380, protocol: tcp, service: r }\nroutes:\n  - { path: /, service: a, entryPoints: [r] }\n', 'routes.0.entryPoints.0 (line 5): entry point "r" is a tcp entry point'],
  ])('refuses %s, naming the key and the line', (_case, text, expected) => {
    expectRefused(text, expected);
  });

  it('leaves upstream TLS on a tcp entry point\'s service when the client\'s own bytes reach it (plain, passthrough), an https check reads it, or defaults give it', () => {
    const text =
      'entryPoints:\n  edge: { listen: 443, protocol: tcp, passthrough: true, service: site }\n  relay: { listen: 8443, protocol: tcp, service: origin }\n' +
      `  cache: { listen: 6380, protocol: tcp, service: redis, ${TLS} }\n  db: { listen: 5433, protocol: tcp, service: pg, ${TLS} }\n` +
      'defaults: { protocol: https, tls: { verify: false } }\n' +
      'services:\n  site: { protocol: https, tls: { serverName: site.internal } }\n  origin: { protocol: https, tls: { serverName: origin.internal } }\n' +
      '  redis: { tls: { serverName: redis.internal }, healthCheck: { protocol: https, port: 9901, path: /healthz } }\n';
    // The schema alone: the certificate files do not exist.
    const config = parseConfig('g.yaml', text, { readFiles: false });
    expect(config.services.get('site')!.tls.serverName).toBe('site.internal');
    expect(config.services.get('origin')!.protocol).toBe('https');
    expect(config.services.get('redis')!.healthCheck).toMatchObject({ type: 'http', protocol: 'https', port: 9901 });
    expect(config.services.get('pg')!.protocol).toBe('https');
  });

  it("leaves a tls tcp entry point's service its tls when its http check speaks TLS by defaults.healthCheck or by defaults' protocol", () => {
    const text =
      `entryPoints:\n  db: { listen: 5433, protocol: tcp, service: pg, ${TLS} }\n  cache: { listen: 6380, protocol: tcp, service: redis, ${TLS} }\n` +
      'services:\n  pg: { tls: { serverName: pg.internal }, healthCheck: { type: http, port: 9901 } }\n';
    const checked = parseConfig('g.yaml', `${text}defaults: { healthCheck: { protocol: https } }\n`, { readFiles: false });
    // The check the tls is refused as unread for: an https check on the management port, which reads it.
    expect(checked.services.get('pg')!.healthCheck).toMatchObject({ type: 'http', protocol: 'https', port: 9901 });
    expect(checked.services.get('pg')!.tls.serverName).toBe('pg.internal');
    expect(parseConfig('g.yaml', `${text}defaults: { protocol: https }\n`, { readFiles: false }).services.get('pg')!.tls.serverName).toBe('pg.internal');
  });

  it.each([
    ['a static instance speaking TLS', `entryPoints:\n  db: { listen: 5433, protocol: tcp, service: pg, ${TLS} }\nservices:\n  pg: { instances: [10.0.0.1:5432, { host: 10.0.0.2, port: 5432, protocol: grpcs }] }\n`, 'services.pg.instances.1.protocol (line 4): a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: entry point "db" would send this instance clear bytes where it expects TLS (grpcs)'],
    ['tls its http check, speaking the protocol the service names, never reads beside https defaults', `entryPoints:\n  db: { listen: 5433, protocol: tcp, service: pg, ${TLS} }\ndefaults: { protocol: https }\nservices:\n  pg: { protocol: http, tls: { serverName: pg.internal }, healthCheck: { type: http } }\n`, 'services.pg.tls (line 5): a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: entry point "db" would ignore it'],
    ['tls its tcp check never reads, beside an https check in defaults', `entryPoints:\n  db: { listen: 5433, protocol: tcp, service: pg, ${TLS} }\ndefaults: { healthCheck: { protocol: https } }\nservices:\n  pg: { tls: { serverName: pg.internal }, healthCheck: { interval: 5s } }\n`, 'services.pg.tls (line 5): a tcp entry point with tls forwards the decrypted bytes; upstream TLS applies to HTTP routes only: entry point "db" would ignore it'],
  ])("refuses on a tls tcp entry point's service %s", (_case, text, expected) => {
    expectRefused(text, expected);
  });

  it('passes TLS through by server name, the sni table alone leaving names it does not list to no service', () => {
    const config = parseConfig('g.yaml', 'entryPoints:\n  edge: { listen: 443, protocol: tcp, passthrough: true, sni: { A.test: a, "*.b.test": b } }\n');
    const [edge] = config.entryPoints;
    expect(edge).toMatchObject({ protocol: 'tcp', tls: undefined, passthrough: true });
    expect(edge!.tcp).toEqual({ service: undefined, sni: new Map([['a.test', 'a'], ['*.b.test', 'b']]), proxyProtocol: undefined, idleTimeoutMs: 600_000 });
    expect([undefined, 'a.test.', 'x.B.test', 'c.test'].map((name) => tcpForwardPolicy(config, edge!.tcp!, name)?.service)).toEqual([undefined, 'a', 'b', undefined]);
    // Its services are the configuration's (TCP checks by default), as the entry point service is.
    expect(config.services.get('b')!.healthCheck).toMatchObject({ type: 'tcp' });
  });

  it('forwards by server name (exact, then one-label wildcard, else the entry point service), with the PROXY version of the entry point over the service', () => {
    const config = parseConfig(
      'g.yaml',
      `entryPoints:\n  db: { listen: 5433, protocol: tcp, service: pg, ${TLS}, sni: { a.example.com: pg-a, "*.t.example.com": pg-t } }\n` +
        `services:\n  pg: { proxyProtocol: 1, retries: { attempts: 2 }, timeouts: { connect: 500ms } }\n  pg-a: { proxyProtocol: 2, retries: { retryOn: [reset] } }\n`,
      { readFiles: false },
    );
    const tcp = config.entryPoints[0]!.tcp!;
    expect([undefined, 'A.Example.com', 'x.t.example.com', 'y.x.t.example.com', 'other.com', 'a.example.com.', 'X.T.Example.com.'].map((name) => tcpServiceFor(tcp, name))).toEqual(['pg', 'pg-a', 'pg-t', 'pg', 'pg', 'pg-a', 'pg-t']);
    expect(tcpForwardPolicy(config, tcp, undefined)).toEqual({ service: 'pg', attempts: 2, connectTimeoutMs: 500, idleTimeoutMs: 600_000, proxyProtocol: 1 });
    // retryOn without connect-failure: one attempt only.
    expect(tcpForwardPolicy(config, tcp, 'a.example.com')!).toMatchObject({ service: 'pg-a', attempts: 1, proxyProtocol: 2 });
    expect(tcpForwardPolicy(config, { ...tcp, proxyProtocol: 2 }, undefined)!.proxyProtocol).toBe(2);
  });
});
