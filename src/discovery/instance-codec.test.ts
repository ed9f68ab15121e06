import { describe, expect, it } from 'vitest';
import { decodeInstance, encodeInstance, instanceEntrySizeProblem, MAX_INSTANCE_ENTRY_BYTES, type RawInstance } from './instance-codec.ts';
import { sameInstance, withDefaultProtocol, type Instance } from './instance.ts';

const curator = {
  name: 'user',
  id: '5b1f8c0e-6a3c-4d9e-9b1a-2f4e7c1d0a11',
  address: '10.0.0.5',
  port: 8080,
  sslPort: null,
  payload: {
    '@class': 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance',
    id: 'user',
    name: 'user',
    metadata: { instance_status: 'UP', weight: '3' },
  },
  registrationTimeUTC: 1_700_000_000_000,
  serviceType: 'DYNAMIC',
  uriSpec: { parts: [{ value: 'scheme', variable: true }] },
};

describe('decodeInstance accepts every registry format', () => {
  const cases: Array<{ name: string; raw: RawInstance; expected: Instance }> = [
    {
      name: 'the native payload with every field',
      raw: {
        service: 'user',
        name: 'user-1',
        data: '{"id":"user-1","service":"user","host":"127.0.0.1","port":8081,"weight":5,"protocol":"h2c","metadata":{"version":"v2","canary":true}}',
      },
      expected: { id: 'user-1', service: 'user', host: '127.0.0.1', port: 8081, weight: 5, protocol: 'h2c', metadata: { version: 'v2', canary: 'true' } },
    },
    {
      name: 'the native payload with defaults for id, weight, protocol and metadata',
      raw: { service: 'user', name: 'node-7', data: Buffer.from('{"host":"::1","port":9000}') },
      expected: { id: 'node-7', service: 'user', host: '::1', port: 9000, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} },
    },
    {
      name: 'a Curator ServiceInstance written by Spring Cloud Zookeeper',
      raw: { service: 'user', name: curator.id, data: JSON.stringify(curator) },
      expected: { id: curator.id, service: 'user', host: '10.0.0.5', port: 8080, weight: 3, protocol: 'http', protocolDefaulted: true, metadata: { instance_status: 'UP', weight: '3' } },
    },
    {
      name: 'a Curator ServiceInstance that Spring Cloud Zookeeper took out of service, as draining',
      raw: { service: 'user', name: curator.id, data: JSON.stringify({ ...curator, payload: { ...curator.payload, metadata: { instance_status: 'OUT_OF_SERVICE' } } }) },
      expected: { id: curator.id, service: 'user', host: '10.0.0.5', port: 8080, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: { instance_status: 'OUT_OF_SERVICE' }, draining: true },
    },
    {
      name: 'a Curator ServiceInstance with a blank or lower-case up status, as routable',
      raw: { service: 'user', name: curator.id, data: JSON.stringify({ ...curator, payload: { ...curator.payload, metadata: { instance_status: ' up ' } } }) },
      expected: { id: curator.id, service: 'user', host: '10.0.0.5', port: 8080, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: { instance_status: ' up ' } },
    },
    {
      name: 'a Curator ServiceInstance with a blank metadata weight (an unset property) at weight 1, not drained',
      raw: { service: 'user', name: curator.id, data: JSON.stringify({ ...curator, payload: { ...curator.payload, metadata: { weight: ' ' } } }) },
      expected: { id: curator.id, service: 'user', host: '10.0.0.5', port: 8080, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: { weight: ' ' } },
    },
    {
      name: 'a Curator ServiceInstance with only an sslPort as https',
      raw: { service: 'pay', name: 'x', data: JSON.stringify({ ...curator, port: null, sslPort: 8443, payload: null }) },
      expected: { id: curator.id, service: 'pay', host: '10.0.0.5', port: 8443, weight: 1, protocol: 'https', metadata: {} },
    },
    {
      name: 'a bare host:port node name with empty data',
      raw: { service: 'greeter', name: '127.0.0.1:8082', data: null },
      expected: { id: '127.0.0.1:8082', service: 'greeter', host: '127.0.0.1', port: 8082, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} },
    },
    {
      name: 'a bracketed IPv6 host:port node name with whitespace-only data',
      raw: { service: 'greeter', name: '[::1]:8083', data: '  ' },
      expected: { id: '[::1]:8083', service: 'greeter', host: '::1', port: 8083, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} },
    },
  ];

  it.each(cases)('decodes $name', ({ raw, expected }) => {
    expect(decodeInstance(raw)).toEqual({ ok: true, instance: expected });
  });

  it('takes an entry of up to MAX_INSTANCE_ENTRY_BYTES and skips a larger one, as the agent refuses to write it', () => {
    const base: Instance = { id: 'a', service: 's', host: 'h', port: 1, weight: 1, protocol: 'http', metadata: {} };
    const room = MAX_INSTANCE_ENTRY_BYTES - Buffer.byteLength(encodeInstance({ ...base, metadata: { blob: '' }, draining: true }));
    // Bytes, not characters: 'é' is two.
    const blob = 'é'.repeat(Math.floor(room / 2)) + 'x'.repeat(room % 2);
    const largest: Instance = { ...base, metadata: { blob } };
    expect(instanceEntrySizeProblem(largest)).toBeUndefined();
    expect(decodeInstance({ service: 's', name: 'a', data: encodeInstance({ ...largest, draining: true }) }).ok).toBe(true);
    const larger: Instance = { ...base, metadata: { blob: `${blob}x` } };
    expect(instanceEntrySizeProblem(larger)).toMatch(/bytes of metadata make an entry of 65537 bytes, more than the 65536/);
    const skipped = decodeInstance({ service: 's', name: 'a', data: Buffer.from(encodeInstance({ ...larger, draining: true })) });
    expect(skipped.ok === false && skipped.error.message).toBe('s/a: data is 65537 bytes, more than the 65536 a registry entry may hold');
  });

  it('round-trips what encodeInstance writes', () => {
    const instance: Instance = { id: 'a', service: 's', host: 'h', port: 1, weight: 0, protocol: 'grpc', metadata: { zone: 'eu' } };
    expect(decodeInstance({ service: 's', name: 'a', data: encodeInstance(instance) })).toEqual({ ok: true, instance });
  });

  it('carries the drain handshake mark through decode and encode, and leaves it out when not set', () => {
    const draining = decodeInstance({ service: 's', name: 'a', data: '{"host":"h","port":1,"draining":true}' });
    expect(draining.ok && draining.instance.draining).toBe(true);
    const plain = decodeInstance({ service: 's', name: 'a', data: '{"host":"h","port":1,"draining":false}' });
    expect(plain.ok && plain.instance).not.toHaveProperty('draining');
    const instance: Instance = { id: 'a', service: 's', host: 'h', port: 1, weight: 2, protocol: 'http', metadata: {}, draining: true };
    expect(JSON.parse(encodeInstance(instance))).toMatchObject({ draining: true });
    expect(JSON.parse(encodeInstance({ ...instance, draining: false }))).not.toHaveProperty('draining');
    expect(decodeInstance({ service: 's', name: 'a', data: encodeInstance(instance) })).toEqual({ ok: true, instance });
    expect(sameInstance(instance, { ...instance, draining: false })).toBe(false);
  });

  it('keeps a protocol the entry did not name distinguishable from an explicit http, through encodeInstance too', () => {
    const defaulted: Instance = { id: 'a', service: 's', host: 'h', port: 1, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} };
    expect(JSON.parse(encodeInstance(defaulted))).not.toHaveProperty('protocol');
    expect(decodeInstance({ service: 's', name: 'a', data: encodeInstance(defaulted) })).toEqual({ ok: true, instance: defaulted });
    const explicit = decodeInstance({ service: 's', name: 'a', data: '{"host":"h","port":1,"protocol":"http"}' });
    expect(explicit.ok && explicit.instance.protocolDefaulted).toBeFalsy();
  });
});

