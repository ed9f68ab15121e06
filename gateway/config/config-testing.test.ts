import { describe, expect, it } from 'vitest';
import { errorOf, expectRefused } from './config-testing.ts';

describe('expectRefused', () => {
  it('passes on a refusal whose message holds the expected text, with the file path in front', () => {
    expectRefused('listen: x\n', 'listen (line 1)');
    expectRefused('listen: x\n', '/etc/other/gateway.yaml: listen', '/etc/other/gateway.yaml');
  });

  it('fails the test on a config that is accepted, and on a refusal for another reason', () => {
    expect(() => expectRefused('listen: 127.0.0.1:8080\n', 'listen')).toThrow('the config was accepted');
    expect(() => expectRefused('listen: x\n', 'routes.0')).toThrow(/expected .* to contain 'routes\.0'/);
  });
});

describe('errorOf', () => {
  it('hands parseConfig its options: a certificate file it may not read is not refused', () => {
    const text = 'entryPoints:\n  s: { listen: 8443, protocol: https, tls: { certificates: [{ certFile: /nowhere/a.pem, keyFile: /nowhere/a-key.pem }] } }\n';
    expect(errorOf(text).message).toContain('entryPoints.s.tls.certificates.0.certFile (line 2): /nowhere/a.pem: cannot read the file (ENOENT)');
    expect(() => errorOf(text, '/etc/sb/gateway.yaml', { readFiles: false })).toThrow('the config was accepted');
  });
});
