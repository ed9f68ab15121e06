import { describe, expect, it } from 'vitest';
import type { RawInstance } from '../instance-codec.ts';
import { registryLayout } from './index.ts';

const registrator = registryLayout({ name: 'registrator' });
const goMicro = registryLayout({ name: 'go-micro' });

/**
 * What go-micro v2's etcd registry puts at `/micro/registry/greeter/<node-id>`: `json.Marshal` of a
 * `registry.Service` with the registering node only (field order and `null` for nil maps as Go
 * writes them), for a service started with `micro.Name("greeter"), micro.Version("latest")`.
 */
const GO_MICRO_VALUE =
  '{"name":"greeter","version":"latest","metadata":null,"endpoints":[{"name":"Greeter.Hello","request":{"name":"Request","type":"Request","values":[{"name":"name","type":"string","values":null}]},"response":{"name":"Response","type":"Response","values":[{"name":"greeting","type":"string","values":null}]},"metadata":{"stream":"false"}}],"nodes":[{"id":"greeter-1f6a9d3e-6bd4-4c0b-9d8c-2f1f0c1b8b11","address":"10.0.0.5:54321","metadata":{"broker":"http","protocol":"mucp","registry":"etcd","server":"mucp","transport":"http"}}]}';

function entry(service: string, name: string, data: string | null): RawInstance {
  return { service, name, key: `/p/${service}/${name}`, data };
}

describe('registrator layout', () => {
  it.each([
    { data: '10.0.0.7:8080', host: '10.0.0.7', port: 8080 },
    { data: ' 10.0.0.7:8080\n', host: '10.0.0.7', port: 8080 },
    { data: '[fd00::7]:9000', host: 'fd00::7', port: 9000 },
    { data: '{"host":"10.0.0.8","port":81,"weight":3}', host: '10.0.0.8', port: 81 },
  ])('reads the value $data as one instance named after its key', ({ data, host, port }) => {
    const result = registrator.decode(entry('web', 'web-1', data));
    expect(result).toMatchObject({ ok: true, instances: [{ id: 'web-1', service: 'web', host, port }] });
  });

  it('reads an ip:port name with empty data, as the native layout does', () => {
    expect(registrator.decode(entry('web', '10.0.0.9:80', ''))).toMatchObject({ ok: true, instances: [{ host: '10.0.0.9', port: 80, weight: 1 }] });
  });

  it.each([
    { data: '10.0.0.7', reason: 'value "10.0.0.7" is neither host:port nor a JSON object' },
    { data: '10.0.0.7:99999', reason: 'value "10.0.0.7:99999" is not a valid host:port' },
    { data: '10.0.0.7:0\n', reason: 'value "10.0.0.7:0" is not a valid host:port' },
    { data: 'web.local:http', reason: 'value "web.local:http" is neither host:port nor a JSON object' },
    { data: 'bad host:80', reason: 'value "bad host:80" is not a valid host:port' },
    { data: '8080', reason: 'value "8080" is neither host:port nor a JSON object' },
    { data: '{"host":"10.0.0.7"}', reason: 'port' },
  ])('refuses the value $data with a reason that names what is wrong', ({ data, reason }) => {
    const result = registrator.decode(entry('web', 'web-1', data));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.message).toMatch(/^web\/web-1: /);
      expect(result.error.message).toContain(reason);
    }
  });
});

describe('go-micro layout', () => {
  it('reads the Service JSON go-micro writes: node id, address, node metadata and the service version', () => {
    const result = goMicro.decode(entry('greeter', 'greeter-1f6a9d3e-6bd4-4c0b-9d8c-2f1f0c1b8b11', GO_MICRO_VALUE));
    expect(result).toEqual({
      ok: true,
      instances: [
        {
          id: 'greeter-1f6a9d3e-6bd4-4c0b-9d8c-2f1f0c1b8b11',
          service: 'greeter',
          host: '10.0.0.5',
          port: 54321,
          weight: 1,
          protocol: 'http',
          protocolDefaulted: true,
          metadata: { broker: 'http', protocol: 'mucp', registry: 'etcd', server: 'mucp', transport: 'http', version: 'latest' },
        },
      ],
    });
  });

  it('gives one instance per node when a key carries several', () => {
    const value = JSON.stringify({
      name: 'greeter',
      version: 'v2',
      nodes: [
        { id: 'a', address: '10.0.0.1:80', metadata: { weight: '5', protocol: 'h2c' } },
        { id: 'b', address: '[fd00::2]:81', metadata: null },
      ],
    });
    const result = goMicro.decode(entry('greeter', 'a', value));
    expect(result).toMatchObject({
      ok: true,
      instances: [
        { id: 'a', host: '10.0.0.1', port: 80, weight: 5, protocol: 'h2c', metadata: { version: 'v2' } },
        { id: 'b', host: 'fd00::2', port: 81, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: { version: 'v2' } },
      ],
    });
  });

  it('reads go-micro v1 nodes that carry the port apart, and a key with no nodes as no instance', () => {
    const v1 = JSON.stringify({ name: 'greeter', version: '', metadata: null, nodes: [{ id: 'n', address: '10.0.0.3', port: 8080, metadata: {} }] });
    expect(goMicro.decode(entry('greeter', 'n', v1))).toMatchObject({ ok: true, instances: [{ host: '10.0.0.3', port: 8080, metadata: {} }] });
    expect(goMicro.decode(entry('greeter', 'n', '{"name":"greeter","nodes":null}'))).toEqual({ ok: true, instances: [] });
  });

  it('finds a service whose go-micro name holds "/" under the key go-micro derives (with "-")', () => {
    const value = JSON.stringify({ name: 'go.micro/api', nodes: [{ id: 'n', address: '10.0.0.4:80' }] });
    expect(goMicro.decode(entry('go.micro-api', 'n', value))).toMatchObject({ ok: true, instances: [{ service: 'go.micro-api' }] });
  });

  it.each([
    { data: 'not json', reason: /is not a go-micro Service JSON/ },
    { data: '{"nodes":[]}', reason: /not a go-micro Service: .*name/ },
    { data: '{"name":"other","nodes":[]}', reason: /names "other" but the key is under "greeter"/ },
    { data: '{"name":"greeter","nodes":[{"id":"x","address":"10.0.0.1"}]}', reason: /node "x" has address "10.0.0.1", expected host:port/ },
    { data: '{"name":"greeter","nodes":[{"address":"10.0.0.1:80"}]}', reason: /not a go-micro Service: .*id/ },
  ])('refuses $data with a reason naming the key', ({ data, reason }) => {
    const result = goMicro.decode(entry('greeter', 'x', data));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.message).toMatch(/^\/p\/greeter\/x: /);
      expect(result.error.message).toMatch(reason);
    }
  });
});

describe('registryLayout', () => {
  it('is native without a spec, and carries the single service it was given', () => {
    expect(registryLayout(undefined).name).toBe('native');
    expect(registryLayout({ name: 'native', service: 'real_server' }).service).toBe('real_server');
    // Native refuses what registrator reads: the layouts really differ.
    expect(registryLayout(undefined).decode(entry('web', 'web-1', '10.0.0.7:8080')).ok).toBe(false);
  });
});