describe('withDefaultProtocol', () => {
  const base: Instance = { id: 'a', service: 's', host: 'h', port: 1, weight: 1, protocol: 'http', metadata: {} };
  it('applies the default only to an instance whose entry named no protocol', () => {
    expect(withDefaultProtocol({ ...base, protocolDefaulted: true }, 'h2c').protocol).toBe('h2c');
    expect(withDefaultProtocol(base, 'h2c').protocol).toBe('http');
    expect(withDefaultProtocol({ ...base, protocol: 'https' }, 'h2c').protocol).toBe('https');
  });
  it('tells a defaulted instance from one that named http, so a change between them is a change', () => {
    expect(sameInstance(base, { ...base, protocolDefaulted: true })).toBe(false);
  });
});

describe('decodeInstance refuses bad entries with a reason that names the entry', () => {
  const cases: Array<{ name: string; raw: RawInstance; reason: RegExp }> = [
    { name: 'data that is not JSON', raw: { service: 'user', name: 'u1', data: '{host: 1' }, reason: /user\/u1: data is not JSON/ },
    { name: 'a JSON array', raw: { service: 'user', name: 'u1', data: '[1,2]' }, reason: /must be a JSON object/ },
    { name: 'a missing port', raw: { service: 'user', name: 'u1', data: '{"host":"a"}' }, reason: /^user\/u1: port: Invalid input: expected number, received undefined$/ },
    { name: 'a port out of range', raw: { service: 'user', name: 'u1', data: '{"host":"a","port":70000}' }, reason: /^user\/u1: port: Too big: expected number to be <=65535$/ },
    { name: 'a negative weight', raw: { service: 'user', name: 'u1', data: '{"host":"a","port":1,"weight":-1}' }, reason: /weight/ },
    { name: 'a fractional weight', raw: { service: 'user', name: 'u1', data: '{"host":"a","port":1,"weight":1.5}' }, reason: /weight/ },
    { name: 'a draining mark that is not a boolean', raw: { service: 'user', name: 'u1', data: '{"host":"a","port":1,"draining":"yes"}' }, reason: /draining/ },
    { name: 'an unknown protocol', raw: { service: 'user', name: 'u1', data: '{"host":"a","port":1,"protocol":"ftp"}' }, reason: /protocol/ },
    { name: 'a host with a slash', raw: { service: 'user', name: 'u1', data: '{"host":"a/b","port":1}' }, reason: /host/ },
    { name: 'a host that carries a port', raw: { service: 'user', name: 'u1', data: '{"host":"10.0.0.5:8080","port":8080}' }, reason: /host/ },
    { name: 'an IPv6 host in brackets', raw: { service: 'user', name: 'u1', data: '{"host":"[::1]","port":1}' }, reason: /host/ },
    { name: 'an IPv6 host with a zone', raw: { service: 'user', name: 'u1', data: '{"host":"fe80::1%eth0","port":1}' }, reason: /host/ },
    { name: 'a host with URL delimiters', raw: { service: 'user', name: 'u1', data: '{"host":"a?b#c","port":1}' }, reason: /host/ },
    { name: 'a Curator address that carries a port', raw: { service: 'user', name: 'c', data: JSON.stringify({ ...curator, address: '10.0.0.5:8080' }) }, reason: /address/ },
    { name: 'empty data under a name that is not host:port', raw: { service: 'user', name: 'u1', data: '' }, reason: /not host:port/ },
    { name: 'a host:port name with a bad port', raw: { service: 'user', name: 'h:0', data: null }, reason: /not a valid host:port/ },
    {
      name: 'a payload that names another service than the path it sits under',
      raw: { service: 'user', name: 'u1', data: '{"service":"other","host":"a","port":1}' },
      reason: /user\/u1: payload names service "other" but the entry is under "user"/,
    },
    { name: 'a Curator instance without any port', raw: { service: 'user', name: 'c', data: JSON.stringify({ ...curator, port: null }) }, reason: /neither port nor sslPort/ },
  ];

  it.each(cases)('refuses $name', ({ raw, reason }) => {
    const result = decodeInstance(raw);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe('SB_INVALID_INSTANCE');
      expect(result.error.message).toMatch(reason);
    }
  });
});
