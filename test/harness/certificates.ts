import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const EC_KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A certificate and its key, PEM files written by Debian's `openssl` into a folder. */
export interface TestCertificate {
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Creates a self-signed certificate for `names` (SAN DNS entries, the first also as CN) with an
 * RSA 2048 or an ECDSA prime256v1 key, as `<dir>/<file>.pem` and `<dir>/<file>-key.pem`. Each
 * file is written to a temporary name and renamed over the old one, as certificate tools do.
 */
export async function makeCertificate(dir: string, file: string, options: { key: 'rsa' | 'ec'; names: readonly string[] }): Promise<TestCertificate> {
  const staging = join(dir, `.${file}-${process.hrtime.bigint()}`);
  const keyArgs = options.key === 'rsa' ? ['-newkey', 'rsa:2048', '-nodes'] : EC_KEY_ARGS;
  const san = options.names.map((name) => `DNS:${name}`).join(',');
  await run('openssl', ['req', '-x509', ...keyArgs, '-days', '2', '-subj', `/CN=${options.names[0]}`, '-addext', `subjectAltName=${san}`, '-keyout', `${staging}-key.pem`, '-out', `${staging}.pem`], { timeout: 20_000 });
  const certificate = { certFile: join(dir, `${file}.pem`), keyFile: join(dir, `${file}-key.pem`) };
  await rename(`${staging}-key.pem`, certificate.keyFile);
  await rename(`${staging}.pem`, certificate.certFile);
  return certificate;
}

/** A test certificate authority in `dir`, able to sign server certificates. */
export interface TestCa {
  /** The CA certificate, to trust. */
  readonly caFile: string;
  /**
   * A certificate for `dnsName` (SAN, and CN) signed by this CA, for a TLS server; `ipAddresses`
   * adds IP SANs, and `clientAuth` makes it good for a TLS client too (extendedKeyUsage clientAuth).
   */
  issue(name: string, dnsName: string, options?: { ipAddresses?: readonly string[]; clientAuth?: boolean }): Promise<TestCertificate>;
}

/** Creates a fresh test CA (ECDSA P-256, valid 2 days) in `dir` with Debian's openssl. */
export async function createTestCa(dir: string): Promise<TestCa> {
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  await run('openssl', ['req', '-x509', ...EC_KEY_ARGS, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=Switchboard Test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return {
    caFile,
    async issue(name, dnsName, options = {}) {
      const certFile = join(dir, `${name}.pem`);
      const keyFile = join(dir, `${name}-key.pem`);
      const csr = join(dir, `${name}.csr`);
      const extensions = join(dir, `${name}.ext`);
      const san = [`DNS:${dnsName}`, ...(options.ipAddresses ?? []).map((ip) => `IP:${ip}`)].join(',');
      await writeFile(extensions, `subjectAltName=${san}\nextendedKeyUsage=serverAuth${options.clientAuth ? ',clientAuth' : ''}\nbasicConstraints=CA:FALSE\n`);
      await run('openssl', ['req', ...EC_KEY_ARGS, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${dnsName}`]);
      // A random serial of its own, not the CA's serial file: two certificates issued at once both
      // rewrote `ca.srl`, and one read it half-written ("Unable to load number", seen in CI).
      await run('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-out', certFile, '-days', '2', '-extfile', extensions]);
      return { certFile, keyFile };
    },
  };
}

/** Replaces `path` with `text` the way editors do (temporary file, then rename). */
export async function replaceFile(path: string, text: string | Buffer): Promise<void> {
  const staging = `${path}.${process.hrtime.bigint()}.tmp`;
  await writeFile(staging, text);
  await rename(staging, path);
}

/**
 * The certificate `openssl s_client` is shown by 127.0.0.1:`port` when it sends `servername`
 * (none: `-noservername`); rejects when the handshake fails.
 */
export async function presentedCertificate(port: number, servername: string | undefined): Promise<X509Certificate> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, ...(servername === undefined ? ['-noservername'] : ['-servername', servername])];
  const child = execFile('openssl', args, { timeout: 10_000 });
  child.stdin?.end();
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(output)?.[0];
  if (!pem) throw new Error(`openssl s_client -servername ${servername ?? '(none)'} got no certificate:\n${output.slice(0, 2_000)}`);
  return new X509Certificate(pem);
}
