import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { errorOf, expectRefused } from './config-testing.ts';

/** The message of the error `text` is refused with (without the file name). */
function refusal(text: string): string {
  return errorOf(text).message.replace('/etc/sb/gateway.yaml: ', '');
}

describe('entryPoints in the configuration file', () => {
  it('turns the old listen: into one http entry point named web', () => {
    const config = parseConfig('/etc/switchboard/gateway.yaml', 'listen: 127.0.0.1:8080\n');
    expect(config.entryPoints).toEqual([{ name: 'web', listen: { host: '127.0.0.1', port: 8080 }, protocol: 'http', h2c: false, http2: false, tls: undefined, passthrough: false, middlewares: [] }]);
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080 });
  });

  it('reads entry points in file order with their defaults, and resolves certificate paths against the file folder', () => {
    const config = parseConfig(
      '/etc/switchboard/gateway.yaml',
      `
middlewares:
  to-https: { redirectScheme: { scheme: https } }
entryPoints:
  web: { listen: ":8080", h2c: true, middlewares: [to-https] }
  websecure:
    listen: 127.0.0.1:8443
    protocol: https
    tls:
      certificates: [{ certFile: certs/a.pem, keyFile: /keys/a-key.pem }]
      defaultCertificate: { certFile: d.pem, keyFile: d-key.pem }
      minVersion: TLSv1.3
routes:
  - { path: /api, service: api, entryPoints: [websecure] }
  - { path: /, service: site }
`,
      // The schema alone: these certificate files do not exist (certificate-check.test.ts reads real ones).
      { readFiles: false },
    );
    expect(config.entryPoints.map((entryPoint) => [entryPoint.name, entryPoint.protocol, entryPoint.h2c, entryPoint.http2])).toEqual([
      ['web', 'http', true, false],
      ['websecure', 'https', false, true],
    ]);
    expect(config.entryPoints[0]!.middlewares).toEqual(['to-https']);
    expect(config.entryPoints[1]!.tls).toEqual({
      certificates: [{ certFile: '/etc/switchboard/certs/a.pem', keyFile: '/keys/a-key.pem' }],
      defaultCertificate: { certFile: '/etc/switchboard/d.pem', keyFile: '/etc/switchboard/d-key.pem' },
      minVersion: 'TLSv1.3',
    });
    expect(config.listen).toEqual({ host: undefined, port: 8080 });
    expect(config.routes.map((route) => route.entryPoints)).toEqual([['websecure'], undefined]);
  });

  it('keeps an entry point\'s cipher list as written', () => {
    const config = parseConfig('g.yaml', 'entryPoints:\n  s: { listen: 8443, protocol: https, tls: { certificates: [{ certFile: a, keyFile: b }], ciphers: "ECDHE+AESGCM:!SHA1" } }\n', { readFiles: false });
    expect(config.entryPoints[0]!.tls?.ciphers).toBe('ECDHE+AESGCM:!SHA1');
  });

  it('reads tls.clientAuth with require as its mode by default, its caFile from the file folder', () => {
    const text = (clientAuth: string) => `entryPoints:\n  s: { listen: 8443, protocol: https, tls: { certificates: [{ certFile: a, keyFile: b }], clientAuth: ${clientAuth} } }\n`;
    expect(parseConfig('/etc/sb/g.yaml', text('{ caFile: certs/clients-ca.pem }'), { readFiles: false }).entryPoints[0]!.tls?.clientAuth).toEqual({ caFile: '/etc/sb/certs/clients-ca.pem', mode: 'require' });
    expect(parseConfig('/etc/sb/g.yaml', text('{ caFile: /ca.pem, mode: optional }'), { readFiles: false }).entryPoints[0]!.tls?.clientAuth).toEqual({ caFile: '/ca.pem', mode: 'optional' });
    expect(refusal(text('{ caFile: /ca.pem, mode: on }'))).toContain('entryPoints.s.tls.clientAuth.mode (line 2)');
    expect(refusal(text('{ mode: optional }'))).toContain('entryPoints.s.tls.clientAuth.caFile (line 2)');
  });

  it('lets an https entry point turn HTTP/2 off', () => {
    const config = parseConfig('g.yaml', 'entryPoints:\n  s: { listen: 8443, protocol: https, http2: false, tls: { certificates: [{ certFile: a, keyFile: b }] } }\n', { readFiles: false });
    expect(config.entryPoints[0]!.http2).toBe(false);
  });

  it.each([
    ['listen beside entryPoints', 'listen: 8080\nentryPoints:\n  web: { listen: 8081 }\n', 'listen (line 1): listen and entryPoints cannot both be set'],
    ['https without tls', 'entryPoints:\n  s:\n    listen: 8443\n    protocol: https\n', 'entryPoints.s.tls (line 3): an https entry point needs tls'],
    ['tls on http', 'entryPoints:\n  web:\n    listen: 8080\n    tls: { certificates: [{ certFile: a, keyFile: b }] }\n', 'entryPoints.web.tls (line 4): tls belongs to https entry points'],
    ['h2c on https', 'entryPoints:\n  s: { listen: 8443, protocol: https, h2c: true, tls: { certificates: [{ certFile: a, keyFile: b }] } }\n', 'entryPoints.s.h2c (line 2): h2c is for http entry points'],
    ['http2 on http', 'entryPoints:\n  web: { listen: 8080, http2: true }\n', 'entryPoints.web.http2 (line 2): http2 is for https entry points'],
    ['a certificate without its key', 'entryPoints:\n  s:\n    listen: 8443\n    protocol: https\n    tls:\n      certificates:\n        - { certFile: a.pem }\n', 'entryPoints.s.tls.certificates.0.keyFile (line 7)'],
    ['an unknown protocol', 'entryPoints:\n  web: { listen: 8080, protocol: udp }\n', 'entryPoints.web.protocol (line 2)'],
    ['an old TLS version', 'entryPoints:\n  s: { listen: 8443, protocol: https, tls: { certificates: [{ certFile: a, keyFile: b }], minVersion: TLSv1 } }\n', 'entryPoints.s.tls.minVersion (line 2)'],
    ['a cipher list OpenSSL does not know', 'entryPoints:\n  s: { listen: 8443, protocol: https, tls: { certificates: [{ certFile: a, keyFile: b }], ciphers: "NOT-A-CIPHER" } }\n', 'entryPoints.s.tls.ciphers (line 2): OpenSSL refuses this cipher list (error:0A0000B9:SSL routines::no cipher match)'],
    ['two entry points on one address', 'entryPoints:\n  a: { listen: 127.0.0.1:8080 }\n  b: { listen: 127.0.0.1:8080 }\n', 'entryPoints.b.listen (line 3): entry point b listens on the same address as entry point a'],
    ['a bad entry point name', 'entryPoints:\n  "web secure": { listen: 8080 }\n', 'entryPoints.web secure'],
    ['an unknown key', 'entryPoints:\n  web: { listen: 8080, h2: true }\n', 'entryPoints.web.h2 (line 2): unknown field "h2"'],
  ])('refuses %s, naming the entry point, the key and the line', (_case, text, expected) => {
    expectRefused(text, expected);
  });

  it('refuses a route that names an unknown entry point, at routes.N.entryPoints', () => {
    const text = 'entryPoints:\n  web: { listen: 8080 }\nroutes:\n  - { path: /a, service: a }\n  - path: /b\n    service: b\n    entryPoints: [web, websecure]\n';
    expect(refusal(text)).toBe('routes.1.entryPoints.1 (line 7): no entry point is named "websecure" (known: web)');
  });

  it('knows web as the entry point of the old listen:', () => {
    expect(parseConfig('g.yaml', 'listen: 8080\nroutes:\n  - { path: /a, service: a, entryPoints: [web] }\n').routes[0]!.entryPoints).toEqual(['web']);
    expect(refusal('listen: 8080\nroutes:\n  - { path: /a, service: a, entryPoints: [websecure] }\n')).toContain('routes.0.entryPoints.0 (line 3): no entry point is named "websecure" (known: web)');
  });

  it('refuses an entry point middleware that is not declared, at entryPoints.<name>.middlewares.N', () => {
    const text = 'middlewares:\n  hsts: { hsts: { maxAge: 1d } }\nentryPoints:\n  web: { listen: 8080, middlewares: [hsts, to-https] }\n';
    expect(refusal(text)).toBe('entryPoints.web.middlewares.1 (line 4): unknown middleware "to-https" (declared: hsts)');
  });
});
