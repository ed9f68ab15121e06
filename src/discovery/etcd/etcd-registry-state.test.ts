import { describe, expect, it } from 'vitest';
import { EtcdRegistryState, MAX_REPORTED_IGNORED_KEYS, type EtcdEvent, type EtcdKeyValue } from './etcd-registry-state.ts';

const kv = (key: string, value = '{}'): EtcdKeyValue => ({ key: Buffer.from(key), value: Buffer.from(value) });
const put = (key: string, value = '{}'): EtcdEvent => ({ type: 'Put', kv: kv(key, value) });
const del = (key: string): EtcdEvent => ({ type: 'Delete', kv: kv(key, '') });
const names = (state: EtcdRegistryState, service: string): string[] => state.entries(service).map((entry) => entry.name).sort();
const text = (state: EtcdRegistryState, service: string, name: string): string | undefined => {
  const data = state.entries(service).find((entry) => entry.name === name)?.data;
  return data === undefined || data === null ? undefined : Buffer.from(data).toString('utf8');
};

describe('EtcdRegistryState', () => {
  it('groups a listing by service and names each entry after its instance id', () => {
    const state = new EtcdRegistryState('/services');
    const changed = state.replace([kv('/services/a/1', 'x'), kv('/services/a/2', 'y'), kv('/services/b/1')]);
    expect([...changed].sort()).toEqual(['a', 'b']);
    expect(names(state, 'a')).toEqual(['1', '2']);
    expect(state.entries('a')[0]).toMatchObject({ service: 'a' });
    expect(text(state, 'a', '2')).toBe('y');
  });

  it('reports a service that vanished between two listings as changed, with no entries', () => {
    const state = new EtcdRegistryState('/services');
    state.replace([kv('/services/a/1'), kv('/services/b/1')]);
    const changed = state.replace([kv('/services/b/1')]);
    expect([...changed].sort()).toEqual(['a', 'b']);
    expect(state.entries('a')).toEqual([]);
    expect(state.serviceNames()).toEqual(['b']);
  });

  it('applies puts and deletes in order and returns each touched service once', () => {
    const state = new EtcdRegistryState('/services');
    state.replace([kv('/services/a/1', 'old')]);
    const touched = state.apply([put('/services/a/1', 'new'), put('/services/a/2'), del('/services/a/2'), put('/services/c/9')]);
    expect([...touched].sort()).toEqual(['a', 'c']);
    expect(names(state, 'a')).toEqual(['1']);
    expect(text(state, 'a', '1')).toBe('new');
    expect(names(state, 'c')).toEqual(['9']);
  });

  it('forgets a service whose last key was deleted but still reports it as touched', () => {
    const state = new EtcdRegistryState('/services');
    state.replace([kv('/services/a/1')]);
    expect([...state.apply([del('/services/a/1')])]).toEqual(['a']);
    expect(state.entries('a')).toEqual([]);
    expect(state.serviceNames()).toEqual([]);
  });

  it('does not report a delete of a key it never held', () => {
    const state = new EtcdRegistryState('/services');
    expect([...state.apply([del('/services/a/1')])]).toEqual([]);
  });

  it('ignores keys of the wrong shape and reports each of them once', () => {
    const ignored: string[] = [];
    const state = new EtcdRegistryState('/services', (key) => ignored.push(key));
    state.replace([kv('/services/a'), kv('/services/a/1/x'), kv('/services/a/1')]);
    state.apply([put('/services/a'), del('/services/a/1/x'), put('/services//2')]);
    expect(names(state, 'a')).toEqual(['1']);
    expect(ignored).toEqual(['/services/a', '/services/a/1/x', '/services//2']);
  });

  it('remembers at most MAX_REPORTED_IGNORED_KEYS ignored keys, so keys that churn under the prefix do not grow it for ever', () => {
    const ignored: string[] = [];
    const state = new EtcdRegistryState('/services', (key) => ignored.push(key));
    const churn = Array.from({ length: 3 * MAX_REPORTED_IGNORED_KEYS }, (_, index) => put(`/services/a/1/lock-${index}`));
    state.apply(churn);
    state.apply(churn);
    expect(ignored.length).toBe(MAX_REPORTED_IGNORED_KEYS);
  });

  it('reads every key one level below a single-service prefix as an instance of that service, and keeps each full key', () => {
    const ignored: string[] = [];
    const state = new EtcdRegistryState('/backends/web', (key) => ignored.push(key), 'web');
    state.replace([kv('/backends/web/10.0.0.1:80', ''), kv('/backends/web/deeper/x'), kv('/backends/webber/1')]);
    expect(state.serviceNames()).toEqual(['web']);
    expect(names(state, 'web')).toEqual(['10.0.0.1:80']);
    expect(state.entries('web')[0]!.key).toBe('/backends/web/10.0.0.1:80');
    expect(ignored.sort()).toEqual(['/backends/web/deeper/x', '/backends/webber/1']);
    expect([...state.apply([del('/backends/web/10.0.0.1:80')])]).toEqual(['web']);
    expect(state.serviceNames()).toEqual([]);
  });
});
