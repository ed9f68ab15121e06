import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../../test/harness/certificates.ts';
import { configView } from '../admin/config-view.ts';
import { parseConfig } from './index.ts';
import { errorOf } from './config-testing.ts';
import { filesNamedBy, filesOfRefusal } from './named-files.ts';

describe('tls and auth of etcd registries and of the config store', () => {
  let dir: string;
  const PASSWORD = 'etcd-password-9c1e';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-connection-credentials-'));
    await (await createTestCa(dir)).issue('client', 'switchboard', { clientAuth: true });
    writeFileSync(join(dir, 'etcd.password'), `${PASSWORD}\n`);
    writeFileSync(join(dir, 'notes.txt'), 'not a certificate');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const path = () => join(dir, 'gateway.yaml');
  const refusal = (text: string): string => errorOf(text, path()).message;
  const registry = (entry: string) => `registries:\n  - ${entry}\n`;

  it('reads the files relative to the configuration file and shows paths, never the key or the password, in /api/config', () => {
    const config = parseConfig(path(), registry('{ url: "etcds://10.0.0.1:2379/services", tls: { caFile: ca.pem, certFile: client.pem, keyFile: client-key.pem }, auth: { username: gw, passwordFile: etcd.password } }'));
    const credentials = config.registries[0]?.credentials;
    const security = credentials?.clientSecurity();
    expect(security?.auth).toEqual({ username: 'gw', password: PASSWORD });
    expect(security?.credentials?.rootCertificate.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(security?.credentials?.privateKey?.toString()).toMatch(/PRIVATE KEY/);
    const view = JSON.stringify(configView(config));
    expect(view).toContain('client-key.pem');
    expect(view).toContain('etcd.password');
    expect(view).not.toContain('PRIVATE KEY');
    expect(view).not.toContain(PASSWORD);
  });

  it('keeps a plain URL entry as it was', () => {
    const config = parseConfig(path(), registry('etcds://10.0.0.1:2379/services'));
    expect(config.registries[0]).toMatchObject({ url: 'etcds://10.0.0.1:2379/services' });
    expect(config.registries[0]?.credentials).toBeUndefined();
  });

  it.each([
    ['a missing CA file', '{ url: "etcds://h:1/s", tls: { caFile: missing-ca.pem } }', /registries\.0\.tls\.caFile.*cannot read .*missing-ca\.pem \(ENOENT\)/],
    ['a file that is not PEM', '{ url: "etcds://h:1/s", tls: { caFile: notes.txt } }', /registries\.0\.tls\.caFile.*not a PEM file/],
    ['a certificate without its key', '{ url: "etcds://h:1/s", tls: { certFile: client.pem } }', /registries\.0\.tls\.certFile.*certFile and keyFile go together/],
    ['a missing password file', '{ url: "etcd://h:1/s", auth: { username: gw, passwordFile: nope.password } }', /registries\.0\.auth\.passwordFile.*cannot read .*nope\.password \(ENOENT\)/],
    ['tls on a plain etcd:// URL', '{ url: "etcd://h:1/s", tls: { caFile: ca.pem } }', /registries\.0\.tls.*tls needs an etcds:\/\/ URL/],
    ['tls on ZooKeeper', '{ url: "zk://h:1/s", tls: { caFile: ca.pem } }', /registries\.0\.tls.*tls applies to etcd.*ZooKeeper, whose TLS is not supported/],
    ['a missing password file on ZooKeeper', '{ url: "zk://h:1/s", auth: { username: gw, passwordFile: nope.password } }', /registries\.0\.auth\.passwordFile.*cannot read .*nope\.password \(ENOENT\)/],
    ['auth on a file registry', '{ url: "file:/tmp/x.yaml", auth: { username: gw, passwordFile: etcd.password } }', /registries\.0\.auth.*apply to etcd/],
  ])('refuses %s, naming the key', (_name, entry, reason) => {
    expect(refusal(registry(entry))).toMatch(reason);
  });

  it('reads a ZooKeeper registry\'s auth block into its digest credentials', () => {
    const config = parseConfig(path(), registry('{ url: "zk://h:1/s", auth: { username: gw, passwordFile: etcd.password } }'));
    expect(config.registries[0]?.credentials?.zooKeeperDigest()).toBe(`gw:${PASSWORD}`);
    expect(JSON.stringify(config.registries[0])).not.toContain(PASSWORD);
  });

  it('names the files in filesNamedBy, so a text refused for a missing one is retried when it appears', () => {
    const text = registry('{ url: "etcds://h:1/s", tls: { caFile: later-ca.pem }, auth: { username: gw, passwordFile: later.password } }');
    expect(filesOfRefusal(path(), text)?.sort()).toEqual([join(dir, 'later-ca.pem'), join(dir, 'later.password')]);
    const store = parseConfig(path(), 'configStore: { url: "etcds://h:1/sb", tls: { caFile: ca.pem }, auth: { username: gw, passwordFile: etcd.password } }\n', { readFiles: false });
    expect(filesNamedBy(store, path()).sort()).toEqual([join(dir, 'ca.pem'), join(dir, 'etcd.password')]);
    const redis = parseConfig(path(), 'redis: { sentinels: ["s:1"], name: m, tls: { caFile: redis-ca.pem, certFile: c.pem, keyFile: k.pem }, auth: { passwordFile: r.password }, sentinelAuth: { passwordFile: s.password } }\n', { readFiles: false });
    expect(filesNamedBy(redis, path()).sort()).toEqual(['c.pem', 'k.pem', 'r.password', 'redis-ca.pem', 's.password'].map((file) => join(dir, file)));
  });

  it('reads the config store block into its settings and refuses it on ZooKeeper', () => {
    const config = parseConfig(path(), 'configStore: { url: "etcds://h:1/sb", tls: { caFile: ca.pem }, auth: { username: gw, passwordFile: etcd.password } }\n');
    expect(config.configStore?.credentials?.clientSecurity().auth).toEqual({ username: 'gw', password: PASSWORD });
    expect(JSON.stringify(configView(config))).not.toContain(PASSWORD);
    const zk = parseConfig(path(), 'configStore: { url: "zk://h:1/sb", auth: { username: gw, passwordFile: etcd.password } }\n');
    expect(zk.configStore?.credentials?.zooKeeperDigest()).toBe(`gw:${PASSWORD}`);
    expect(JSON.stringify(configView(zk))).not.toContain(PASSWORD);
    expect(refusal('configStore: { url: "zk://h:1/sb", tls: { caFile: ca.pem } }\n')).toMatch(/configStore\.tls.*tls applies to etcd.*ZooKeeper, whose TLS is not supported/);
    expect(refusal('configStore: { url: "etcds://h:1/sb", tls: { caFile: nope.pem } }\n')).toMatch(/configStore\.tls\.caFile.*cannot read/);
  });
});
