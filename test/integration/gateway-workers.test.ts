import { readFileSync } from 'node:fs';
import { readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerView } from '../../gateway/cluster/cluster-supervisor.ts';
import {
  acceptsConnections,
  connectZooKeeperClient,
  fourLetterWord,
  freePort,
  logOf,
  makeTempDir,
  ManagedProcess,
  readTail,
  refusingPort,
  REPO_ROOT,
  startGateway,
  startZooKeeper,
  waitFor,
  type GatewayProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';
import { descendantsOf, stillRunning } from '../harness/process-tree.ts';
import { parsePrometheusText, sampleValue } from '../harness/prometheus-text.ts';

const BACKEND_SCRIPT = join(REPO_ROOT, 'test/fixtures/backend.mjs');
const CHECK_INTERVAL_MS = 400;
const DRAIN_TIMEOUT_MS = 8_000;

interface Backend {
  readonly name: string;
  readonly port: number;
  readonly process: ManagedProcess;
}

/** A backend that logs every request it receives (`request <epoch ms> <method> <url>`), so the test can count health checks. */
async function startLoggingBackend(name: string): Promise<Backend> {
  const port = await freePort();
  const dir = await makeTempDir('sb-backend-');
  const process = new ManagedProcess({
    name: `backend:${name}`,
    command: globalThis.process.execPath,
    args: [BACKEND_SCRIPT, '--port', String(port), '--name', name, '--log-requests'],
    logFile: join(dir, 'backend.log'),
  });
  process.start();
  await waitFor(() => acceptsConnections(port), { timeoutMs: 10_000, message: `backend ${name} to listen` });
  return { name, port, process };
}

/** One request on a connection of its own (no keep-alive), so that each may land on either worker. */
function getFresh(url: string, timeoutMs?: number): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent: false, headers: { connection: 'close' }, ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}) }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: response.headers }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

