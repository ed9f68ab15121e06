// `switchboard check` as CI pipelines run it: the real bin, real files, no gateway started.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { demoGatewayConfig } from '../../scripts/demo/gateway-config.ts';
import { makeCertificate, makeTempDir, REPO_ROOT, runSwitchboard, type CommandResult } from '../harness/index.ts';


/** Runs `switchboard check …` to its end (bounded). */
function runCheck(...args: string[]): Promise<CommandResult> {
  return runSwitchboard(['check', ...args]);
}

/** A TCP listener that counts the connections it is offered: a registry that must never be called. */
async function countingListener(): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, connections: () => count };
}

let listener: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (listener ? listener.close(() => resolve()) : resolve()));
  listener = undefined;
});

describe('switchboard check', () => {
  it('exits 0 on the configurations the repository ships (docker compose, demo, README)', async () => {
    const dir = await makeTempDir('sb-check-');
    const demo = join(dir, 'demo.yaml');
    writeFileSync(demo, demoGatewayConfig({ port: 8080, adminPort: 9180, zooKeeper: '127.0.0.1:2181', tcpPort: 9000 }));
    const readme = join(dir, 'readme.yaml');
    const readmeExample = /## Running the gateway\n\n```yaml\n([\s\S]*?)```/.exec(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'))?.[1];
    expect(readmeExample).toBeDefined();
    writeFileSync(readme, readmeExample!);
    const result = await runCheck('--config', join(REPO_ROOT, 'deploy/gateway.compose.yaml'), '--config', demo, '--config', readme);
    expect(result.stdout).toContain('gateway.compose.yaml: ok');
    expect(result.stdout).toContain('demo.yaml: ok');
    expect(result.stdout).toContain('readme.yaml: ok');
    expect(result.status).toBe(0);
  });

  it('prints every problem of a file with three errors (file, line, key, reason) and exits 2, connecting to no registry', async () => {
    const registry = await countingListener();
    listener = registry.server;
    const dir = await makeTempDir('sb-check-');
    const file = join(dir, 'broken.yaml');
    writeFileSync(
      file,
      [
        'listen: 127.0.0.1:0',
        `registries: [zk://127.0.0.1:${registry.port}/services]`,
        'services:',
        '  users:',
        '    balancer: weighted-round-robn',
        'routes:',
        '  - { path: /api/users, service: users, stripPrefx: true }',
        'limits:',
        '  maxHeaderSize: lots',
        '',
      ].join('\n'),
    );
    const result = await runCheck('--config', file);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^${escape(file)}:5: services\\.users\\.balancer: expected one of random, .*weighted-round-robin`));
    expect(lines[1]).toBe(`${file}:7: routes.0.stripPrefx: unknown field "stripPrefx" (did you mean "stripPrefix"?)`);
    expect(lines[2]).toMatch(new RegExp(`^${escape(file)}:9: limits\\.maxHeaderSize: \\S`));
    expect(lines[3]).toBe(`${file}: 3 problems`);
    expect(result.status).toBe(2);
    expect(registry.connections()).toBe(0);
  });

  it('reads the certificate files an https entry point names, as the gateway does when it opens its listeners', async () => {
    const dir = await makeTempDir('sb-check-');
    const good = await makeCertificate(dir, 'good', { key: 'ec', names: ['good.test'] });
    const other = await makeCertificate(dir, 'other', { key: 'ec', names: ['other.test'] });
    const file = join(dir, 'tls.yaml');
    const config = (keyFile: string) =>
      [
        'entryPoints:',
        '  websecure:',
        '    listen: 127.0.0.1:0',
        '    protocol: https',
        '    tls:',
        '      certificates:',
        `        - certFile: ${good.certFile}`,
        `          keyFile: ${keyFile}`,
        'routes: [{ namespace: true }]',
        '',
      ].join('\n');
    writeFileSync(file, config(good.keyFile));
    expect((await runCheck(file)).status).toBe(0);
    writeFileSync(file, config(other.keyFile));
    const mismatched = await runCheck(file);
    expect(mismatched.stdout).toContain(`${file}:8: entryPoints.websecure.tls.certificates.0.keyFile: ${other.keyFile}: the key does not match the certificate ${good.certFile}`);
    expect(mismatched.status).toBe(2);
    writeFileSync(file, config(join(dir, 'missing-key.pem')));
    const missing = await runCheck(file);
    expect(missing.stdout).toContain(`${file}:8: entryPoints.websecure.tls.certificates.0.keyFile: ${join(dir, 'missing-key.pem')}: cannot read the file (ENOENT)`);
    expect(missing.status).toBe(2);
  });

  it('refuses hop-by-hop headers in header edits, which broke every answer of the route (Trailer) or vanished unseen, and takes Connection: close on answers', async () => {
    const dir = await makeTempDir('sb-check-');
    const file = join(dir, 'hop.yaml');
    writeFileSync(
      file,
      [
        'listen: 127.0.0.1:0',
        'services: { users: { instances: [127.0.0.1:9], circuitBreaker: { fallback: { status: 503, headers: { Connection: keep-alive } } } } }',
        'middlewares:',
        '  h: { headers: { response: { set: { Upgrade: h2c, Connection: close } } } }',
        '  r: { respond: { status: 403, headers: { Connection: close } } }',
        'routes:',
        '  - { path: /a, service: users, responseHeaders: { set: { Trailer: x-checksum, Connection: close } } }',
        '  - { path: /b, service: users, requestHeaders: { set: { Connection: close, Proxy-Authorization: Basic eDp5 } }, middlewares: [h] }',
        '  - { path: /c, service: users, middlewares: [r] }',
        '',
      ].join('\n'),
    );
    const result = await runCheck('--config', file);
    const reason = (name: string) => `cannot set ${name}: a hop-by-hop header belongs to one connection, and the gateway keeps its own (RFC 9110 §7.6.1)`;
    expect(result.stdout.trim().split('\n')).toEqual([
      `${file}:2: services.users.circuitBreaker.fallback.headers: cannot set connection to "keep-alive" on an answer, only to close (the connection then closes after it): the gateway keeps the others alive itself, and would have to keep open one it closes`,
      `${file}:4: middlewares.h.headers.response.set: ${reason('upgrade')}`,
      `${file}:7: routes.0.responseHeaders.set: ${reason('trailer')}`,
      `${file}:8: routes.1.requestHeaders.set: ${reason('connection')}`,
      `${file}:8: routes.1.requestHeaders.set: ${reason('proxy-authorization')}`,
      `${file}: 5 problems`,
    ]);
    expect(result.status).toBe(2);
  });

  it('exits 2 and says why for a missing file or no file at all', async () => {
    const missing = await runCheck('--config', '/nonexistent/gateway.yaml');
    expect(missing.stdout).toContain('/nonexistent/gateway.yaml:-: (file): cannot read the file (ENOENT)');
    expect(missing.status).toBe(2);
    const none = await runCheck();
    expect(none.stderr).toContain('--config <file> is required');
    expect(none.status).toBe(2);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
