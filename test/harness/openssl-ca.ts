import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const OPENSSL = '/usr/bin/openssl';
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** PEM files a test made with openssl: a CA, and certificates with their keys. */
export interface TestCertificate {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A test certificate authority in `dir`, able to sign server certificates. */
export interface TestCa {
  /** The CA certificate, to trust. */
  readonly caFile: string;
  /** A certificate for `dnsName` (SAN) signed by this CA, for a TLS server. */
  issue(name: string, dnsName: string): Promise<TestCertificate>;
}

/** Creates a fresh test CA (ECDSA P-256, valid 2 days) in `dir` with Debian's openssl. */
export async function createTestCa(dir: string): Promise<TestCa> {
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  await run(OPENSSL, ['req', '-x509', ...EC_KEY, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=Switchboard Test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return {
    caFile,
    async issue(name, dnsName) {
      const certFile = join(dir, `${name}.pem`);
      const keyFile = join(dir, `${name}-key.pem`);
      const csr = join(dir, `${name}.csr`);
      const extensions = join(dir, `${name}.ext`);
      await writeFile(extensions, `subjectAltName=DNS:${dnsName}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
      await run(OPENSSL, ['req', ...EC_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${dnsName}`]);
      await run(OPENSSL, ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', extensions]);
      return { certFile, keyFile };
    },
  };
}

/** A self-signed certificate for `dnsName` that no test CA signed. */
export async function createSelfSignedCertificate(dir: string, name: string, dnsName: string): Promise<TestCertificate> {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  await run(OPENSSL, ['req', '-x509', ...EC_KEY, '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${dnsName}`, '-addext', `subjectAltName=DNS:${dnsName}`]);
  return { certFile, keyFile };
}