function call(run: (done: (error: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
}

describe('workers: 2 — one primary, two workers sharing the entry point', () => {
  let zk: ZooKeeperCluster;
  let writer: Client;
  let gateway: GatewayProcess;
  let adminPort: number;
  const backends: Backend[] = [];
  // Two registries that have not connected at the start: an etcd that refuses, and a file that does not exist yet.
  let deadPort: number;
  let laterPath: string;

  const register = (backend: Backend) => {
    const payload = { id: backend.name, service: 'user', host: '127.0.0.1', port: backend.port, weight: 1, protocol: 'http', metadata: {} };
    return call((done) => writer.create(`/services/user/${backend.name}`, Buffer.from(JSON.stringify(payload)), zookeeper.CreateMode.EPHEMERAL, done));
  };
  const deregister = (backend: Backend) => call((done) => writer.remove(`/services/user/${backend.name}`, -1, done));

  async function workers(): Promise<WorkerView[]> {
    const response = await fetch(`http://127.0.0.1:${adminPort}/api/workers`);
    return (await response.json()) as WorkerView[];
  }

  /** Sends one request on a fresh connection and finds which worker served it, from the per-worker counts the primary keeps. */
  async function servedBy(): Promise<{ slot: number; name: string; configTag: unknown }> {
    const before = await workers();
    const answer = await getFresh(`${gateway.url}/who`);
    expect(answer.status, answer.body).toBe(200);
    const name = (JSON.parse(answer.body) as { name: string }).name;
    const after = await waitFor(
      async () => {
        const now = await workers();
        return now.some((worker, index) => worker.requests > before[index]!.requests) ? now : undefined;
      },
      { timeoutMs: 5_000, message: 'the serving worker to report its request' },
    );
    return { slot: after.findIndex((worker, index) => worker.requests > before[index]!.requests), name, configTag: answer.headers['x-config'] };
  }

  beforeAll(async () => {
    zk = await startZooKeeper();
    writer = await connectZooKeeperClient(zk.connectString);
    await call((done) => writer.mkdirp('/services/user', done));
    backends.push(await startLoggingBackend('a'), await startLoggingBackend('b'));
    for (const backend of backends) await register(backend);
    deadPort = await refusingPort();
    laterPath = join(await makeTempDir('sb-later-'), 'later.yaml');
    gateway = await startGateway(configText('one'));
    adminPort = gateway.adminPort;
    await waitFor(async () => (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: 20_000, message: 'both workers to listen' });
  }, 60_000);

  /** The gateway's file; every answer carries `x-config: <tag>`, so a test sees which file a worker applies. */
  const configText = (tag: string) => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
# heartbeatTimeout: the least accepted, so that a stopped worker is replaced within seconds.
workers: { count: 2, heartbeatTimeout: 3s }
accessLog: false
registries: [zk://${zk.connectString}/services, "etcd://127.0.0.1:${deadPort}/services", file:${laterPath}]
services:
  # removalGrace 0: an instance deregistered leaves at once, though it still passes its checks.
  user: { healthCheck: { path: /healthz, interval: ${CHECK_INTERVAL_MS}ms }, outlierDetection: false, removalGrace: 0s }
routes:
  # A service no registry lists.
  - { path: /orders, service: orders }
  - { path: /, service: user, responseHeaders: { set: { x-config: ${tag} } } }
shutdown: { drainTimeout: ${DRAIN_TIMEOUT_MS / 1_000}s }
`;

  afterAll(async () => {
    await gateway?.process.kill();
    for (const backend of backends) await backend.process.kill();
    writer?.close();
    await zk?.close();
  });

  it('serves requests on both workers, two processes besides the primary', async () => {
    const slots = new Set<number>();
    await waitFor(async () => slots.add((await servedBy()).slot).size === 2, { timeoutMs: 30_000, message: 'both workers to serve a request' });
    const view = await workers();
    expect(view.map((worker) => worker.state)).toEqual(['listening', 'listening']);
    expect(new Set(view.map((worker) => worker.pid)).size).toBe(2);
    expect(view.map((worker) => worker.pid)).not.toContain(gateway.process.pid);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`);
    expect([ready.status, await ready.json()]).toEqual([200, { ready: true, reason: null }]);
  });

  it("starts every worker with the gateway's 32 MB semi-spaces, though the primary was started without them", async () => {
    const argsOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const pids = (await workers()).map((worker) => worker.pid!);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(argsOf(pid)).toContain('--max-semi-space-size=32');
    expect(argsOf(gateway.process.pid!).join(' ')).not.toContain('semi-space');
  });

  it("serves /metrics as valid text summing every worker's metrics with the primary's own", async () => {
    const scrape = async () => parsePrometheusText(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text());
    const served = async () => (await workers()).reduce((sum, worker) => sum + worker.requests, 0);
    await servedBy();
    // Requests (counted by the workers) match the attempts the workers reported; no retries happen here.
    await waitFor(async () => {
      const families = await scrape();
      const requests = families.get('switchboard_requests_total')?.samples.reduce((sum, sample) => sum + sample.value, 0) ?? 0;
      return requests > 0 && requests === (await served());
    }, { timeoutMs: 10_000, message: 'switchboard_requests_total to sum both workers' });
    // The instance gauge is the primary's alone, once, not once per process.
    expect(sampleValue(await scrape(), 'switchboard_instances', { service: 'user', state: 'total' })).toBe(2);
  });

  it('holds one ZooKeeper session for the whole gateway, not one per worker', async () => {
    // `cons` lists every client connection with its session id; ours (the writer) is one of them.
    const sessions = async () => [...(await fourLetterWord('127.0.0.1', zk.nodes[0]!.clientPort, 'cons')).matchAll(/sid=0x[0-9a-f]+/g)].length;
    await waitFor(async () => (await sessions()) >= 2, { message: "the gateway's session to show in cons" });
    expect(await sessions()).toBe(2);
  });

  it('checks each backend once per interval, as one process would, not once per worker', async () => {
    const checks = async (backend: Backend) =>
      [...(await readTail(backend.process.logFile, 1 << 20)).matchAll(/^request (\d+) GET \/healthz$/gm)].map((match) => Number(match[1]));
    const before = (await checks(backends[0]!)).length;
    const times = await waitFor(async () => {
      const all = await checks(backends[0]!);
      return all.length >= before + 8 ? all.slice(before) : undefined;
    }, { timeoutMs: 30_000, message: 'eight more health checks of backend a' });
    // One checker waits at least the interval after each result before the next probe, so n probes
    // span at least (n − 1) intervals; two checkers would fit about twice as many into that span.
    const span = times.at(-1)! - times[0]!;
    expect(times.length - 1, `checks at ${times.join(', ')}`).toBeLessThanOrEqual(Math.floor(span / CHECK_INTERVAL_MS) + 1);
  });

  it('brings an instance registered in ZooKeeper to every worker, and its removal too', async () => {
    const added = await startLoggingBackend('c');
    backends.push(added);
    await register(added);
    const seen = new Set<number>();
    await waitFor(async () => {
      const served = await servedBy();
      if (served.name === 'c') seen.add(served.slot);
      return seen.size === 2;
    }, { timeoutMs: 60_000, message: 'instance c to answer through both workers' });

    await deregister(added);
    // With three instances in round-robin, c answers one request in three; six in a row without it, per worker, means it is gone there.
    const withoutC = [0, 0];
    await waitFor(async () => {
      const served = await servedBy();
      withoutC[served.slot] = served.name === 'c' ? 0 : withoutC[served.slot]! + 1;
      return withoutC.every((count) => count >= 6);
    }, { timeoutMs: 60_000, message: 'both workers to stop sending to c' });
  });

  it('applies a changed file on every worker, and keeps it everywhere when the next one is refused', async () => {
    await gateway.writeConfig(configText('two'));
    const updated = new Set<number>();
    await waitFor(async () => {
      const served = await servedBy();
      if (served.configTag === 'two') updated.add(served.slot);
      return updated.size === 2;
    }, { timeoutMs: 30_000, message: 'both workers to answer under the new file' });

    // Valid YAML with a misspelt key: refused by validation, so the x-config: three it also sets never applies.
    await gateway.writeConfig(configText('three').replace('service: user, responseHeaders', 'servce: user, responseHeaders'));
    await waitFor(async () => /configuration refused; the running configuration stays/.test(await logOf(gateway.process)), { timeoutMs: 10_000, message: 'the primary to refuse the file' });
    const tags: unknown[][] = [[], []];
    await waitFor(async () => {
      const served = await servedBy();
      tags[served.slot]!.push(served.configTag);
      return tags.every((seen) => seen.length >= 3);
    }, { timeoutMs: 30_000, message: 'each worker to answer three requests after the refusal' });
    expect(tags.map((seen) => [...new Set(seen)])).toEqual([['two'], ['two']]);
  });

  it('reads its file again on SIGHUP, a change no folder event reported, keeps the running file when the one read is refused, and no process ends (SIGUSR1 and SIGUSR2 neither)', async () => {
    const resolved = (text: string) => text.replaceAll('{{port}}', String(gateway.port)).replaceAll('{{adminPort}}', String(adminPort));
    /** The tag each worker answers with, from one request each (more when one worker serves several in a row). */
    const tagsOfBothWorkers = async () => {
      const tags: unknown[] = [undefined, undefined];
      await waitFor(async () => {
        const served = await servedBy();
        tags[served.slot] = served.configTag;
        return tags.every((tag) => tag !== undefined);
      }, { timeoutMs: 30_000, message: 'both workers to answer' });
      return tags;
    };
    // The file becomes a symlink into another folder: that rename is an event of the watched folder
    // (the gateway applies "linked"), but writes to the linked file are none.
    const linked = join(await makeTempDir('sb-linked-'), 'gateway.yaml');
    await writeFile(linked, resolved(configText('linked')));
    const link = join(dirname(gateway.configPath), '.link.yaml');
    await symlink(linked, link);
    await rename(link, gateway.configPath);
    await waitFor(async () => (await tagsOfBothWorkers()).every((tag) => tag === 'linked'), { timeoutMs: 30_000, message: 'both workers to answer under the linked file' });

    await writeFile(linked, resolved(configText('hup')));
    // A SIGHUP to the process group reaches the workers as well as the primary: each one here.
    const before = await workers();
    // SIGUSR1 and SIGUSR2 (a log rotation's) reach them all first: Node's default would end each on SIGUSR2.
    for (const signal of ['SIGUSR1', 'SIGUSR2', 'SIGHUP'] as const) {
      for (const worker of before) process.kill(worker.pid!, signal);
      process.kill(gateway.process.pid!, signal);
    }
    await waitFor(async () => (await tagsOfBothWorkers()).every((tag) => tag === 'hup'), { timeoutMs: 30_000, message: 'both workers to answer under the file read on SIGHUP' });
    expect((await workers()).map(({ pid, state }) => ({ pid, state }))).toEqual(before.map(({ pid }) => ({ pid, state: 'listening' })));

    // A bad file read on SIGHUP is refused as an edit is: the running file stays on both workers.
    const refusals = async () => (await readFile(gateway.process.logFile, 'utf8')).split('configuration refused; the running configuration stays').length - 1;
    const refused = await refusals();
    await writeFile(linked, resolved(configText('bad')).replace('service: user, responseHeaders', 'servce: user, responseHeaders'));
    process.kill(gateway.process.pid!, 'SIGHUP');
    await waitFor(async () => (await refusals()) > refused, { timeoutMs: 10_000, message: 'the primary to refuse the file read on SIGHUP' });
    expect(await tagsOfBothWorkers()).toEqual(['hup', 'hup']);
    expect(gateway.process.running).toBe(true);
    expect((await workers()).map(({ pid }) => pid)).toEqual(before.map(({ pid }) => pid));
  });

  it('replaces a worker killed with SIGKILL while the other keeps serving, and keeps its counts in /metrics', async () => {
    const requestsTotal = async () =>
      parsePrometheusText(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).get('switchboard_requests_total')?.samples.reduce((sum, sample) => sum + sample.value, 0) ?? 0;
    // A scrape that counts what both workers served, the victim's share included.
    const served = await waitFor(async () => {
      const view = await workers();
      const total = await requestsTotal();
      return view.every((worker) => worker.requests > 0) && total === view.reduce((sum, worker) => sum + worker.requests, 0) ? total : undefined;
    }, { timeoutMs: 10_000, message: '/metrics to count every request both workers served' });
    const [victim] = await workers();
    process.kill(victim!.pid!, 'SIGKILL');
    await waitFor(async () => (await workers())[0]!.restarts === 1, { timeoutMs: 10_000, message: 'the primary to notice the exit' });
    for (let index = 0; index < 10; index += 1) expect((await getFresh(`${gateway.url}/who`)).status).toBe(200);
    const replaced = await waitFor(async () => {
      const view = await workers();
      return view[0]!.state === 'listening' && view[0]!.pid !== victim!.pid ? view : undefined;
    }, { timeoutMs: 20_000, message: 'a new worker in slot 0' });
    expect(replaced[1]!.restarts).toBe(0);
    // A counter that went back would read as a reset to Prometheus (and a spike in rate()).
    expect(await requestsTotal()).toBeGreaterThanOrEqual(served);
    const slots = new Set<number>();
    await waitFor(async () => slots.add((await servedBy()).slot).size === 2, { timeoutMs: 30_000, message: 'the new worker to serve too' });
    expect(await logOf(gateway.process)).toMatch(/worker exited; replacing it/);
  });

  it('replaces a worker whose event loop stopped once its heartbeat is missed, while the other keeps serving', async () => {
    const [victim, other] = await workers();
    // SIGSTOP: its sockets stay open but it runs nothing, as when a middleware or a regular expression spins.
    process.kill(victim!.pid!, 'SIGSTOP');
    // node:cluster hands the stopped worker at most one connection (it waits for an answer that never
    // comes before handing it another): every other request is served by the other worker.
    const answers = await Promise.all(Array.from({ length: 6 }, () => getFresh(`${gateway.url}/who`, 3_000).catch(() => undefined)));
    expect(answers.filter((answer) => answer?.status === 200).length).toBeGreaterThanOrEqual(5);
    const replaced = await waitFor(async () => {
      const view = await workers();
      return view[0]!.state === 'listening' && view[0]!.pid !== victim!.pid ? view : undefined;
    }, { timeoutMs: 20_000, message: 'the stopped worker to be replaced' });
    expect([replaced[0]!.restarts, replaced[1]!.restarts, replaced[1]!.pid]).toEqual([victim!.restarts + 1, other!.restarts, other!.pid]);
    const metrics = parsePrometheusText(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text());
    expect(sampleValue(metrics, 'switchboard_worker_restarts_total', { reason: 'unresponsive' })).toBe(1);
    const warnings = (await logOf(gateway.process)).split('\n').filter((line) => line.includes('worker unresponsive (no heartbeat); killing it'));
    expect(warnings.map((line) => (JSON.parse(line) as { worker: number }).worker)).toEqual([0]);
  });

  it('gives a worker started after a health change the verdict in force: a replacement never sends to an instance failing its checks', async () => {
    const routable = async (name: string) => {
      const body = (await (await fetch(`http://127.0.0.1:${adminPort}/api/services`)).json()) as { services: { name: string; instances: { id: string; routable: boolean }[] }[] };
      return body.services.find((service) => service.name === 'user')?.instances.find((instance) => instance.id === name)?.routable;
    };
    const b = backends.find((backend) => backend.name === 'b')!;
    await fetch(`http://127.0.0.1:${b.port}/health/fail`, { method: 'POST' });
    await waitFor(async () => (await routable('b')) === false, { timeoutMs: 20_000, message: "the primary's checks to fail b" });
    const [, victim] = await workers();
    process.kill(victim!.pid!, 'SIGKILL');
    await waitFor(async () => {
      const view = await workers();
      return view[1]!.state === 'listening' && view[1]!.pid !== victim!.pid;
    }, { timeoutMs: 20_000, message: 'a new worker in slot 1' });
    // The replacement was forked after b failed: it learns so from the snapshot replayed at its start, not from a change.
    const namesOfNewWorker: string[] = [];
    await waitFor(async () => {
      const served = await servedBy();
      if (served.slot === 1) namesOfNewWorker.push(served.name);
      return namesOfNewWorker.length >= 6;
    }, { timeoutMs: 60_000, message: 'six requests through the new worker' });
    expect(namesOfNewWorker).toEqual(Array(6).fill('a'));
    await fetch(`http://127.0.0.1:${b.port}/health/ok`, { method: 'POST' });
    await waitFor(async () => (await routable('b')) === true, { timeoutMs: 20_000, message: "the primary's checks to pass b again" });
  });

  it('starts a replacement worker on the address the others listen on after a reload moved the listener, which waits for a restart', async () => {
    // A listener's address applies only after a restart; the workers took the rest of the file (x-config: moved).
    const moved = await refusingPort();
    await gateway.writeConfig(configText('moved').replace('listen: 127.0.0.1:{{port}}', `listen: 127.0.0.1:${moved}`));
    const updated = new Set<number>();
    await waitFor(async () => {
      const served = await servedBy();
      if (served.configTag === 'moved') updated.add(served.slot);
      return updated.size === 2;
    }, { timeoutMs: 30_000, message: 'both workers to answer under the new file, on the address they listen on' });
    const [victim] = await workers();
    process.kill(victim!.pid!, 'SIGKILL');
    // Started on the new file's address it could not bind the port (held): it would never listen.
    await waitFor(async () => {
      const view = await workers();
      return view[0]!.state === 'listening' && view[0]!.pid !== victim!.pid;
    }, { timeoutMs: 20_000, message: 'a new worker in slot 0, listening' });
    const tags: unknown[] = [];
    await waitFor(async () => {
      const served = await servedBy();
      if (served.slot === 0) tags.push(served.configTag);
      return tags.length >= 2;
    }, { timeoutMs: 30_000, message: 'two requests on the old address through the new worker' });
    expect(tags).toEqual(['moved', 'moved']);
    expect(await acceptsConnections(moved)).toBe(false);
    // The primary compares with the file the workers listen from: the move waits, and moving back undoes it, unwarned.
    const pending = async () => ((await (await fetch(`http://127.0.0.1:${adminPort}/api/config`)).json()) as { restartRequired: string[] }).restartRequired;
    expect(await pending()).toEqual(['entryPoints']);
    const warnings = async () => (await logOf(gateway.process)).split('these settings apply only after a restart').length - 1;
    const warned = await warnings();
    await gateway.writeConfig(configText('one'));
    await waitFor(async () => (await pending()).length === 0, { timeoutMs: 30_000, message: 'the primary to apply the file that listens where the workers do' });
    expect(await warnings()).toBe(warned);
  });

  it("names in every worker's 503 the registries not yet connected, as the primary's explain does, and stops naming one once it connects", async () => {
    /** The distinct messages of six answers to /orders on fresh connections (each worker answers some). */
    const messages = async () => {
      const seen = new Set<string>();
      for (let index = 0; index < 6; index += 1) {
        const answer = await getFresh(`${gateway.url}/orders`, 5_000);
        expect(answer.status, answer.body).toBe(503);
        seen.add((JSON.parse(answer.body) as { message: string }).message);
      }
      return [...seen];
    };
    const everyAnswerSays = async (message: string) => {
      let seen: string[] = [];
      await waitFor(async () => (seen = await messages()).join() === message, { timeoutMs: 20_000, message: `every worker to answer "${message}"` }).catch((error: Error) => {
        throw new Error(`${error.message}; the answers said: ${JSON.stringify(seen)}`);
      });
    };
    const notes = async () => ((await (await fetch(`http://127.0.0.1:${adminPort}/api/explain?path=/orders`)).json()) as { notes: string[] }).notes.filter((note) => note.includes('no instance set loaded yet'));
    const etcd = `etcd:http://127.0.0.1:${deadPort}/services`;
    // The primary names them in its explain; each worker (replacements started since included) hears of them from the primary.
    await everyAnswerSays('registries etcd, file not yet connected: no instance set loaded yet');
    expect(await notes()).toEqual([`no instance set loaded yet for service "orders": registries ${etcd}, file:${laterPath} not yet connected`]);
    // ZooKeeper lists `user`: its instances are what is registered, whatever the others do.
    expect((await getFresh(`${gateway.url}/who`)).status).toBe(200);

    await writeFile(laterPath, 'services: {}\n');
    await everyAnswerSays('registry etcd not yet connected: no instance set loaded yet');
    expect(await notes()).toEqual([`no instance set loaded yet for service "orders": registry ${etcd} not yet connected`]);
  });

  it('drains in-flight requests on every worker on SIGTERM, then the whole process tree exits', async () => {
    // Held requests on fresh connections until both workers serve at least one.
    const held: Promise<{ status: number; body: string }>[] = [];
    await waitFor(async () => {
      held.push(getFresh(`${gateway.url}/stream/held-${held.length}`));
      await new Promise((resolve) => setImmediate(resolve));
      const view = await waitFor(async () => {
        const now = await workers();
        return now.reduce((sum, worker) => sum + worker.inFlight, 0) === held.length ? now : undefined;
      }, { timeoutMs: 10_000, message: 'the held request to be in flight' });
      return view.every((worker) => worker.inFlight >= 1);
    }, { timeoutMs: 30_000, message: 'a held request on each worker' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    const tree = descendantsOf(gateway.process.pid!).filter((record) => record.command.includes('switchboard'));
    expect(tree.length).toBe(2);

    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the entry point to stop accepting' });
    // The primary's admin listener stays up while the workers drain, and says not ready.
    expect(await (await fetch(`http://127.0.0.1:${adminPort}/ready`)).json()).toEqual({ ready: false, reason: 'draining: the gateway is stopping' });
    // Released on every backend (a release for a request a backend never saw is kept there and harmless).
    for (let index = 0; index < held.length; index += 1) {
      for (const backend of backends) await fetch(`http://127.0.0.1:${backend.port}/release/held-${index}`, { method: 'POST' });
    }
    for (const answer of await Promise.all(held)) {
      expect(answer.status).toBe(200);
      expect(answer.body).toMatch(/^first [ab]\nsecond\n$/);
    }
    const exit = await gateway.process.waitForExit(DRAIN_TIMEOUT_MS + 5_000);
    expect(exit.code).toBe(0);
    await waitFor(() => stillRunning(tree).length === 0, { timeoutMs: 5_000, message: 'every worker to exit' });
  });
});

describe('workers: 2 — a replacement worker of a gateway with several entry points, after a reload', () => {
  // Entry points beside `web`: a worker starts them one after the other, each bind a round trip to the primary.
  const OTHERS = Array.from({ length: 12 }, (_, index) => `e${index + 1}`);
  let pagePath: string;
  /** `page`: a middleware no route uses, whose body file the file names; `listen`: where web listens. */
  const configText = (tag: string, options: { page?: boolean; listen?: string } = {}) => `
entryPoints:
  web: { listen: ${options.listen ?? '127.0.0.1:{{port}}'} }
${OTHERS.map((name) => `  ${name}: { listen: 127.0.0.1:{{port:${name}}} }`).join('\n')}
admin: 127.0.0.1:{{adminPort}}
workers: { count: 2, heartbeatTimeout: 3s }
accessLog: false
services:
  stub: { instances: [127.0.0.1:9] }
middlewares:
  answer: { respond: { status: 200, body: ${tag} } }
${options.page ? `  page: { respond: { status: 200, bodyFile: ${JSON.stringify(pagePath)} } }` : ''}
routes:
  - { path: /, service: stub, middlewares: [answer] }
`;
  let gateway: GatewayProcess;

  async function workers(): Promise<WorkerView[]> {
    return (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/workers`)).json()) as WorkerView[];
  }

  /** Whether the primary applies the file answering `tag` (a request got it) and every worker reported taking that file. */
  async function everyWorkerOn(tag: string): Promise<boolean> {
    if ((await getFresh(gateway.url)).body !== tag) return false;
    const view = (await workers()) as (WorkerView & { config: { current: boolean } | null })[];
    return view.every((worker) => worker.config?.current === true);
  }

  beforeAll(async () => {
    pagePath = join(await makeTempDir('sb-page-'), 'page.html');
    await writeFile(pagePath, 'a page\n');
    gateway = await startGateway(configText('started', { page: true }));
    await waitFor(async () => (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: 20_000, message: 'both workers to listen' });
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.kill();
  });

  it('never answers a request with the routes of the file the gateway started with, not even while its other entry points start', async () => {
    await gateway.writeConfig(configText('reloaded'));
    // Two answers in a row on fresh connections: both workers took the new file.
    await waitFor(() => everyWorkerOn('reloaded'), { timeoutMs: 30_000, message: 'both workers to take the new file' });
    const [victim] = await workers();
    const bodies = new Map<string, number>();
    let replaced = false;
    // Requests on fresh connections all through the replacement's start; every other one goes to it once it listens on web.
    const loop = async () => {
      while (!replaced) {
        const answer = await getFresh(gateway.url, 5_000).catch(() => undefined);
        if (answer) bodies.set(answer.body, (bodies.get(answer.body) ?? 0) + 1);
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    process.kill(victim!.pid!, 'SIGKILL');
    const answered = () => [...bodies.values()].reduce((sum, count) => sum + count, 0);
    try {
      await waitFor(async () => {
        const view = await workers();
        return view[0]!.pid !== victim!.pid && view[0]!.state === 'listening';
      }, { timeoutMs: 30_000, message: 'a new worker in slot 0, listening' });
      // Half of these go to the new worker.
      const before = answered();
      await waitFor(() => answered() >= before + 40, { timeoutMs: 30_000, message: 'requests answered by both workers' });
    } finally {
      replaced = true;
      await Promise.all(loops);
    }
    expect(Object.fromEntries(bodies)).toEqual({ reloaded: expect.any(Number) });
  });

  it('starts a replacement on the address the others listen on when a file only the started configuration named is gone since', async () => {
    // The reload moved web (that waits for a restart) and dropped the page, whose file then went.
    const moved = await refusingPort();
    await gateway.writeConfig(configText('moved', { listen: `127.0.0.1:${moved}` }));
    await waitFor(() => everyWorkerOn('moved'), { timeoutMs: 30_000, message: 'both workers to take the new file' });
    await rm(pagePath);
    const [victim] = await workers();
    process.kill(victim!.pid!, 'SIGKILL');
    await waitFor(async () => {
      const view = await workers();
      return view[0]!.pid !== victim!.pid && view[0]!.state === 'listening';
    }, { timeoutMs: 30_000, message: 'a new worker in slot 0, listening' });
    // Each worker answers every other fresh connection on web: the new one too, under the file in force.
    const bodies = new Set<string>();
    for (let index = 0; index < 6; index += 1) bodies.add((await getFresh(gateway.url, 5_000)).body);
    expect([...bodies]).toEqual(['moved']);
    expect(await acceptsConnections(moved)).toBe(false);
  });
});

