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
});
