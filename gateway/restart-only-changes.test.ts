import { describe, expect, it } from 'vitest';
import { parseConfig } from './config/load.ts';
import { restartOnlyChanges } from './restart-only-changes.ts';

const BASE = `
registries: [file:instances.yaml]
entryPoints:
  web: { listen: "127.0.0.1:8080", middlewares: [to-https] }
  redis: { listen: "127.0.0.1:6380", protocol: tcp, service: redis }
middlewares:
  to-https: { redirectScheme: { scheme: https } }
  tag: { headers: { response: { set: { x-tag: a } } } }
routes:
  - { path: /, service: api }
`;

describe('restartOnlyChanges', () => {
  it.each([
    // The data plane builds each entry point's chain from the configuration in force, and a tcp
    // entry point reads its service, idle timeout and PROXY protocol per connection: both apply on reload.
    { change: "an entry point's middlewares", next: BASE.replace('middlewares: [to-https] }', 'middlewares: [tag] }'), keys: [] },
    { change: "an entry point's middlewares, removed", next: BASE.replace(', middlewares: [to-https] }', ' }'), keys: [] },
    { change: "a tcp entry point's service, idle timeout and PROXY protocol", next: BASE.replace('service: redis }', 'service: cache, idleTimeout: 5m, proxyProtocol: 2 }'), keys: [] },
    { change: "an entry point's address", next: BASE.replace('127.0.0.1:8080', '127.0.0.1:8081'), keys: ['entryPoints'] },
    { change: "an entry point's HTTP/2 with prior knowledge", next: BASE.replace('middlewares: [to-https] }', 'middlewares: [to-https], h2c: true }'), keys: ['entryPoints'] },
    { change: 'the entry points, one added', next: BASE.replace('entryPoints:\n', 'entryPoints:\n  other: { listen: "127.0.0.1:8082" }\n'), keys: ['entryPoints'] },
    // Listeners are found by name: the order of the keys under entryPoints changes none of them.
    { change: 'the entry points, reordered', next: BASE.replace(/ {2}web: (.*)\n {2}redis: (.*)\n/, '  redis: $2\n  web: $1\n'), keys: [] },
    { change: 'the entry points, one removed (it listens until a restart)', next: BASE.replace(/ {2}redis: .*\n/, ''), keys: ['entryPoints'] },
    { change: 'the registry list and the admin listener', next: `${BASE.replace('file:instances.yaml', 'file:other.yaml')}admin: 127.0.0.1:9181\n`, keys: ['admin', 'registries'] },
  ])('after a change of $change, names $keys as waiting for a restart', ({ next, keys }) => {
    expect(restartOnlyChanges(parseConfig('/etc/sb/gateway.yaml', BASE), parseConfig('/etc/sb/gateway.yaml', next))).toEqual(keys);
  });

  it.each([
    { change: 'a path', snapshot: '{ url: zk://127.0.0.1:2181/services, snapshot: /var/lib/switchboard/zk.json }' },
    { change: 'false', snapshot: '{ url: zk://127.0.0.1:2181/services, snapshot: false }' },
  ])("names registries as waiting for a restart after a registry's snapshot file changes to $change (its provider keeps the file it started with)", ({ snapshot }) => {
    const zk = BASE.replace('file:instances.yaml', 'zk://127.0.0.1:2181/services');
    expect(restartOnlyChanges(parseConfig('/etc/sb/gateway.yaml', zk), parseConfig('/etc/sb/gateway.yaml', zk.replace('zk://127.0.0.1:2181/services', snapshot)))).toEqual(['registries']);
  });
});
