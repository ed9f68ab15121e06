import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../../test/harness/certificates.ts';
import { configView } from '../admin/config-view.ts';
import { parseConfig, serviceSettings, upstreamPolicy } from './index.ts';
import { errorOf } from './config-testing.ts';

describe('upstream TLS files in the configuration', () => {
  let dir: string;
  let caFile: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-tls-config-'));
    caFile = (await createTestCa(dir)).caFile;
    writeFileSync(join(dir, 'notes.txt'), 'not a certificate');
    writeFileSync(join(dir, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const refusal = (text: string) => errorOf(text, join(dir, 'gateway.yaml'));

  it('reads the CA relative to the configuration file, into the connection settings and never into /api/config', () => {
    const config = parseConfig(join(dir, 'gateway.yaml'), 'services:\n  api:\n    protocol: https\n    tls: { caFile: ca.pem, serverName: api.internal }\n');
    const settings = serviceSettings(config, 'api');
    expect(settings.protocol).toBe('https');
    expect(settings.tls).toMatchObject({ caFile: 'ca.pem', serverName: 'api.internal', verify: true });
    const connection = upstreamPolicy(settings).connection;
    expect(connection.tls.ca).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(connection.tls.serverName).toBe('api.internal');
    expect(JSON.stringify(configView(config))).not.toContain('-----BEGIN');
    expect(JSON.stringify(configView(config))).toContain(caFile);
  });

  it('inherits protocol and tls from defaults, key by key', () => {
    const config = parseConfig(join(dir, 'gateway.yaml'), `defaults: { protocol: h2, tls: { caFile: ${caFile} } }\nservices: { api: { tls: { verify: false } } }\n`);
    expect(serviceSettings(config, 'api')).toMatchObject({ protocol: 'h2', tls: { caFile, verify: false } });
    expect(upstreamPolicy(serviceSettings(config, 'api')).connection.tls.ca).toMatch(/BEGIN CERTIFICATE/);
  });

  it.each([
    { name: 'a missing file', file: 'absent.pem', reason: /services\.api\.tls\.caFile \(line 2\): cannot read .*absent\.pem \(ENOENT\)/ },
    { name: 'a file that is not PEM', file: 'notes.txt', reason: /services\.api\.tls\.caFile \(line 2\): .*notes\.txt is not a PEM file/ },
    { name: 'a PEM file node:tls cannot use', file: 'broken.pem', reason: /services\.api\.tls\.caFile \(line 2\): .*broken\.pem: not a usable CA bundle/ },
  ])('refuses $name with its path and the reason', ({ file, reason }) => {
    const error = refusal(`services:\n  api: { tls: { caFile: ${file} } }\n`);
    expect(error.code).toBe('SB_CONFIG_INVALID');
    expect(error.message).toMatch(reason);
  });

  it('refuses a client certificate without its key, an IP as serverName and an unknown protocol', () => {
    const message = refusal('services:\n  a: { tls: { certFile: c.pem } }\n  b: { tls: { serverName: 10.0.0.1 } }\n  c: { protocol: tcp }\n').message;
    expect(message).toMatch(/services\.a\.tls.*certFile and keyFile go together/);
    expect(message).toMatch(/services\.b\.tls\.serverName.*DNS name/);
    expect(message).toMatch(/services\.c\.protocol/);
  });
});
