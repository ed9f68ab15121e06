// `switchboard config` as scripts and CI run it: the real bin against a real gateway's admin API and a
// real etcd, whose keys are read back with an independent etcd3 client.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeTempDir, REPO_ROOT, runSwitchboard, startEtcd, startGateway, waitFor, type CommandResult, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';
import { parsePrometheusText, sampleValue } from '../harness/prometheus-text.ts';

const TOKEN = 'config-cli-integration-token';
const ROOT = '/switchboard-cli';

/** Runs `switchboard config …` to its end (bounded), with no admin token from the environment unless `env` gives one. */
function runConfig(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
  return runSwitchboard(['config', ...args], { SWITCHBOARD_ADMIN_TOKEN: '', ...env });
}

const FILE = `
listen: 127.0.0.1:8080
services:
  order: { balancer: round-robin }
routes:
  - { name: orders, path: /orders, service: order }
  - { name: order-admin, path: /admin/orders, service: order, stripPrefix: true }
`;

describe('switchboard config against a gateway and etcd', () => {
  let etcd: EtcdCluster;
  let reader: Etcd3;
  let gateway: GatewayProcess;
  let adminUrl: string;
  let dir: string;
  const config = (...args: string[]) => runConfig([...args, '--admin', adminUrl], { SWITCHBOARD_ADMIN_TOKEN: TOKEN });
  const stored = async (kind: string, name: string) => {
    const text = await reader.get(`${ROOT}/${kind}/${name}`).string();
    return text === null ? undefined : (JSON.parse(text) as unknown);
  };
  const file = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  beforeAll(async () => {
    etcd = await startEtcd();
    reader = new Etcd3({ hosts: etcd.endpoints });
    dir = await makeTempDir('sb-config-cli-');
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
configStore: etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${ROOT}
`);
    const adminPort = gateway.adminPort;
    adminUrl = `http://127.0.0.1:${adminPort}`;
  });

  afterAll(async () => {
    await gateway?.process.stop();
    reader?.close();
    await etcd?.close();
  });

  it('applies a file, diffs it clean, diffs a change with exit 1, deletes, and prunes what the file dropped', async () => {
    const original = await file('gateway.yaml', FILE);
    const applied = await config('apply', '-f', original);
    expect(applied).toMatchObject({ status: 0 });
    expect(applied.stdout).toMatch(/^services\/order created \(revision \d+\)\nroutes\/orders created .*\nroutes\/order-admin created .*\n$/);
    // Keys that configure one gateway are named, not stored.
    expect(applied.stderr).toContain('not stored (they configure one gateway): listen');
    expect(await stored('routes', 'orders')).toEqual({ name: 'orders', path: '/orders', service: 'order' });
    expect(await stored('services', 'order')).toEqual({ balancer: 'round-robin' });

    expect(await config('diff', '-f', original)).toMatchObject({ status: 0, stdout: expect.stringContaining('no differences') as unknown });
    expect((await config('apply', '-f', original)).stdout).toBe('services/order unchanged\nroutes/orders unchanged\nroutes/order-admin unchanged\n');

    const changed = await file('changed.yaml', FILE.replace('path: /orders,', 'path: /orders/v2,'));
    const diff = await config('diff', '-f', changed);
    expect(diff.status).toBe(1);
    expect(diff.stdout).toContain('~ routes/orders');
    expect(diff.stdout).toContain('- path: /orders\n');
    expect(diff.stdout).toContain('+ path: /orders/v2');
    expect(diff.stdout).not.toContain('order-admin');

    expect(await config('delete', 'routes', 'order-admin')).toMatchObject({ status: 0, stdout: 'routes/order-admin deleted\n' });
    expect(await stored('routes', 'order-admin')).toBeUndefined();
    expect(await config('delete', 'routes', 'order-admin')).toMatchObject({ status: 2, stderr: expect.stringContaining('not in the store') as unknown });

    expect((await config('apply', '-f', original)).stdout).toContain('routes/order-admin created');
    const dropped = await file('dropped.yaml', FILE.replace(/ {2}- \{ name: order-admin.*\n/, ''));
    const kept = await config('apply', '-f', dropped);
    expect(kept.stdout).toContain('routes/order-admin not in');
    expect(await stored('routes', 'order-admin')).toBeDefined();
    const pruned = await config('apply', '-f', dropped, '--prune');
    expect(pruned).toMatchObject({ status: 0 });
    expect(pruned.stdout).toContain('routes/order-admin deleted');
    expect(await stored('routes', 'order-admin')).toBeUndefined();
    expect(await stored('routes', 'orders')).toBeDefined();

    const got = await config('get', 'routes');
    expect(got).toMatchObject({ status: 0 });
    expect(got.stdout).toContain('name: orders');
    expect(got.stdout).not.toContain('balancer');
  });

  it('applies a file of hundreds of routes several at a time, so the gateway composes far fewer configurations than objects', async () => {
    const count = 240;
    const routes = Array.from({ length: count }, (_, index) => `  - { name: many-${index}, path: /many/${index}, service: order }`);
    const many = await file('many.yaml', `services:\n  order: { balancer: round-robin }\nroutes:\n${routes.join('\n')}\n`);
    const applied = async () => {
      const response = await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return sampleValue(parsePrometheusText(await response.text()), 'switchboard_config_reloads_total', { result: 'applied' }) ?? 0;
    };
    const before = await applied();
    const result = await config('apply', '-f', many);
    expect(result).toMatchObject({ status: 0 });
    // Every object is reported, in the file's order within its kind.
    const lines = result.stdout.trim().split('\n');
    expect(lines.filter((line) => /^routes\/many-\d+ created \(revision \d+\)$/.test(line)).map((line) => line.split(' ')[0])).toEqual(routes.map((_, index) => `routes/many-${index}`));
    expect(await stored('routes', `many-${count - 1}`)).toEqual({ name: `many-${count - 1}`, path: `/many/${count - 1}`, service: 'order' });
    const running = async () => (await (await fetch(`${adminUrl}/api/config`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { routes: { name?: string }[] };
    await waitFor(async () => (await running()).routes.filter((route) => route.name?.startsWith('many-')).length === count, { timeoutMs: 30_000, message: `the gateway to route all ${count} routes` });
    // One write at a time, each arrived alone and cost one composition of the whole configuration
    // (thousands of routes took minutes); written together, they are composed together.
    const compositions = (await applied()) - before;
    process.stdout.write(`apply of ${count} routes: ${compositions} compositions\n`);
    expect(compositions).toBeLessThan(count / 2);
    const pruned = await config('apply', '-f', await file('few.yaml', FILE), '--prune');
    expect(pruned).toMatchObject({ status: 0 });
    expect(await stored('routes', 'many-0')).toBeUndefined();
  });

  it('prints the warnings the gateway answers, one a line on stderr with the object\'s path, and exits 0; on --dry-run too, writing nothing', async () => {
    const objects = await file('warned.yaml', `
services:
  warned-svc: { balancer: round-robin }
middlewares:
  warned-guard: { hsts: { maxAge: 1y } }
routes:
  - { name: warned, path: /warned, service: warned-svc, middlewares: [nope] }
  - { name: guarded, path: /guarded, service: warned-svc, middlewares: [warned-guard] }
`);
    const warning = `${objects}: routes[warned]: references middleware "nope" that is declared neither in the file nor in the store (warning from the gateway at --admin)\n`;
    const dryRun = await config('apply', '-f', objects, '--dry-run');
    expect(dryRun.status, dryRun.stderr).toBe(0);
    expect(dryRun.stdout).toContain('routes/warned would be created\n');
    expect(dryRun.stdout).toContain('dry run: nothing was written\n');
    // Judged together: the route naming the middleware the file adds is no warning.
    const warnings = (result: { stderr: string }) => result.stderr.split('\n').filter((line) => line.endsWith('(warning from the gateway at --admin)')).map((line) => `${line}\n`);
    expect(warnings(dryRun)).toEqual([warning]);
    expect(await stored('routes', 'warned')).toBeUndefined();
    expect(await stored('services', 'warned-svc')).toBeUndefined();

    const applied = await config('apply', '-f', objects);
    expect(applied.status, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('routes/warned created');
    expect(warnings(applied)).toEqual([warning]);
    expect(await stored('routes', 'warned')).toBeDefined();

    const running = async () => (await (await fetch(`${adminUrl}/api/config`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()).includes('"/guarded"');
    await waitFor(running, { timeoutMs: 30_000, message: 'the guarded route to be applied' });
    const deleted = await config('delete', 'middlewares', 'warned-guard');
    expect(deleted).toMatchObject({ status: 0, stdout: 'middlewares/warned-guard deleted\n' });
    expect(deleted.stderr).toBe('routes[guarded]: references middleware "warned-guard" that is declared neither in the file nor in the store (warning from the gateway at --admin)\n');
    for (const [kind, name] of [['routes', 'warned'], ['routes', 'guarded'], ['services', 'warned-svc']]) await config('delete', kind!, name!);
  });

  it('prints the warnings of the writes made before a failed one, says which write failed, and exits 2', async () => {
    // Each route is valid and the file is one dry run's (under 4 MiB), but a write is of one object,
    // at most 1 MiB: the gateway answers huge's write 413 after the service and warned are written.
    const objects = await file('fails-midway.yaml', `
services:
  midway-svc: { balancer: round-robin }
routes:
  - { name: midway-warned, path: /midway-warned, service: midway-svc, middlewares: [nope] }
  - { name: midway-huge, path: /midway-huge, service: midway-svc, requestHeaders: { set: { x-big: "${'a'.repeat(1_200_000)}" } } }
`);
    const result = await config('apply', '-f', objects);
    expect(result.status, result.stderr).toBe(2);
    expect(result.stdout).toMatch(/^services\/midway-svc created \(revision \d+\)\nroutes\/midway-warned created \(revision \d+\)\n$/);
    expect(result.stderr.split('\n')).toEqual([
      `${objects}: routes[midway-warned]: references middleware "nope" that is declared neither in the file nor in the store (warning from the gateway at --admin)`,
      `${objects}: routes/midway-huge was not written: PUT /api/routes/midway-huge: a stored object is at most 1048576 bytes (413 SB_ADMIN_BODY_TOO_LARGE)`,
      `${objects}: stopped at a failed write: 2 changes made before it (listed above), the rest of the file not written; run apply again once the cause is dealt with`,
      '',
    ]);
    expect(await stored('routes', 'midway-warned')).toBeDefined();
    expect(await stored('routes', 'midway-huge')).toBeUndefined();
    for (const [kind, name] of [['routes', 'midway-warned'], ['services', 'midway-svc']]) await config('delete', kind!, name!);
  });

  it.each([
    ['before its head', false],
    ['in its body', true],
  ])('says a write whose answer was lost %s may have been made, not that it was not, and exits 2', async (_case, headFirst) => {
    // A proxy before the admin API that loses the answer to one write once the gateway has made it,
    // as a gateway restarting or a connection dropped after the request reached it does.
    const proxy = createServer((request, response) => {
      const lose = request.method === 'PUT' && request.url?.startsWith('/api/routes/lost-answer') === true;
      const forward = httpRequest(`${adminUrl}${request.url}`, { method: request.method, headers: request.headers }, (answer) => {
        if (lose) {
          answer.resume();
          // The head sent and the body cut short, or nothing at all.
          if (headFirst) response.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'content-length': '1000' }).write('{');
          setImmediate(() => request.socket.destroy());
          return;
        }
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      });
      request.pipe(forward);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const objects = await file('lost-answer.yaml', 'services:\n  lost-answer-svc: { balancer: round-robin }\nroutes:\n  - { name: lost-answer, path: /lost-answer, service: lost-answer-svc }\n');
      const result = await runConfig(['apply', '-f', objects, '--admin', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`], { SWITCHBOARD_ADMIN_TOKEN: TOKEN });
      expect(result.status, result.stderr).toBe(2);
      // The gateway made it: saying it was not would send the operator to write it again by hand.
      expect(await stored('routes', 'lost-answer')).toEqual({ name: 'lost-answer', path: '/lost-answer', service: 'lost-answer-svc' });
      expect(result.stderr).not.toContain('was not written');
      expect(result.stderr).toContain(`${objects}: routes/lost-answer may have been written (no answer came; switchboard config get routes lost-answer shows whether): `);
      // It reached the gateway: not "cannot reach … is the gateway running?".
      expect(result.stderr).not.toContain('cannot reach');
      expect(result.stderr).toContain(headFirst ? 'was cut short' : 'the connection dropped before an answer');
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
    for (const [kind, name] of [['routes', 'lost-answer'], ['services', 'lost-answer-svc']]) await config('delete', kind!, name!);
  });

  it('after a failed deletion, warns of a route a deletion made before it left naming what is gone, though the gateway has read that deletion', async () => {
    const before = await file('race-before.yaml', 'services:\n  race-svc: { balancer: round-robin }\n  race-gone: { balancer: round-robin }\nmiddlewares:\n  race-mw: { rateLimit: { average: 5 } }\nroutes:\n  - { name: race-r, path: /race-r, service: race-svc, middlewares: [race-mw] }\n');
    expect((await config('apply', '-f', before)).status).toBe(0);
    // --prune deletes race-mw (race-r still names it), then race-gone: the proxy holds race-gone's
    // deletion until the gateway has read race-mw's (race-r refused), then makes it fail (412).
    const proxy = createServer((request, response) => {
      const fail = request.method === 'DELETE' && request.url?.startsWith('/api/services/race-gone') === true;
      const forward = async () => {
        if (fail) {
          await waitFor(async () => {
            const listing = (await (await fetch(`${adminUrl}/api/store`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { objects: { kind: string; name: string; refused?: unknown }[] };
            return listing.objects.some((object) => object.name === 'race-r' && object.refused !== undefined);
          });
        }
        const outgoing = httpRequest(`${adminUrl}${request.url}`, { method: request.method, headers: fail ? { ...request.headers, 'if-match': '"1"' } : request.headers }, (answer) => {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        });
        request.pipe(outgoing);
      };
      void forward();
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const after = await file('race-after.yaml', 'services:\n  race-svc: { balancer: round-robin }\nroutes:\n  - { name: race-r, path: /race-r, service: race-svc, middlewares: [race-mw] }\n');
      const result = await runConfig(['apply', '-f', after, '--prune', '--admin', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`], { SWITCHBOARD_ADMIN_TOKEN: TOKEN });
      expect(result.status, result.stderr).toBe(2);
      expect(result.stdout).toContain('middlewares/race-mw deleted\n');
      expect(await stored('middlewares', 'race-mw')).toBeUndefined();
      expect(result.stderr).toContain(`${after}: services/race-gone was not deleted: `);
      expect(result.stderr).toContain(`${after}: routes[race-r]: references middleware "race-mw"`);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
    for (const [kind, name] of [['routes', 'race-r'], ['services', 'race-svc'], ['services', 'race-gone']]) await config('delete', kind!, name!);
  });

  it('judges a file past the whole-file dry run\'s 4 MiB object by object on --dry-run, as the gateway answers 413 to it, and writes nothing', async () => {
    // Five routes of about 950 kB each: every one under a write's 1 MiB, together past the 4 MiB of a dry run of many.
    const big = 'b'.repeat(950_000);
    const routes = Array.from({ length: 5 }, (_, index) => `  - { name: past-limit-${index}, path: /past-limit/${index}, service: past-limit-svc, requestHeaders: { set: { x-big: "${big}" } } }`);
    const objects = await file('past-limit.yaml', `services:\n  past-limit-svc: { balancer: round-robin }\nroutes:\n${routes.join('\n')}\n  - { name: past-limit-warned, path: /past-limit-warned, service: past-limit-svc, middlewares: [nope] }\n`);
    // The premise: the gateway refuses this file as one dry run.
    const whole = {
      objects: [
        { kind: 'services', name: 'past-limit-svc', value: { balancer: 'round-robin' } },
        ...routes.map((_, index) => ({ kind: 'routes', name: `past-limit-${index}`, value: { name: `past-limit-${index}`, path: `/past-limit/${index}`, service: 'past-limit-svc', requestHeaders: { set: { 'x-big': big } } } })),
      ],
    };
    const refused = await fetch(`${adminUrl}/api/store?dryRun=true`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(whole) });
    expect(refused.status).toBe(413);
    await refused.body?.cancel();

    const dryRun = await config('apply', '-f', objects, '--dry-run');
    expect(dryRun.status, dryRun.stderr).toBe(0);
    // Then the store's other objects, from the tests before (kept: no --prune).
    const expected = ['services/past-limit-svc', ...routes.map((_, index) => `routes/past-limit-${index}`), 'routes/past-limit-warned'].map((id) => `${id} would be created\n`).join('');
    expect(dryRun.stdout.startsWith(expected), dryRun.stdout).toBe(true);
    expect(dryRun.stdout.endsWith('dry run: nothing was written\n')).toBe(true);
    // The object-by-object dry runs' warnings, each judged beside the store as it is.
    expect(dryRun.stderr).toBe(`${objects}: routes[past-limit-warned]: references middleware "nope" that is declared neither in the file nor in the store (warning from the gateway at --admin)\n`);
    expect(await stored('services', 'past-limit-svc')).toBeUndefined();
    expect(await stored('routes', 'past-limit-0')).toBeUndefined();
  });

  it('refuses an invalid file with the key path and writes nothing', async () => {
    const invalid = await file('invalid.yaml', 'routes:\n  - { name: bad, path: no-slash, service: order }\n');
    const result = await config('apply', '-f', invalid);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('routes[bad].path');
    expect(result.stderr).toContain('nothing was written');
    expect(await stored('routes', 'bad')).toBeUndefined();
  });

  it('diffs and applies objects holding secrets as unchanged when the store holds the same, though the listing redacts them', async () => {
    const secrets = (password: string) => `
consumers:
  ops: { passwords: ["${password}"] }
middlewares:
  upstream-auth: { headers: { request: { set: { authorization: "Bearer upstream-secret-123" } } } }
`;
    const hash = '$2y$10$N9kT7OtxKOj7yIBfnMbV/.o8zrf6vuMoa1m1RjIdffQhdPN6NAXPW';
    const original = await file('secrets.yaml', secrets(hash));
    const applied = await config('apply', '-f', original);
    expect(applied.status, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('consumers/ops created');
    const revision = await reader.get(`${ROOT}/consumers/ops`).exec();

    const clean = await config('diff', '-f', original);
    expect(clean.stdout).not.toContain('~ ');
    expect(clean.stdout).not.toContain('redacted');
    const again = await config('apply', '-f', original);
    expect(again.stdout).toContain('middlewares/upstream-auth unchanged\nconsumers/ops unchanged\n');
    // Not written again: the key's revision did not move.
    expect((await reader.get(`${ROOT}/consumers/ops`).exec()).kvs[0]!.mod_revision).toBe(revision.kvs[0]!.mod_revision);

    // A secret that did change still shows, against the redacted listing.
    const rotated = await file('rotated.yaml', secrets(hash.replace('NAXPW', 'NAXPX')));
    const diff = await config('diff', '-f', rotated);
    expect(diff.status).toBe(1);
    expect(diff.stdout).toContain('~ consumers/ops');
    expect(diff.stdout).not.toContain('upstream-auth');
    await config('delete', 'consumers', 'ops');
    await config('delete', 'middlewares', 'upstream-auth');
  });

  it('asks the gateway to judge every object before writing any, so one it refuses beside its own file leaves nothing written', async () => {
    // Valid on its own schema; this gateway's file has no redis section, so it refuses the middleware.
    const objects = await file('needs-redis.yaml', `
services:
  shared-svc: { balancer: round-robin }
middlewares:
  shared-limit: { rateLimit: { average: 10, policy: redis } }
routes:
  - { name: shared-limited, path: /shared-limited, service: shared-svc, middlewares: [shared-limit] }
`);
    const refused = await config('apply', '-f', objects);
    expect(refused.status, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`${objects}: middlewares.shared-limit.rateLimit.policy: policy redis needs the top-level redis: section (refused by the gateway at --admin)`);
    expect(refused.stderr).toContain(`${objects}: 1 problem; nothing was written`);
    expect(refused.stdout).toBe('');
    // Not the service written before the middleware in the file's order, nor the route.
    expect(await stored('services', 'shared-svc')).toBeUndefined();
    expect(await stored('routes', 'shared-limited')).toBeUndefined();
    expect(await stored('middlewares', 'shared-limit')).toBeUndefined();
  });

  it('judges the file beside each --against gateway file before writing anything, and refuses what one of those gateways would refuse', async () => {
    const objects = await file('web-only.yaml', `
services:
  edge-svc: { balancer: round-robin }
routes:
  - { name: web-only, path: /web-only, service: edge-svc, entryPoints: [web] }
`);
    // A gateway with no entry point named web (this one has it: its listen is web) would skip the route.
    const edge = await file('edge-gateway.yaml', 'entryPoints:\n  public: { listen: 127.0.0.1:9000 }\n');
    const refused = await config('apply', '-f', objects, '--against', edge);
    expect(refused.status, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`${objects}: routes[web-only].entryPoints.0: no entry point is named "web" (known: public) (beside ${edge})`);
    expect(refused.stderr).toContain('nothing was written');
    // Not even the service the route names, which the gateway alone would have taken.
    expect(await stored('services', 'edge-svc')).toBeUndefined();
    expect(await config('diff', '-f', objects, '--against', edge)).toMatchObject({ status: 2 });

    const broken = await file('broken-gateway.yaml', 'entryPoints: [not, a, map]\n');
    const unusable = await config('apply', '-f', objects, '--against', broken);
    expect(unusable.status).toBe(2);
    expect(unusable.stderr).toContain(`--against: ${broken}: entryPoints`);

    // Its entry point uses a middleware its own file declares: no object is refused for that.
    const both = await file('both-gateway.yaml', 'entryPoints:\n  web: { listen: 127.0.0.1:8080, middlewares: [tagged] }\n  public: { listen: 127.0.0.1:9000 }\nmiddlewares:\n  tagged: { headers: { response: { set: { x-edge: "1" } } } }\n');
    const applied = await config('apply', '-f', objects, '--against', both, '--against', await file('web-gateway.yaml', 'listen: 127.0.0.1:8081\n'));
    expect(applied.status, applied.stderr).toBe(0);
    expect(await stored('routes', 'web-only')).toMatchObject({ entryPoints: ['web'] });
  });

  it('finishes an apply whose output reader has left, as `| head -1` has after its line', async () => {
    const objects = await file('many.yaml', `
services:
  piped-a: { balancer: round-robin }
  piped-b: { balancer: round-robin }
routes:
  - { name: piped-a, path: /piped-a, service: piped-a }
  - { name: piped-b, path: /piped-b, service: piped-b }
`);
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), 'config', 'apply', '-f', objects, '--admin', adminUrl], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      env: { ...process.env, SWITCHBOARD_ADMIN_TOKEN: TOKEN },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // The reader is gone before the first line, as a `head -1` that got its line is: closed at once
    // rather than after the first chunk, which on a loaded machine may already hold every line.
    child.stdout.destroy();
    const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
    for (const [kind, name] of [['services', 'piped-a'], ['services', 'piped-b'], ['routes', 'piped-a'], ['routes', 'piped-b']] as const) {
      expect(await stored(kind, name), `${kind}/${name}`).toBeDefined();
    }
  });

  it('keeps its exit status 2 when the reader of its stderr has left too, as with `2>&1 | head -1`', async () => {
    const invalid = await file('piped-invalid.yaml', 'routes:\n  - { name: piped-bad, path: no-slash, service: order }\n');
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), 'config', 'apply', '-f', invalid, '--admin', adminUrl], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      env: { ...process.env, SWITCHBOARD_ADMIN_TOKEN: TOKEN },
    });
    child.stdout.destroy();
    child.stderr.destroy();
    // 2, the invalid file's status; not 1, which diff and explain give other meanings (changes, not proxied).
    expect(await new Promise<number | null>((resolve) => child.once('close', resolve))).toBe(2);
  });

  it('says what is wrong with the token or the address, with exit 2', async () => {
    const original = await file('gateway.yaml', FILE);
    const noToken = await runConfig(['apply', '-f', original, '--admin', adminUrl]);
    expect(noToken).toMatchObject({ status: 2, stderr: expect.stringContaining('401') as unknown });
    expect(noToken.stderr).toContain('--token');
    const unreachable = await runConfig(['get', '--admin', `http://127.0.0.1:${await freePort()}`, '--token', TOKEN]);
    expect(unreachable).toMatchObject({ status: 2, stderr: expect.stringContaining('cannot reach the admin API') as unknown });
  });
});
