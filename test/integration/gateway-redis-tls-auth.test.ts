import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestCa,
  logOf,
  makeTempDir,
  removeTempDir,
  replaceFile,
  startBackend,
  startGateway,
  startLocalRedis,
  startLocalRedisSentinel,
  waitFor,
  type BackendProcess,
  type GatewayProcess,
  type LocalRedis,
  type LocalRedisSentinel,
  type TestCertificate,
} from '../harness/index.ts';

/** The test's own connections name themselves so, and are left out when the gateway's are looked for. */
const TEST_CLIENT = 'switchboard-test';
const FIRST_PASSWORD = 'first-secret';
const SECOND_PASSWORD = 'second-secret';
const SENTINEL_PASSWORD = 'sentinel-secret';
const MASTER_NAME = 'gateway-master';
/** An ACL user that may do what the rate limit's script needs; the default user stays open for the test's own client. */
const gatewayUser = (password: string) => ['--user', 'gateway', 'on', `>${password}`, '~*', '&*', '+@all'];

/** One `CLIENT LIST` line's fields, by name. */
type ClientFields = Readonly<Record<string, string>>;

/** The gateway's connections to `redis` (every client but the test's own), with their fields. */
async function gatewayClients(redis: Redis): Promise<ClientFields[]> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.includes(` name=${TEST_CLIENT} `))
    .map((line) => Object.fromEntries(line.trim().split(' ').map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)])));
}

/** A gateway config whose `/limited` route counts in `redis` (a `policy: redis` limit under the `test:` prefix). */
function configWith(redis: string, backendPort: number): string {
  return `
listen: 127.0.0.1:{{port}}
admin: false
accessLog: false
redis: ${redis}
shutdown: { drainTimeout: 1s }
services:
  api: { instances: [127.0.0.1:${backendPort}] }
middlewares:
  shared: { rateLimit: { average: 1000, period: 1s, burst: 1000, key: route, policy: redis, onRedisError: allow } }
routes:
  - { path: /limited, service: api, middlewares: [shared] }
`;
}

/** The private CA of this file's TLS cases, the Redis servers' certificate (good for a client too: a Sentinel presents it) and the gateway's. */
let pki: { dir: string; caFile: string; server: TestCertificate; gateway: TestCertificate };

beforeAll(async () => {
  const dir = await makeTempDir('sb-redis-pki-');
  const ca = await createTestCa(dir);
  // The server's certificate names redis.test only: the connection to 127.0.0.1 verifies through `serverName`.
  const [server, gateway] = await Promise.all([ca.issue('redis-server', 'redis.test', { clientAuth: true }), ca.issue('gateway-client', 'gateway.test', { clientAuth: true })]);
  pki = { dir, caFile: ca.caFile, server, gateway };
});
afterAll(async () => {
  if (pki) await removeTempDir(pki.dir);
});

/** The gateway's `redis.tls`: the private CA, its client certificate, the server's name. */
const gatewayTls = () => `{ caFile: "${pki.caFile}", certFile: "${pki.gateway.certFile}", keyFile: "${pki.gateway.keyFile}", serverName: redis.test }`;

