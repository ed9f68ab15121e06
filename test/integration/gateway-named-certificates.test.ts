import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acceptsConnections,
  logOf,
  makeCertificate,
  makeTempDir,
  presentedCertificate,
  startGateway,
  waitFor,
  type GatewayProcess,
  type TestCertificate,
} from '../harness/index.ts';
import { keepWritingApart } from '../harness/keep-writing.ts';

/** The subject a TLS handshake to `port` with SNI `servername` is answered with. */
async function subjectOn(port: number, servername: string): Promise<string> {
  return (await presentedCertificate(port, servername)).subject;
}

describe('named certificates (certificates:) are served by SNI beside the entry points’ own, and follow a reload', () => {
  let dir: string;
  let gateway: GatewayProcess;
  let securePort: number;
  let internalPort: number;
  const made: Record<string, TestCertificate> = {};

  const config = (certificates: string) => `
admin: false
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  websecure:
    listen: 127.0.0.1:{{port:secure}}
    protocol: https
    tls: { certificates: [{ certFile: ${dir}/own.pem, keyFile: ${dir}/own-key.pem }], defaultCertificate: { certFile: ${dir}/default.pem, keyFile: ${dir}/default-key.pem } }
  internal:
    listen: 127.0.0.1:{{port:internal}}
    protocol: https
    tls: { certificates: [{ certFile: ${dir}/default.pem, keyFile: ${dir}/default-key.pem }] }
certificates:
${certificates}
`;

  beforeAll(async () => {
    dir = await makeTempDir('sb-named-certs-');
    const names: Record<string, string[]> = { own: ['own.test'], default: ['default.test'], shop: ['shop.test'], partners: ['partners.test'], shadow: ['own.test', 'shadow.test'], extra: ['extra.test'] };
    await Promise.all(Object.entries(names).map(async ([file, dnsNames]) => (made[file] = await makeCertificate(dir, file, { key: 'ec', names: dnsNames }))));
    gateway = await startGateway(
      config(`
  shop: { certFile: ${made.shop!.certFile}, keyFile: ${made.shop!.keyFile} }
  # Relative: from the configuration file's folder (the harness writes it to a sibling temporary folder).
  partners: { certFile: ../${basename(dir)}/partners.pem, keyFile: ../${basename(dir)}/partners-key.pem, entryPoints: [internal] }
  shadow: { certFile: ${made.shadow!.certFile}, keyFile: ${made.shadow!.keyFile} }
`),
    );
    [securePort, internalPort] = [gateway.ports.secure!, gateway.ports.internal!];
    await waitFor(async () => (await acceptsConnections(securePort)) && (await acceptsConnections(internalPort)), { timeoutMs: 10_000, message: 'both https entry points to listen' });
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
  });

  it('serves a named certificate on every TLS entry point, one with entryPoints only there, and never over an entry point’s own certificate', async () => {
    expect(await subjectOn(securePort, 'shop.test')).toBe('CN=shop.test');
    expect(await subjectOn(internalPort, 'shop.test')).toBe('CN=shop.test');
    expect(await subjectOn(internalPort, 'partners.test')).toBe('CN=partners.test');
    // Not named for websecure: its default answers.
    expect(await subjectOn(securePort, 'partners.test')).toBe('CN=default.test');
    // shadow also lists own.test: the entry point's own certificate keeps that name, shadow serves the rest.
    expect(await subjectOn(securePort, 'own.test')).toBe('CN=own.test');
    expect(await subjectOn(securePort, 'shadow.test')).toBe('CN=own.test');
  });

  it('adds and removes named certificates on a reload, and refuses a reload with a pair it cannot read, naming the key path', async () => {
    await gateway.writeConfig(
      config(`
  extra: { certFile: ${made.extra!.certFile}, keyFile: ${made.extra!.keyFile} }
  partners: { certFile: ../${basename(dir)}/partners.pem, keyFile: ../${basename(dir)}/partners-key.pem, entryPoints: [internal] }
`),
    );
    await waitFor(async () => (await subjectOn(securePort, 'extra.test')) === 'CN=extra.test', { timeoutMs: 10_000, message: 'the added certificate to be served' });
    expect(await subjectOn(securePort, 'shop.test')).toBe('CN=default.test');
    expect(await subjectOn(internalPort, 'partners.test')).toBe('CN=partners.test');

    await gateway.writeConfig(
      config(`
  extra: { certFile: ${made.extra!.certFile}, keyFile: ${made.extra!.keyFile} }
  missing: { certFile: ${dir}/missing.pem, keyFile: ${made.extra!.keyFile} }
`),
    );
    await waitFor(async () => (await logOf(gateway.process)).includes('certificates.missing.certFile'), { timeoutMs: 10_000, message: 'the reload to be refused, naming the key path' });
    const log = await logOf(gateway.process);
    expect(log).toContain(`${dir}/missing.pem: cannot read the file (ENOENT)`);
    // The running configuration stays whole: partners still served where it was.
    expect(await subjectOn(internalPort, 'partners.test')).toBe('CN=partners.test');
    expect(await subjectOn(securePort, 'extra.test')).toBe('CN=extra.test');
  });
  it('takes a reload that lands while a certificate it adds is renewed one file at a time, once the key is written, without a refusal', async () => {
    await mkdir(join(dir, 'staging'), { recursive: true });
    const renewal = await makeCertificate(join(dir, 'staging'), 'renew', { key: 'ec', names: ['renew.test'] });
    const files = { certFile: join(dir, 'renew.pem'), keyFile: join(dir, 'renew-key.pem') };
    // The new certificate is in place; its key file is still being written with another pair's key (certbot's order), every few milliseconds, so the pair never settles before the maximum wait.
    await rename(renewal.certFile, files.certFile);
    const rightKey = await readFile(renewal.keyFile, 'utf8');
    // From a process of its own: a stall of the test's process (over the 150 ms settle time) would otherwise let the wrong key settle and the pair be refused.
    const writer = keepWritingApart(files.keyFile, await readFile(made.extra!.keyFile, 'utf8'));
    try {
      await gateway.writeConfig(config(`\n  renew: { certFile: ${files.certFile}, keyFile: ${files.keyFile} }\n`));
      await waitFor(async () => {
        const log = await logOf(gateway.process);
        return log.includes('certificate pair refused; read again until both files have settled') || log.includes('certificates.renew');
      }, { timeoutMs: 10_000, intervalMs: 20, message: 'the reload reading the pair being renewed' });
      // The writer's own next write is the right key, so the wrong one never stays on disk between the writer's last write and the key's arrival (a stall there of more than the settle time would have the gateway refuse the pair); once the file reads the right key, every write still to come writes it too.
      writer.write(rightKey);
      await waitFor(async () => (await readFile(files.keyFile, 'utf8')) === rightKey, { timeoutMs: 10_000, intervalMs: 5, message: 'the writer to write the right key' });
    } finally {
      await writer.stop();
    }
    await waitFor(async () => (await subjectOn(securePort, 'renew.test')) === 'CN=renew.test', { timeoutMs: 10_000, message: 'the renewed certificate to be served' });
    expect(await logOf(gateway.process)).not.toContain('certificates.renew');
  });

  it('takes a reload refused for a named certificate whose key is wrong once the key is put right, with no save of the configuration', async () => {
    // In a folder of its own, which neither the configuration watch nor the running pairs' watch sees.
    const folder = join(dir, 'fixed');
    await mkdir(join(folder, 'staging'), { recursive: true });
    const fixed = await makeCertificate(folder, 'fixed', { key: 'ec', names: ['fixed.test'] });
    const rightKey = join(folder, 'staging', 'right-key.pem');
    await rename(fixed.keyFile, rightKey);
    await writeFile(fixed.keyFile, await readFile(made.extra!.keyFile, 'utf8'));
    await gateway.writeConfig(config(`\n  fixed: { certFile: ${fixed.certFile}, keyFile: ${fixed.keyFile} }\n`));
    await waitFor(async () => (await logOf(gateway.process)).includes('certificates.fixed.keyFile'), { timeoutMs: 10_000, message: 'the reload to be refused, naming the key path' });
    expect(await logOf(gateway.process)).toContain(`${fixed.keyFile}: the key does not match the certificate ${fixed.certFile}`);
    expect(await subjectOn(securePort, 'fixed.test')).toBe('CN=default.test');
    // The operator puts the right key in place; the configuration file is not saved again.
    await rename(rightKey, fixed.keyFile);
    await waitFor(async () => (await subjectOn(securePort, 'fixed.test')) === 'CN=fixed.test', { timeoutMs: 10_000, message: 'the refused reload to be taken and its certificate served' });
    expect(await logOf(gateway.process)).toContain('the refused configuration is taken: a file it names has changed since its refusal');
  });
});
