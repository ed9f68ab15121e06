import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { makeTempDirSync } from '../../test/harness/temp-dirs.ts';
import type { EntryPointConfig } from '../config/types.ts';

/** A self-signed ECDSA pair for `name` (as its CN and only SAN), valid a day, made by openssl in a fresh temporary folder that goes at the end of the test file. */
export function selfSignedPair(name: string): { certFile: string; keyFile: string } {
  const dir = makeTempDirSync('sb-tls-');
  const files = { certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}-key.pem`) };
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`];
  execFileSync('openssl', [...args, '-keyout', files.keyFile, '-out', files.certFile], { stdio: 'ignore', timeout: 20_000 });
  return files;
}

/** An entry point on 127.0.0.1, port 0, of `protocol`, serving `certificate` when given (https, or tcp terminating TLS). */
export function testEntryPointConfig(protocol: EntryPointConfig['protocol'], certificate?: { certFile: string; keyFile: string }, tcp?: EntryPointConfig['tcp']): EntryPointConfig {
  return {
    name: protocol,
    listen: { host: '127.0.0.1', port: 0 },
    protocol,
    h2c: false,
    http2: protocol === 'https',
    tls: certificate ? { certificates: [certificate], defaultCertificate: undefined, minVersion: undefined, ciphers: undefined, clientAuth: undefined } : undefined,
    passthrough: false,
    middlewares: [],
    ...(tcp ? { tcp } : {}),
  };
}
