import { describe, expect, it } from 'vitest';
import { parseRegistryUrl } from './registry-url.ts';

describe('parseRegistryUrl', () => {
  it.each([
    { url: 'zk://127.0.0.1:2181/services', expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/services' } },
    { url: 'zk://a:1,b:2,c:3', expected: { kind: 'zookeeper', connectString: 'a:1,b:2,c:3', root: '/services' } },
    { url: 'zk://[::1]:2181/apps/prod/', expected: { kind: 'zookeeper', connectString: '[::1]:2181', root: '/apps/prod' } },
    { url: 'etcd://127.0.0.1:2379/registry', expected: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/registry' } },
    { url: 'etcds://e1:2379,e2:2379', expected: { kind: 'etcd', endpoints: ['https://e1:2379', 'https://e2:2379'], prefix: '/services' } },
    { url: 'file:./instances.yaml', expected: { kind: 'file', path: './instances.yaml' } },
    { url: 'file:///etc/sb/instances.yaml', expected: { kind: 'file', path: '/etc/sb/instances.yaml' } },
    { url: 'zk://127.0.0.1:2181/', expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/' } },
    { url: 'etcd://127.0.0.1:2379//', expected: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/' } },
    {
      url: 'zk://127.0.0.1:2181/real_server?layout=single',
      expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/real_server', layout: { name: 'native', service: 'real_server' } },
    },
    {
      url: 'zk://127.0.0.1:2181/apps/rs?layout=single&service=real_server',
      expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/apps/rs', layout: { name: 'native', service: 'real_server' } },
    },
    {
      url: 'etcd://127.0.0.1:2379?layout=go-micro',
      expected: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/micro/registry', layout: { name: 'go-micro' } },
    },
    {
      url: 'etcd://127.0.0.1:2379/micro-registry?layout=go-micro',
      expected: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/micro-registry', layout: { name: 'go-micro' } },
    },
    { url: 'zk://127.0.0.1:2181?layout=dubbo', expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/dubbo', layout: { name: 'dubbo' } } },
    {
      url: 'zk://127.0.0.1:2181/backends?layout=registrator',
      expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/backends', layout: { name: 'registrator' } },
    },
    {
      url: 'etcd://127.0.0.1:2379/backends/web?layout=registrator&service=web',
      expected: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/backends/web', layout: { name: 'registrator', service: 'web' } },
    },
    { url: 'zk://127.0.0.1:2181/services?watch=one-shot', expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/services', watch: 'one-shot' } },
    {
      url: 'zk://127.0.0.1:2181/backends?layout=registrator&watch=recursive',
      expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/backends', layout: { name: 'registrator' }, watch: 'recursive' },
    },
    { url: 'zk://127.0.0.1:2181?layout=dubbo&watch=one-shot', expected: { kind: 'zookeeper', connectString: '127.0.0.1:2181', root: '/dubbo', layout: { name: 'dubbo' }, watch: 'one-shot' } },
  ])('parses $url', ({ url, expected }) => {
    expect(parseRegistryUrl(url)).toEqual(expected);
  });

  it.each([
    { url: '127.0.0.1:2181', reason: /expected zk:\/\/, etcd:\/\/ or file:/ },
    { url: 'consul://a:1', reason: /unknown scheme "consul"/ },
    { url: 'zk:a:1', reason: /expected zk:\/\/host:port/ },
    { url: 'zk:///services', reason: /no host:port/ },
    { url: 'zk://a/services', reason: /"a" is not host:port/ },
    { url: 'etcd://a:70000', reason: /out of range/ },
    { url: 'zk://a:1/x//y', reason: /not a valid path/ },
    { url: 'file:', reason: /needs a path/ },
    { url: 'zk://a:1/x?layout=consul', reason: /unknown layout "consul" \(expected native, registrator, go-micro, dubbo, single\)/ },
    { url: 'zk://a:1/x?layuot=single', reason: /unknown parameter "layuot"/ },
    { url: 'zk://a:1/x?watch=one-shot&watch=recursive', reason: /parameter "watch" given more than once/ },
    { url: 'zk://a:1/x?layout=single&service=a&service=b', reason: /parameter "service" given more than once/ },
    { url: 'zk://a:1/?layout=single', reason: /layout=single needs a path naming the service node/ },
    { url: 'zk://a:1?service=web', reason: /service=<name> needs a path/ },
    { url: 'etcd://a:1?layout=dubbo', reason: /layout=dubbo is read from ZooKeeper \(zk:\/\/\) only/ },
    { url: 'zk://a:1/dubbo?layout=dubbo&service=x', reason: /layout=dubbo takes no service=/ },
    { url: 'zk://a:1/x?service=a/b', reason: /service "a\/b" must not/ },
    { url: 'zk://a:1/x?watch=persistent', reason: /unknown watch "persistent" \(expected recursive or one-shot\)/ },
    { url: 'etcd://a:1/x?watch=one-shot', reason: /watch= applies to ZooKeeper \(zk:\/\/\) only/ },
    { url: 'zk://a:1?layout=dubbo&watch=recursive', reason: /watch=recursive does not apply under a root of \/ or with layout=dubbo/ },
    { url: 'zk://a:1/?watch=recursive', reason: /watch=recursive does not apply/ },
  ])('refuses $url with a reason', ({ url, reason }) => {
    expect(() => parseRegistryUrl(url)).toThrow(reason);
  });

  it.each(['etcd://gw:s3cr3t@127.0.0.1:2379/sb', 'zk://a:1,ops:s3cr3t@b:2/x', 'etcd://:s3cr3t@h:1'])('keeps the password of %s out of its refusal', (url) => {
    let message = '';
    try {
      parseRegistryUrl(url);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('[redacted]@');
    expect(message).not.toContain('s3cr3t');
  });
});
