import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../test/harness/certificates.ts';
import { parseAgentArgs } from './cli.ts';

const BASE = ['--registry', 'zk://127.0.0.1:2181/services', '--service', 'user', '--port', '8081'];

describe('parseAgentArgs', () => {
  it('fills defaults around the three required flags', () => {
    const options = parseAgentArgs(BASE, {});
    expect(options).toMatchObject({
      registry: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/services' },
      service: 'user',
      host: '127.0.0.1',
      port: 8081,
      weight: 1,
      id: 'user-127.0.0.1-8081',
      probe: { kind: 'tcp' },
      intervalMs: 2_000,
      rise: 2,
      fall: 3,
      drainMs: 5_000,
      command: [],
    });
  });

  it('reads every flag and keeps the command after --', () => {
    const options = parseAgentArgs(
      [...BASE, '--host', '10.0.0.5', '--weight', '10', '--metadata', 'version=v2', '--metadata', 'zone=eu-1', '--id', 'user-1',
        '--health', 'http:/healthz', '--interval', '500ms', '--rise', '1', '--fall', '2', '--drain', '0s', '--ttl', '3s',
        '--', 'node', 'server.js', '--port', '8081'],
      {},
    );
    expect(options).toMatchObject({
      host: '10.0.0.5', weight: 10, metadata: { version: 'v2', zone: 'eu-1' }, id: 'user-1', probe: { kind: 'http', path: '/healthz' },
      intervalMs: 500, rise: 1, fall: 2, drainMs: 0, ttlMs: 3_000, command: ['node', 'server.js', '--port', '8081'],
    });
  });

  it('reads SWITCHBOARD_* environment variables, and flags win over them', () => {
    const env = { SWITCHBOARD_REGISTRY: 'etcd://e1:2379,e2:2379/reg', SWITCHBOARD_SERVICE: 'order', SWITCHBOARD_PORT: '9000', SWITCHBOARD_METADATA: 'a=1,b=2', SWITCHBOARD_WEIGHT: '4' };
    expect(parseAgentArgs(['--weight', '7'], env)).toMatchObject({
      registry: { kind: 'etcd', endpoints: ['http://e1:2379', 'http://e2:2379'], prefix: '/reg' },
      service: 'order', port: 9000, weight: 7, metadata: { a: '1', b: '2' },
    });
  });

  it.each([
    { args: [], env: {}, pretty: false },
    { args: ['--pretty'], env: {}, pretty: true },
    { args: [], env: { SWITCHBOARD_PRETTY: '1' }, pretty: true },
    { args: [], env: { SWITCHBOARD_PRETTY: 'false' }, pretty: false },
  ])('turns human-readable logs on with $args and env $env: $pretty', ({ args, env, pretty }) => {
    expect(parseAgentArgs([...BASE, ...args], env).pretty).toBe(pretty);
  });

  it('refuses a SWITCHBOARD_PRETTY that is not a boolean', () => {
    expect(() => parseAgentArgs(BASE, { SWITCHBOARD_PRETTY: 'maybe' })).toThrow(/^--pretty: SWITCHBOARD_PRETTY="maybe" must be 1, true, 0 or false$/);
  });

  it("names Kubernetes' service link when SWITCHBOARD_PORT holds one and no --port is given", () => {
    const withoutPort = BASE.slice(0, 4);
    expect(() => parseAgentArgs(withoutPort, { SWITCHBOARD_PORT: 'tcp://10.0.0.7:8080' })).toThrow(
      /^--port: SWITCHBOARD_PORT="tcp:\/\/10\.0\.0\.7:8080" is the service link Kubernetes sets for a Service named switchboard, not this backend's port: pass --port$/,
    );
    // A --port given wins over the link, as over any variable.
    expect(parseAgentArgs([...withoutPort, '--port', '8081'], { SWITCHBOARD_PORT: 'tcp://10.0.0.7:8080' }).port).toBe(8081);
  });

  it("names Kubernetes' service link of a Service named switchboard-health in SWITCHBOARD_HEALTH_PORT, instead of a bad --health-port never given", () => {
    expect(() => parseAgentArgs(BASE, { SWITCHBOARD_HEALTH_PORT: 'tcp://10.0.0.8:9000' })).toThrow(
      /^--health-port: SWITCHBOARD_HEALTH_PORT="tcp:\/\/10\.0\.0\.8:9000" is the service link Kubernetes sets for a Service named switchboard-health, not this backend's health port: pass --health-port$/,
    );
    expect(parseAgentArgs([...BASE, '--health-port', '9001'], { SWITCHBOARD_HEALTH_PORT: 'tcp://10.0.0.8:9000' }).healthPort).toBe(9001);
  });

  it.each([
    { args: ['--service', 'user', '--port', '1'], error: /^--registry: is required \(or set SWITCHBOARD_REGISTRY\)$/ },
    { args: ['--registry', 'zk//x', '--service', 'user', '--port', '1'], error: /^--registry: invalid registry URL/ },
    { args: ['--registry', 'file:x.yaml', '--service', 'user', '--port', '1'], error: /^--registry: the agent registers in zk:\/\/ or etcd:\/\// },
    { args: ['--registry', 'etcd://127.0.0.1:2379?layout=go-micro', '--service', 'user', '--port', '1'], error: /^--registry: the agent writes the native layout/ },
    { args: ['--registry', 'zk://127.0.0.1:2181/real_server?layout=single', '--service', 'user', '--port', '1'], error: /^--registry: the agent writes the native layout/ },
    { args: [...BASE.slice(0, 2), '--port', '1'], error: /^--service: is required/ },
    { args: [...BASE.slice(0, 4), '--port', '0'], error: /^--port: "0" must be a whole number from 1 to 65535$/ },
    { args: [...BASE, '--weight', '-1'], error: /^--weight: / },
    // Hosts the gateway refuses in a registry entry (INSTANCE_HOST), named as --host rather than as the --id made of them.
    { args: [...BASE, '--host', '10.0.0.5:8081'], error: /^--host: "10\.0\.0\.5:8081" must be a host name, an IPv4 address or an IPv6 address, without brackets or port$/ },
    { args: [...BASE, '--host', '[::1]'], error: /^--host: "\[::1\]" must be a host name/ },
    { args: [...BASE, '--host', 'a b'], error: /^--host: "a b" must be a host name or IP address without spaces or slashes$/ },
    { args: [...BASE, '--host', ''], error: /^--host: "" must be 1 to 253 characters$/ },
    { args: [...BASE, '--interval', 'soon'], error: /^--interval: "soon" is not a duration/ },
    // A zero (or one rounding to 0 ms) is a duration, only not one these flags can take.
    { args: [...BASE, '--interval', '0s'], error: /^--interval: "0s" must be above 0 \(only --drain may be 0\)$/ },
    { args: [...BASE, '--timeout', '0.1ms'], error: /^--timeout: "0\.1ms" must be above 0/ },
    { args: [...BASE, '--health', 'https:/x'], error: /^--health: "https:\/x" must be tcp, http:\/path or grpc\[:service\]$/ },
    // A URL's host and port were taken as the path (GET //10.0.0.5:8081/healthz on --port): the backend never registered, silently.
    { args: [...BASE, '--health', 'http://10.0.0.5:8081/healthz'], error: /^--health: "http:\/\/10\.0\.0\.5:8081\/healthz" is a URL; give the path alone \(http:\/healthz\)/ },
    { args: [...BASE, '--health', 'https://backend.internal/healthz'], error: /^--health: "https:\/\/backend\.internal\/healthz" is a URL; give the path alone/ },
    { args: [...BASE, '--metadata', 'novalue'], error: /^--metadata: "novalue" must be key=value$/ },
    // ZooKeeper (jute.maxbuffer) and etcd (request size) would refuse it at each attempt, in their own words; gateways skip it.
    { args: [...BASE, '--metadata', `blob=${'x'.repeat(70_000)}`], error: /^--metadata: 70011 bytes of metadata make an entry of 70\d{3} bytes, more than the 65536 a registry entry may hold \(gateways skip a larger one\)$/ },
    { args: [...BASE, '--id', 'u'.repeat(257)], error: /^--id: is 257 characters, more than the 256 a registry entry may name$/ },
    { args: [...BASE, '--service', 's'.repeat(300)], error: /^--service: is 300 characters, more than the 256/ },
    { args: [...BASE, '--ttl', '500ms'], error: /^--ttl: "500ms" is below 1s/ },
    // Past 2^31 - 1 ms a Node timer fires after 1 ms: probes every millisecond, no drain, no deregistration bound.
    { args: [...BASE, '--interval', '1000d'], error: /^--interval: "1000d" is longer than 24 days, the longest a timer can wait$/ },
    { args: [...BASE, '--drain', '1y'], error: /^--drain: "1y" is longer than 24 days/ },
    { args: [...BASE, '--ttl', '25d'], error: /^--ttl: "25d" is longer than 24 days/ },
    { args: [...BASE, '--timeout', '30d'], error: /^--timeout: "30d" is longer than 24 days/ },
    { args: [...BASE, '--protocol', 'grpcs', '--health', 'http:/healthz'], error: /^--health: http:\/healthz cannot check a grpcs backend: use grpc\[:service\]/ },
    { args: [...BASE, '--colour', 'red'], error: /^--colour: unknown option/ },
    // Node's whole first sentence, not up to the first dot: the file name is whole.
    { args: [...BASE, 'g.yaml'], error: /^unexpected argument 'g\.yaml' \(the agent takes only options; a command to run goes after --\)$/ },
    { args: [...BASE, 'node', 'server.js'], error: /^unexpected argument 'node' \(/ },
    // Named as written: `--x` is no flag the user typed.
    { args: [...BASE, '-x'], error: /^-x: unknown option '-x'$/ },
    { args: [...BASE, '--ttl', '-x.yaml'], error: /^--ttl: option '--ttl' argument is ambiguous.*'--ttl=-x\.yaml'/ },
  ])('refuses $args with one line naming the flag, or the argument that is none', ({ args, error }) => {
    expect(() => parseAgentArgs(args, {})).toThrow(error);
  });
  it('takes a host name, an IPv4 or a bare IPv6 address as --host, as gateways do in an entry', () => {
    for (const host of ['backend-1.internal', '10.0.0.5', '::1', 'fd00::5']) expect(parseAgentArgs([...BASE, '--host', host, '--id', 'user-1'], {}).host).toBe(host);
  });

  it('reads --health-port (SWITCHBOARD_HEALTH_PORT), probing the registered port without it', () => {
    expect(parseAgentArgs(BASE, {}).healthPort).toBeUndefined();
    expect(parseAgentArgs([...BASE, '--health-port', '9090'], {})).toMatchObject({ port: 8081, healthPort: 9090, id: 'user-127.0.0.1-8081' });
    expect(parseAgentArgs(BASE, { SWITCHBOARD_HEALTH_PORT: '9091' }).healthPort).toBe(9091);
    expect(() => parseAgentArgs([...BASE, '--health-port', '0'], {})).toThrow(/^--health-port: "0" must be a whole number from 1 to 65535$/);
  });

  it('takes durations up to the longest a timer can wait', () => {
    expect(parseAgentArgs([...BASE, '--drain', '24d', '--interval', '2147483647ms'], {})).toMatchObject({ drainMs: 24 * 86_400_000, intervalMs: 2_147_483_647 });
  });

  it('reads --protocol and --health grpc[:service], and refuses an unknown protocol or probe', () => {
    expect(parseAgentArgs([...BASE, '--protocol', 'grpc', '--health', 'grpc'], {})).toMatchObject({ protocol: 'grpc', probe: { kind: 'grpc', service: '' } });
    expect(parseAgentArgs([...BASE, '--health', 'grpc:helloworld.Greeter'], {}).probe).toEqual({ kind: 'grpc', service: 'helloworld.Greeter' });
    expect(parseAgentArgs(BASE, {}).protocol).toBeUndefined();
    expect(() => parseAgentArgs([...BASE, '--protocol', 'ftp'], {})).toThrow(/--protocol: "ftp" must be one of http, https, h2c, h2, grpc, grpcs/);
    expect(() => parseAgentArgs([...BASE, '--health', 'grpc:'], {})).toThrow(/--health/);
  });
});

describe('parseAgentArgs: etcd TLS and authentication', () => {
  const ETCDS = ['--registry', 'etcds://127.0.0.1:2379/services', '--service', 'user', '--port', '8081'];
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-agent-etcd-'));
    await (await createTestCa(dir)).issue('client', 'agent', { clientAuth: true });
    writeFileSync(join(dir, 'password'), 'agent-secret\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the CA, client certificate, key and password file from flags and SWITCHBOARD_ETCD_* variables', () => {
    const options = parseAgentArgs([...ETCDS, '--etcd-ca-file', join(dir, 'ca.pem'), '--etcd-cert-file', join(dir, 'client.pem'), '--etcd-key-file', join(dir, 'client-key.pem')], {
      SWITCHBOARD_ETCD_USERNAME: 'agent',
      SWITCHBOARD_ETCD_PASSWORD_FILE: join(dir, 'password'),
    });
    const security = options.etcdCredentials?.clientSecurity();
    expect(security?.auth).toEqual({ username: 'agent', password: 'agent-secret' });
    expect(security?.credentials?.rootCertificate.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(security?.credentials?.certChain?.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(JSON.stringify(options)).not.toContain('agent-secret');
  });

  it('reads --zk-username and --zk-password-file into the ZooKeeper digest credentials', () => {
    const options = parseAgentArgs([...BASE, '--zk-username', 'agent'], { SWITCHBOARD_ZK_PASSWORD_FILE: join(dir, 'password') });
    expect(options.zooKeeperCredentials?.zooKeeperDigest()).toBe('agent:agent-secret');
    expect(options.etcdCredentials).toBeUndefined();
    expect(JSON.stringify(options)).not.toContain('agent-secret');
  });

  it.each([
    ['on a zk:// registry', [...BASE, '--etcd-username', 'agent', '--etcd-password-file', '/x'], '--etcd-username: applies to an etcd registry (etcd://, etcds://) only; ZooKeeper takes --zk-username and --zk-password-file'],
    ['--zk-username on an etcd registry', [...ETCDS, '--zk-username', 'agent', '--zk-password-file', '/x'], '--zk-username: applies to a ZooKeeper registry (zk://) only'],
    ['--zk-username without a password file', [...BASE, '--zk-username', 'agent'], '--zk-password-file: is needed with --zk-username'],
    ['a missing ZooKeeper password file', [...BASE, '--zk-username', 'agent', '--zk-password-file', '/nowhere/zk.password'], '--zk-password-file: cannot read /nowhere/zk.password (ENOENT)'],
    ['TLS files on a plain etcd:// registry', ['--registry', 'etcd://127.0.0.1:2379/services', '--service', 'user', '--port', '8081', '--etcd-ca-file', '/x.pem'], '--etcd-ca-file: needs an etcds:// registry URL (TLS)'],
    ['a missing CA file', [...ETCDS, '--etcd-ca-file', '/nowhere/ca.pem'], '--etcd-ca-file: cannot read /nowhere/ca.pem (ENOENT)'],
    ['a user without a password file', [...ETCDS, '--etcd-username', 'agent'], '--etcd-username: username and passwordFile go together'],
  ])('refuses %s, naming the flag', (_name, args, message) => {
    expect(() => parseAgentArgs(args, {})).toThrow(message);
  });
});
