import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir } from '../../test/harness/temp-dirs.ts';
import type { Instance } from './instance.ts';
import { defaultRegistrySnapshotPath, readRegistrySnapshot, writeRegistrySnapshot } from './registry-snapshot-file.ts';

const REGISTRY = 'zk:10.0.0.1:2181/services';
const a: Instance = { id: 'a', service: 'user', host: '10.0.0.1', port: 8080, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: { zone: 'x' } };
const b: Instance = { id: 'b', service: 'user', host: '10.0.0.2', port: 8080, weight: 0, protocol: 'h2c', metadata: {}, draining: true };

describe('registry snapshot file', () => {
  let path: string;

  beforeEach(async () => {
    path = join(await makeTempDir('sb-registry-snapshot-'), 'deep', 'snapshot.json');
  });

  it('reads back the sets it wrote, sorted, with when they were written, making the folder', async () => {
    const before = Date.now();
    await writeRegistrySnapshot(path, REGISTRY, new Map([['user', { instances: [b, a], revision: '7' }]]));
    const read = readRegistrySnapshot(path, REGISTRY);
    expect(read.snapshot?.services.get('user')).toEqual({ instances: [a, b], revision: '7' });
    expect(read.snapshot!.savedAt).toBeGreaterThanOrEqual(before - 1_000);
  });

  it('says a missing file is missing (a first start, no warning)', () => {
    expect(readRegistrySnapshot(path, REGISTRY)).toEqual({ snapshot: undefined, reason: `cannot read ${path}: ENOENT`, missing: true });
  });

  it('ignores the snapshot of another registry, naming both', async () => {
    await writeRegistrySnapshot(path, 'zk:10.0.0.9:2181/services', new Map([['user', { instances: [a], revision: '1' }]]));
    expect(readRegistrySnapshot(path, REGISTRY)).toEqual({ snapshot: undefined, reason: `${path} holds a snapshot of zk:10.0.0.9:2181/services, not of ${REGISTRY}` });
  });

  it('ignores a file that is not JSON, of another format, or with an invalid instance, saying why', async () => {
    await writeRegistrySnapshot(path, REGISTRY, new Map([['user', { instances: [a], revision: '1' }]]));
    const good = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    const cases: [string, RegExp][] = [
      ['{"format":1,', /is not JSON/],
      [JSON.stringify({ ...good, format: 2 }), /is not a registry snapshot: format/],
      [JSON.stringify({ format: 1, url: 'etcd://x' }), /is not a registry snapshot/],
      [JSON.stringify({ ...good, services: { user: { revision: '1', instances: [{ ...a, port: 0 }] } } }), /is not a registry snapshot: services\.user\.instances\.0\.port/],
      [JSON.stringify({ ...good, services: { user: { revision: '1', instances: [{ ...a, host: '10.0.0.1:80' }] } } }), /is not a registry snapshot: services\.user\.instances\.0\.host/],
      [JSON.stringify({ ...good, services: { orders: { revision: '1', instances: [a] } } }), /services\.orders holds an instance of user/],
    ];
    for (const [text, reason] of cases) {
      await writeFile(path, text);
      const read = readRegistrySnapshot(path, REGISTRY);
      expect(read.snapshot, text).toBeUndefined();
      expect(read.snapshot === undefined && read.reason, text).toMatch(reason);
      expect(read.snapshot === undefined && read.reason, text).toContain(path);
    }
  });

  it('names the default file after the config file and the provider', () => {
    expect(defaultRegistrySnapshotPath('/etc/sb/gateway.yaml', 'zk:10.0.0.1:2181/services')).toBe('/etc/sb/gateway.yaml.registry-snapshot.zk_10.0.0.1_2181_services.json');
  });
});