describe('redis: over TLS with a private CA and a client certificate, as an ACL user whose password is in a file', () => {
  let dir: string;
  let redis: LocalRedis;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let client: Redis;
  let passwordFile: string;

  /** Requests `/limited` until the limit's key is in Redis again (deleted first) and `check` holds for the gateway's connections. */
  const countsInRedisAs = (check: (clients: ClientFields[]) => boolean, message: string) =>
    waitFor(
      async () => {
        await client.del(...(await client.keys('test:rl:*')), 'none');
        const answer = await fetch(`${gateway.url}/limited`);
        expect(answer.status).toBe(200);
        const written = (await client.keys('test:rl:*')).length > 0;
        const clients = await gatewayClients(client);
        return (written && check(clients) && clients) || undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250, message },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${(await logOf(gateway.process)).slice(-3_000)}`);
    });

  beforeAll(async () => {
    dir = await makeTempDir('sb-redis-tls-');
    passwordFile = join(dir, 'redis.password');
    await writeFile(passwordFile, `${FIRST_PASSWORD}\n`);
    [redis, backend] = await Promise.all([
      startLocalRedis('redis-tls', { tls: { certFile: pki.server.certFile, keyFile: pki.server.keyFile, caFile: pki.caFile }, extraArgs: gatewayUser(FIRST_PASSWORD) }),
      startBackend({ name: 'api' }),
    ]);
    client = new Redis({ host: redis.host, port: redis.port, connectionName: TEST_CLIENT });
    gateway = await startGateway(configWith(`{ url: "rediss://127.0.0.1:${redis.tlsPort}", tls: ${gatewayTls()}, auth: { username: gateway, passwordFile: "${passwordFile}" }, timeout: 500ms, keyPrefix: "test:" }`, backend.port));
  });
  afterAll(async () => {
    client?.disconnect();
    await gateway?.process.stop();
    await backend?.process.kill();
    await redis?.close();
    if (dir) await removeTempDir(dir);
  });

  it('counts in Redis through the TLS port as its user, and a changed password file moves it to a connection made with the new password', async () => {
    const tlsPort = String(redis.tlsPort);
    const [first] = await countsInRedisAs((clients) => clients.length === 1 && clients[0]!.user === 'gateway' && clients[0]!.laddr!.endsWith(`:${tlsPort}`), 'the limit counting in Redis over TLS as the gateway user');

    // Redis keeps connections made with an old password; the gateway reads the new file and reconnects with it.
    await client.call('ACL', 'SETUSER', 'gateway', 'resetpass', `>${SECOND_PASSWORD}`);
    await replaceFile(passwordFile, `${SECOND_PASSWORD}\n`);
    const moved = await countsInRedisAs(
      (clients) => clients.length === 1 && clients[0]!.id !== first!.id && clients[0]!.user === 'gateway' && clients[0]!.laddr!.endsWith(`:${tlsPort}`),
      'the gateway on a new connection made with the second password, the first closed',
    );
    expect(moved[0]!.id).not.toBe(first!.id);
  });
});

describe('redis: through Sentinels that require a password of their own', () => {
  let dir: string;
  let master: LocalRedis;
  let sentinel: LocalRedisSentinel;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let client: Redis;

  beforeAll(async () => {
    dir = await makeTempDir('sb-redis-sentinel-');
    await writeFile(join(dir, 'master.password'), `${FIRST_PASSWORD}\n`);
    await writeFile(join(dir, 'sentinel.password'), `${SENTINEL_PASSWORD}\n`);
    [master, backend] = await Promise.all([startLocalRedis('redis-master', { extraArgs: gatewayUser(FIRST_PASSWORD) }), startBackend({ name: 'api' })]);
    sentinel = await startLocalRedisSentinel(master, MASTER_NAME, SENTINEL_PASSWORD);
    client = new Redis({ host: master.host, port: master.port, connectionName: TEST_CLIENT });
    gateway = await startGateway(
      configWith(
        `{ sentinels: ["127.0.0.1:${sentinel.port}"], name: ${MASTER_NAME}, auth: { username: gateway, passwordFile: "${join(dir, 'master.password')}" }, sentinelAuth: { passwordFile: "${join(dir, 'sentinel.password')}" }, timeout: 500ms, keyPrefix: "test:" }`,
        backend.port,
      ),
    );
  });
  afterAll(async () => {
    client?.disconnect();
    await gateway?.process.stop();
    await backend?.process.kill();
    await sentinel?.close();
    await master?.close();
    if (dir) await removeTempDir(dir);
  });

  it('asks the Sentinels for the master with their password and counts there as its user', async () => {
    // Without the Sentinel's password its answer is NOAUTH and no master is found: the limit would only count locally.
    await waitFor(
      async () => {
        const answer = await fetch(`${gateway.url}/limited`);
        expect(answer.status).toBe(200);
        const clients = await gatewayClients(client);
        return ((await client.keys('test:rl:*')).length > 0 && clients.some((each) => each.user === 'gateway')) || undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250, message: 'the limit counting in the master the Sentinel named, as the gateway user' },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${(await logOf(gateway.process)).slice(-3_000)}`);
    });
  });
});

describe('redis: over TLS through Sentinels, both listening on TLS ports only', () => {
  let dir: string;
  let master: LocalRedis;
  let sentinel: LocalRedisSentinel;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let client: Redis;

  beforeAll(async () => {
    dir = await makeTempDir('sb-redis-sentinel-tls-');
    await writeFile(join(dir, 'master.password'), `${FIRST_PASSWORD}\n`);
    await writeFile(join(dir, 'sentinel.password'), `${SENTINEL_PASSWORD}\n`);
    const serverTls = { certFile: pki.server.certFile, keyFile: pki.server.keyFile, caFile: pki.caFile };
    [master, backend] = await Promise.all([startLocalRedis('redis-master-tls', { tls: { ...serverTls, only: true }, extraArgs: gatewayUser(FIRST_PASSWORD) }), startBackend({ name: 'api' })]);
    sentinel = await startLocalRedisSentinel({ host: master.host, port: master.tlsPort! }, MASTER_NAME, SENTINEL_PASSWORD, serverTls);
    // The test's own client reaches the master as the gateway must: over TLS, with a client certificate.
    const [ca, cert, key] = await Promise.all([readFile(pki.caFile), readFile(pki.gateway.certFile), readFile(pki.gateway.keyFile)]);
    client = new Redis({ host: master.host, port: master.tlsPort!, connectionName: TEST_CLIENT, tls: { ca, cert, key, servername: 'redis.test' } });
    gateway = await startGateway(
      configWith(
        `{ sentinels: ["127.0.0.1:${sentinel.port}"], name: ${MASTER_NAME}, tls: ${gatewayTls()}, auth: { username: gateway, passwordFile: "${join(dir, 'master.password')}" }, sentinelAuth: { passwordFile: "${join(dir, 'sentinel.password')}" }, timeout: 500ms, keyPrefix: "test:" }`,
        backend.port,
      ),
    );
  });
  afterAll(async () => {
    client?.disconnect();
    await gateway?.process.stop();
    await backend?.process.kill();
    await sentinel?.close();
    await master?.close();
    if (dir) await removeTempDir(dir);
  });

  it('asks the Sentinel over TLS for the master and counts there over TLS as its user', async () => {
    const tlsPort = String(master.tlsPort);
    await waitFor(
      async () => {
        const answer = await fetch(`${gateway.url}/limited`);
        expect(answer.status).toBe(200);
        const clients = await gatewayClients(client);
        return ((await client.keys('test:rl:*')).length > 0 && clients.some((each) => each.user === 'gateway' && each.laddr!.endsWith(`:${tlsPort}`))) || undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250, message: 'the limit counting over TLS in the master the Sentinel named over TLS, as the gateway user' },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${(await logOf(gateway.process)).slice(-3_000)}`);
    });
  });
});
