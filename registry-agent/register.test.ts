import { describe, expect, it } from 'vitest';
import { register } from './agent.ts';

describe('register(), the in-process API', () => {
  it.each([
    ['etcd://127.0.0.1:2379/micro/registry?layout=go-micro', /the agent writes the native layout/],
    ['zk://127.0.0.1:2181/services?service=user', /the agent writes the native layout/],
    ['file:instances.yaml', /registers in zk:\/\/ or etcd:\/\//],
  ])('refuses %s, as the command line does, before connecting anywhere', (registry, error) => {
    expect(() => register({ registry, service: 'user', port: 8080 })).toThrow(error);
  });

  it.each([
    [{ service: 'a/b', port: 8080 }, /^register\(\): service "a\/b" must be letters, digits/],
    [{ service: 'user', port: 0 }, /^register\(\): port 0 must be a whole number from 1 to 65535$/],
    [{ service: 'user', port: 8080.5 }, /^register\(\): port 8080.5 /],
    [{ service: 'user', port: 8080, host: '' }, /^register\(\): host "" must be 1 to 253 characters$/],
    [{ service: 'user', port: 8080, host: '10.0.0.5:8080', id: 'u1' }, /^register\(\): host "10\.0\.0\.5:8080" must be a host name/],
    [{ service: 'user', port: 8080, id: 'a/b' }, /^register\(\): id "a\/b" must be letters/],
    [{ service: 'user', port: 8080, weight: -5 }, /^register\(\): weight -5 must be a whole number from 0 to 1000000$/],
    [{ service: 'user', port: 8080, ttlMs: 100 }, /^register\(\): ttlMs 100 must be from 1000 to 2147483647$/],
    [{ service: 'user', port: 8080, id: 'u'.repeat(300) }, /^register\(\): id is 300 characters, more than the 256 a registry entry may name$/],
    [{ service: 'user', port: 8080, metadata: { blob: 'x'.repeat(70_000) } }, /^register\(\): metadata: 70011 bytes of metadata make an entry of \d+ bytes, more than the 65536/],
    [{ service: 'user', port: 8080, protocol: 'http2' as never }, /^register\(\): protocol "http2" must be one of http, https, h2c, h2, grpc, grpcs, tcp$/],
  ])('refuses %j, which the command line refuses too, before connecting anywhere', (options, error) => {
    // Port 1 of loopback: a registry nobody answers on, were it ever contacted.
    expect(() => register({ registry: 'zk://127.0.0.1:1/services', ...options })).toThrow(error);
  });
});
