import { describe, expect, it } from 'vitest';
import { decodeObject, ignoredKeyReason, objectKey, parseObjectKey, parseStoreUrl, peerKey, storeIdentity } from './store-layout.ts';

describe('store layout', () => {
  it('parses etcd and ZooKeeper store URLs with and without a root', () => {
    expect(parseStoreUrl('etcd://127.0.0.1:2379/sb')).toEqual({ kind: 'etcd', url: 'etcd://127.0.0.1:2379/sb', endpoints: ['http://127.0.0.1:2379'], root: '/sb' });
    expect(parseStoreUrl('etcds://a:1,b:2')).toMatchObject({ kind: 'etcd', endpoints: ['https://a:1', 'https://b:2'], root: '/switchboard' });
    expect(parseStoreUrl('zk://a:2181,b:2181/x/y')).toMatchObject({ kind: 'zookeeper', connectString: 'a:2181,b:2181', root: '/x/y' });
    expect(parseStoreUrl('zk://a:2181,b:2181/x/y')).not.toHaveProperty('watch');
    expect(parseStoreUrl('zk://a:2181/x?watch=one-shot')).toEqual({ kind: 'zookeeper', url: 'zk://a:2181/x?watch=one-shot', connectString: 'a:2181', root: '/x', watch: 'one-shot' });
    // No path: the default root, where watch=recursive applies (it is refused under a root of / only).
    expect(parseStoreUrl('zk://a:2181?watch=recursive')).toMatchObject({ root: '/switchboard', watch: 'recursive' });
  });

  it('refuses URLs it cannot use, naming the part', () => {
    expect(() => parseStoreUrl('file:/tmp/x')).toThrow(/expected etcd/);
    expect(() => parseStoreUrl('etcd://a:1/x?layout=native')).toThrow(/unknown parameter "layout"/);
    expect(() => parseStoreUrl('zk://a:1/x?watch=one-shot&service=s')).toThrow(/unknown parameter "service"/);
    expect(() => parseStoreUrl('etcd://a:1/x?watch=one-shot')).toThrow(/ZooKeeper \(zk:\/\/\) only/);
    expect(() => parseStoreUrl('zk://a:1/x?watch=sometimes')).toThrow(/unknown watch "sometimes"/);
    expect(() => parseStoreUrl('zk://a:1/?watch=one-shot')).toThrow(/below \//);
    expect(() => parseStoreUrl('zk://a:1/x?watch=one-shot&watch=recursive')).toThrow(/"watch" given more than once/);
    expect(() => parseStoreUrl('file:/x?watch=one-shot')).toThrow(/expected etcd/);
    expect(() => parseStoreUrl('etcd://nohost/x')).toThrow(/not host:port/);
    expect(() => parseStoreUrl('zk://a:1/')).toThrow(/below \//);
  });

  it('round-trips object keys and ignores peers and strays', () => {
    expect(parseObjectKey('/sb', objectKey('/sb', 'routes', 'api-v1'))).toEqual({ kind: 'routes', name: 'api-v1' });
    expect(parseObjectKey('/sb', peerKey('/sb', 'gw-1'))).toBeUndefined();
    expect(parseObjectKey('/sb', '/sb/routes/a/b')).toBeUndefined();
    expect(parseObjectKey('/sb', '/sbx/routes/a')).toBeUndefined();
  });

  it.each([
    ['/sb/route/x', '"route" is not a kind of object (services, middlewares, consumers, certificates, routes): did you mean "routes"?'],
    ['/sb/things/x', '"things" is not a kind of object (services, middlewares, consumers, certificates, routes)'],
    ['/sb/routes', "a kind's own key holds no object: an object's key is /sb/routes/<name>"],
    ['/sb/routes/a/b', "below /sb/routes/a: an object's key is /sb/routes/<name>, nothing after the name"],
    ['/sb/routes/a', undefined],
    ['/sb/peers/gw-1', undefined],
    ['/sbx/route/x', undefined],
  ])('says why the key %s is ignored: %s', (key, reason) => {
    expect(ignoredKeyReason('/sb', key)).toBe(reason);
  });

  it('names the key when a value is not JSON', () => {
    expect(() => decodeObject('/sb/routes/x', '{oops')).toThrow(/\/sb\/routes\/x: not JSON/);
  });

  it('says why a value is not JSON without quoting any of it, as it may hold a secret', () => {
    for (const text of ['{"headers":{"x-api-key":secret-1234}}', 'password: secret-1234', '{"headers":{"x-api-key":"secret-1234}}', '{"a":1} secret-1234']) {
      const failure = (() => {
        try {
          decodeObject('/sb/routes/x', text);
        } catch (error) {
          return (error as Error).message;
        }
      })();
      expect(failure, text).toMatch(/^\/sb\/routes\/x: not JSON \(/);
      expect(failure, text).not.toMatch(/secret-|1234|'[a-z]'/);
    }
  });
});

describe('storeIdentity', () => {
  it('names the store, not the spelling or the watch mode', () => {
    expect(storeIdentity('zk://a:1/x?watch=one-shot')).toBe(storeIdentity('zk://a:1/x'));
    expect(storeIdentity('zk://a:1/x/')).toBe(storeIdentity(' zk://a:1/x '));
    expect(storeIdentity('zk://a:1')).toBe(storeIdentity('zk://a:1/switchboard'));
    expect(storeIdentity('zk://a:1/x')).not.toBe(storeIdentity('zk://a:1/y'));
    expect(storeIdentity('zk://a:1/x')).not.toBe(storeIdentity('zk://b:1/x'));
    expect(storeIdentity('etcd://a:1/x')).not.toBe(storeIdentity('etcds://a:1/x'));
    expect(storeIdentity('etcd://a:1/x')).not.toBe(storeIdentity('zk://a:1/x'));
    expect(storeIdentity('not a url')).toBe('not a url');
  });
});
