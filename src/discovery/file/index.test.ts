import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { firstValueFrom, filter, type Observable } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keepWriting } from '../../../test/harness/keep-writing.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { invalidInstancesTotal } from '../../metrics.ts';
import type { ProviderSnapshot, ProviderStatus } from '../provider.ts';
import { FileProvider, parseInstanceList } from './index.ts';

const DEADLINE_MS = 5_000;

function until<T>(source$: Observable<T>, predicate: (value: T) => boolean): Promise<T> {
  return firstValueFrom(source$.pipe(filter(predicate)), { defaultValue: undefined as T }).then((value) => {
    if (value === undefined) throw new Error('stream completed before the condition held');
    return value;
  });
}

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${DEADLINE_MS} ms: ${what}`)), DEADLINE_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

describe('FileProvider', () => {
  let dir: string;
  let path: string;
  let provider: FileProvider;
  let seen: ProviderSnapshot[];

  /** Writes the file the way editors do: a temporary file renamed over the old one. */
  async function save(text: string): Promise<void> {
    const temporary = join(dir, `.tmp-${Math.random()}`);
    await writeFile(temporary, text);
    await rename(temporary, path);
  }

  const snapshotOf = (service: string, predicate: (snapshot: ProviderSnapshot) => boolean) =>
    withDeadline(until(provider.snapshots$, (s) => s.service === service && predicate(s)), `snapshot of ${service}`);
  const statusWhere = (predicate: (status: ProviderStatus) => boolean) => withDeadline(until(provider.status$, predicate), 'status');
  const ports = (snapshot: ProviderSnapshot) => snapshot.instances.map((instance) => instance.port);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-file-'));
    path = join(dir, 'instances.yaml');
    await save('services:\n  user:\n    - 127.0.0.1:8081\n    - { host: 127.0.0.1, port: 8082, weight: 5 }\n  order: []\n');
    provider = new FileProvider({ path, debounceMs: 10 });
    seen = [];
    provider.snapshots$.subscribe((snapshot) => seen.push(snapshot));
    provider.start();
    await statusWhere((status) => status.state === 'connected');
  });

  afterEach(async () => {
    await provider.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('publishes every service of the file with its weights', async () => {
    const user = await snapshotOf('user', () => true);
    expect(user.instances.map((i) => [i.port, i.weight])).toEqual([[8081, 1], [8082, 5]]);
    expect((await snapshotOf('order', () => true)).instances).toEqual([]);
  });

  it('applies an edit and empties a service that left the file', async () => {
    await save('services:\n  user:\n    - 127.0.0.1:9001\n');
    expect(ports(await snapshotOf('user', (s) => ports(s).includes(9001)))).toEqual([9001]);
    const order = seen.filter((snapshot) => snapshot.service === 'order');
    expect(order.at(-1)?.instances).toEqual([]);
  });

  it('refuses a broken file with its path and reason, keeps the lists, and applies the next good version', async () => {
    const before = seen.length;
    await save('services:\n  user: [127.0.0.1:1\n');
    const refused = await statusWhere((status) => status.state === 'stale');
    expect(refused.reason).toContain(path);
    expect(refused.reason).toMatch(/not valid YAML or JSON/);
    expect(seen.length).toBe(before);

    await save('services:\n  user:\n    - 127.0.0.1:9002\n');
    await statusWhere((status) => status.state === 'connected');
    expect(ports(await snapshotOf('user', (s) => ports(s).includes(9002)))).toEqual([9002]);
  });

  it('refuses a deleted file and keeps serving the last lists', async () => {
    await rm(path);
    const refused = await statusWhere((status) => status.state === 'stale');
    expect(refused.reason).toMatch(/cannot be read/);
    expect(seen.every((snapshot) => snapshot.service !== 'user' || snapshot.instances.length === 2)).toBe(true);
  });

  it('reports the latest refusal\'s reason while it stays refused: a broken file then deleted says it cannot be read, stale since the first refusal', async () => {
    await save('services:\n  user: [127.0.0.1:1\n');
    const broken = await statusWhere((status) => status.state === 'stale');
    expect(broken.reason).toMatch(/not valid YAML or JSON/);
    await rm(path);
    const deleted = await statusWhere((status) => status.state === 'stale' && /cannot be read/.test(status.reason ?? ''));
    expect(deleted.since).toBe(broken.since);
    await save('nothing: 1\n');
    const invalid = await statusWhere((status) => status.state === 'stale' && /Unrecognized key/.test(status.reason ?? ''));
    expect(invalid.reason).toContain(path);
    expect(invalid.since).toBe(broken.since);
    expect(seen.every((snapshot) => snapshot.service !== 'user' || snapshot.instances.length === 2)).toBe(true);
  });

  it('reads a file that keeps changing once its first change is the maximum wait old, though its events never leave a quiet time', async () => {
    await provider.close();
    // Each write's event restarts the 5 s quiet time, as long as the deadline of the wait below.
    const started = new FileProvider({ path, debounceMs: 5_000, maxWaitMs: 200 });
    provider = started;
    started.start();
    await withDeadline(until(started.snapshots$, (s) => s.service === 'user' && ports(s).includes(8081)), 'the first list');
    // Lists that only add instances, which apply without waiting for the file to settle (see settle.test.ts).
    const writer = keepWriting(path, (n) => `services:\n  user:\n    - 127.0.0.1:8081\n    - { host: 127.0.0.1, port: 8082, weight: 5 }\n    - 127.0.0.1:${9000 + (n % 1000)}\n  order: []\n`);
    try {
      const user = await withDeadline(until(started.snapshots$, (s) => s.service === 'user' && ports(s).some((port) => port >= 9000)), 'a list of the file that keeps changing');
      expect(user.instances).toHaveLength(3);
    } finally {
      await writer.stop();
    }
  });

  it('skips a bad entry and serves its siblings', async () => {
    await save('services:\n  user:\n    - 127.0.0.1:8081\n    - { host: 127.0.0.1, port: 99999 }\n    - 127.0.0.1:8083\n');
    const user = await snapshotOf('user', (s) => s.invalid === 1);
    expect(ports(user)).toEqual([8081, 8083]);
  });

  it('reports a bad entry anew, counted and with a new since, when its service leaves the file and comes back with it', async () => {
    const counted = async () => (await invalidInstancesTotal.get()).values.find((value) => value.labels.provider === provider.name && value.labels.service === 'pay')?.value ?? 0;
    const withPay = 'services:\n  user:\n    - 127.0.0.1:8081\n  pay:\n    - 127.0.0.1:7001\n    - { host: 127.0.0.1, port: 99999 }\n';
    await save(withPay);
    const first = await snapshotOf('pay', (s) => s.invalid === 1);
    expect(await counted()).toBe(1);
    await save('services:\n  user:\n    - 127.0.0.1:8081\n');
    await snapshotOf('pay', (s) => s.instances.length === 0 && s.invalid === 0);
    await save(withPay);
    const again = await snapshotOf('pay', (s) => s.invalid === 1 && s !== first);
    expect(await counted()).toBe(2);
    expect(again.invalidEntries![0]!.since).toBeGreaterThan(first.invalidEntries![0]!.since);
  });
});

describe('FileProvider with a Kubernetes-style volume', () => {
  let dir: string;
  let provider: FileProvider | undefined;

  afterEach(async () => {
    await provider?.close();
    provider = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes a new timestamped folder and swaps `..data` onto it by rename, as the kubelet's atomic writer updates a ConfigMap volume. */
  async function publish(version: number, text: string): Promise<void> {
    const folder = `..2026_12_03_${version}`;
    await mkdir(join(dir, folder));
    await writeFile(join(dir, folder, 'instances.yaml'), text);
    await symlink(folder, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  }

  it('applies a ConfigMap update, which renames ..data and never names the file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-file-k8s-'));
    await publish(1, 'services:\n  user: [127.0.0.1:8081]\n');
    await symlink('..data/instances.yaml', join(dir, 'instances.yaml'));
    const started = new FileProvider({ path: join(dir, 'instances.yaml'), debounceMs: 10 });
    provider = started;
    const user = (port: number) => withDeadline(until(started.snapshots$, (s) => s.service === 'user' && s.instances.some((i) => i.port === port)), `user on ${port}`);
    started.start();
    await user(8081);
    await publish(2, 'services:\n  user: [127.0.0.1:9001]\n');
    expect((await user(9001)).instances.map((i) => i.port)).toEqual([9001]);
  });

  it('starts on a folder that is not there yet, reports it, and serves the file once the folder appears', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-file-late-'));
    const folder = join(dir, 'lists');
    const started = new FileProvider({ path: join(folder, 'instances.yaml'), debounceMs: 10 });
    provider = started;
    started.start();
    const stale = await withDeadline(until(started.status$, (status) => status.state === 'stale'), 'a stale status');
    expect(stale.reason).toContain(folder);
    await mkdir(folder);
    await writeFile(join(folder, 'instances.yaml'), 'services:\n  user: [127.0.0.1:8081]\n');
    await withDeadline(until(started.status$, (status) => status.state === 'connected'), 'connected once the folder appeared');
    const user = await withDeadline(until(started.snapshots$, (s) => s.service === 'user'), 'the user list');
    expect(user.instances.map((i) => i.port)).toEqual([8081]);
  });

  it('logs each outage of its folder once at error, the retries at debug, and says when it watches the folder again', async () => {
    const LOST = 'watching the folder of the instance list failed; retrying (further failures at debug)';
    const RETRY = 'watching the folder of the instance list failed again; retrying';
    const BACK = 'watching the folder of the instance list again';
    dir = await mkdtemp(join(tmpdir(), 'sb-file-late-'));
    const folder = join(dir, 'lists');
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const at = (msg: string) => lines.filter((line) => line.msg === msg).map((line) => line.level);
    const started = new FileProvider({ path: join(folder, 'instances.yaml'), debounceMs: 10, log });
    provider = started;
    started.start();
    // The default backoff: 0.5 s, then 1 s.
    await waitFor(() => at(RETRY).length >= 2, { timeoutMs: 10_000, message: 'two retries while the folder is missing' });
    await mkdir(folder);
    await writeFile(join(folder, 'instances.yaml'), 'services:\n  user: [127.0.0.1:8081]\n');
    await waitFor(() => at(BACK).length === 1, { timeoutMs: 10_000, message: 'the folder watched once it appears' });
    // Removed while watched, then back with another list: a second outage, and the new list served.
    await rm(folder, { recursive: true });
    await waitFor(() => at(LOST).length === 2, { timeoutMs: 10_000, message: 'the second outage' });
    await mkdir(folder);
    await writeFile(join(folder, 'instances.yaml'), 'services:\n  user: [127.0.0.1:8082]\n');
    await waitFor(() => at(BACK).length === 2, { timeoutMs: 10_000, message: 'the folder watched again once created again' });
    await withDeadline(until(started.snapshots$, (s) => s.service === 'user' && s.instances.some((i) => i.port === 8082)), 'the new list');
    expect(at(LOST)).toEqual([50, 50]);
    expect(new Set(at(RETRY))).toEqual(new Set([20]));
    expect(at(BACK)).toEqual([30, 30]);
  });
});

describe('parseInstanceList', () => {
  it.each([
    { text: 'services: 3', reason: /services: / },
    { text: 'servics: {}', reason: /services: .*expected record.*; \(root\): Unrecognized key.*servics/ },
    { text: 'services:\n  user: {a: 1}', reason: /services\.user: / },
    { text: '{"services": {"user": [1]}}', reason: /services\.user\.0: / },
  ])('refuses $text naming the path and the place', ({ text, reason }) => {
    expect(() => parseInstanceList('/etc/sb/list.yaml', text)).toThrow(/^\/etc\/sb\/list\.yaml: /);
    expect(() => parseInstanceList('/etc/sb/list.yaml', text)).toThrow(reason);
  });

  it('reads JSON as well as YAML and names object entries by id or address', () => {
    const list = parseInstanceList('x.json', '{"services":{"user":[{"id":"u1","host":"h","port":1},{"host":"h","port":2},"h:3"]}}');
    expect(list.get('user')?.map((entry) => entry.name)).toEqual(['u1', 'h:2', 'h:3']);
  });
});
