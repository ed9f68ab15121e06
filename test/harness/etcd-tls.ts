import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestCa, type TestCertificate } from './certificates.ts';
import { freePort, retryOnPortClash } from './ports.ts';
import { makeTempDir, ManagedProcess, removeTempDir, waitUntilReady } from './process.ts';

const run = promisify(execFile);
const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 20_000;

/** A single local etcd member serving its clients over TLS only, with a private CA and client certificates required. */
export interface TlsEtcd {
  /** `127.0.0.1:<port>`, for `etcds://` URLs. */
  readonly hostPort: string;
  /** The private CA that signed the server's and the client's certificates. */
  readonly caFile: string;
  /** A client certificate (CN `switchboard-test-client`) this CA signed, for `--client-cert-auth`. */
  readonly client: TestCertificate;
  /** Folder of the CA and certificates, for tests to add files (password files) beside them. */
  readonly dir: string;
  readonly logFile: string;
  /** Runs `etcdctl` against the member with the CA and client certificate (and `--user` when given); resolves its stdout. */
  ctl(args: readonly string[], user?: string): Promise<string>;
  /** Sets up the `root` user with `password` and turns on etcd's authentication. */
  enableAuth(password: string): Promise<void>;
  /** Kills the member and removes its folder; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts Debian's etcd on a free loopback port with `--client-cert-auth`: a fresh test CA, a server
 * certificate for 127.0.0.1 (IP SAN) and a client certificate, and waits until /health answers over
 * TLS with that client certificate.
 */
export function startTlsEtcd(): Promise<TlsEtcd> {
  return retryOnPortClash(startOnce);
}

async function startOnce(): Promise<TlsEtcd> {
  const dir = await makeTempDir('switchboard-etcd-tls-');
  const ca = await createTestCa(dir);
  const server = await ca.issue('etcd-server', 'localhost', { ipAddresses: [HOST], clientAuth: true });
  const client = await ca.issue('client', 'switchboard-test-client', { clientAuth: true });
  const clientPort = await freePort();
  const peerPort = await freePort();
  const clientUrl = `https://${HOST}:${clientPort}`;
  const peerUrl = `http://${HOST}:${peerPort}`;
  const logFile = join(dir, 'etcd.log');
  const etcd = new ManagedProcess({
    name: 'etcd-tls',
    command: 'etcd',
    args: [
      '--name', 'etcd-tls', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `etcd-tls=${peerUrl}`, '--initial-cluster-state', 'new',
      '--cert-file', server.certFile, '--key-file', server.keyFile, '--trusted-ca-file', ca.caFile, '--client-cert-auth',
      '--election-timeout', '100', '--heartbeat-interval', '10', '--logger', 'zap', '--log-outputs', 'stderr',
    ],
    logFile,
    cwd: dir,
    env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ETCD_'))),
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await etcd.kill();
    await removeTempDir(dir);
  };
  const tls = { ca: await readFile(ca.caFile), cert: await readFile(client.certFile), key: await readFile(client.keyFile) };
  const ctl = async (args: readonly string[], user?: string) => {
    const common = ['--endpoints', clientUrl, '--cacert', ca.caFile, '--cert', client.certFile, '--key', client.keyFile, '--dial-timeout', '5s'];
    const { stdout } = await run('etcdctl', [...common, ...(user === undefined ? [] : ['--user', user]), ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  };
  try {
    etcd.start();
    await waitUntilReady(etcd, () => healthyOverTls(clientPort, tls), { what: `etcd over TLS (${clientUrl})`, timeoutMs: READY_TIMEOUT_MS });
  } catch (error) {
    await close();
    throw error;
  }
  return {
    hostPort: `${HOST}:${clientPort}`,
    caFile: ca.caFile,
    client,
    dir,
    logFile,
    ctl,
    async enableAuth(password) {
      await ctl(['user', 'add', `root:${password}`]);
      await ctl(['auth', 'enable']);
    },
    close,
  };
}

/** True when GET /health answers {"health":"true"} over TLS with the client certificate within 1 s. */
function healthyOverTls(port: number, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path: '/health', ...tls, timeout: 1_000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(response.statusCode === 200 && body.includes('"health":"true"')));
      response.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
