import { describe, expect, it } from 'vitest';
import { rootLogger } from '../../logger.ts';
import { invalidInstancesTotal } from '../../metrics.ts';
import type { RawInstance } from '../instance-codec.ts';
import type { ProviderSnapshot } from '../provider.ts';
import { ProviderStore } from '../provider-store.ts';
import { decodeDubboEntry } from './layout-dubbo.ts';

/** A znode name as Dubbo writes it: the provider URL through java.net.URLEncoder (what encodeURIComponent does, bar `+` for space). */
function entry(service: string, url: string): RawInstance {
  const name = encodeURIComponent(url);
  return { service, name, key: `/dubbo/${service}/providers/${name}`, data: '10.0.0.5' };
}

describe('Dubbo provider URLs', () => {
  it('reads a Triple provider as h2c with its weight, version, group and side in the metadata', () => {
    const result = decodeDubboEntry(entry('org.example.Greeter', 'tri://10.0.0.5:50051/org.example.Greeter?application=demo&group=g1&side=provider&version=1.0.0&weight=200'));
    expect(result).toEqual({
      ok: true,
      instances: [
        {
          id: '10.0.0.5:50051/g1:1.0.0',
          service: 'org.example.Greeter',
          host: '10.0.0.5',
          port: 50051,
          weight: 200,
          protocol: 'h2c',
          metadata: { 'dubbo.protocol': 'tri', version: '1.0.0', group: 'g1', side: 'provider', application: 'demo' },
        },
      ],
    });
  });

  it.each([
    { scheme: 'rest', protocol: 'http' },
    { scheme: 'http', protocol: 'http' },
    { scheme: 'grpc', protocol: 'h2c' },
  ])('maps $scheme:// to $protocol and defaults the weight to Dubbo\'s 100', ({ scheme, protocol }) => {
    const result = decodeDubboEntry(entry('org.example.Greeter', `${scheme}://[fd00::5]:8080/org.example.Greeter?application=demo`));
    expect(result).toMatchObject({ ok: true, instances: [{ host: 'fd00::5', port: 8080, protocol, weight: 100 }] });
  });

  it('takes an empty weight parameter as absent (Dubbo\'s 100), as Dubbo\'s URL.getParameter does, not as weight 0', () => {
    const result = decodeDubboEntry(entry('org.example.Greeter', 'tri://10.0.0.5:50051/org.example.Greeter?application=demo&weight='));
    expect(result).toMatchObject({ ok: true, instances: [{ host: '10.0.0.5', port: 50051, weight: 100 }] });
  });

  it('reads the documented Dubbo 2.7 demo provider name (interface= parameter, anyhost, methods list)', () => {
    // The DemoService provider of dubbo-demo as listed under /dubbo/org.apache.dubbo.demo.DemoService/providers, with rest:// instead of dubbo://.
    const name =
      'rest%3A%2F%2F192.168.1.100%3A20880%2Forg.apache.dubbo.demo.DemoService%3Fanyhost%3Dtrue%26application%3Ddemo-provider%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dynamic%3Dtrue%26generic%3Dfalse%26interface%3Dorg.apache.dubbo.demo.DemoService%26methods%3DsayHello%2CsayHelloAsync%26pid%3D12345%26release%3D2.7.23%26side%3Dprovider%26timestamp%3D1600000000000';
    const result = decodeDubboEntry({ service: 'org.apache.dubbo.demo.DemoService', name, data: null });
    expect(result).toMatchObject({ ok: true, instances: [{ host: '192.168.1.100', port: 20880, metadata: { application: 'demo-provider', dubbo: '2.0.2', release: '2.7.23' } }] });
  });

  it.each([
    { url: 'dubbo://10.0.0.5:20880/org.example.Greeter?application=demo', reason: /dubbo binary protocol is not supported/ },
    { url: 'thrift://10.0.0.5:9090/org.example.Greeter', reason: /protocol "thrift" is not supported/ },
    { url: 'tri://10.0.0.5/org.example.Greeter', reason: /is not host:port/ },
    { url: 'tri://10.0.0.5:50051/org.example.Other', reason: /for "org.example.Other" but sits under "org.example.Greeter"/ },
    { url: 'tri://10.0.0.5:50051/org.example.Greeter?weight=heavy', reason: /weight "heavy"/ },
    { url: 'not a url', reason: /not a URL-encoded Dubbo provider URL/ },
  ])('lists $url as not routable with the reason', ({ url, reason }) => {
    const result = decodeDubboEntry(entry('org.example.Greeter', url));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toMatch(reason);
  });

  // Dubbo's RegistryDirectory.toInvokers: `disabled`, when present, decides (Boolean.parseBoolean,
  // an empty value meaning the default); else `enabled`, true by default.
  it.each([
    { query: 'disabled=true', serves: false },
    { query: 'disabled=TRUE', serves: false },
    { query: 'enabled=false', serves: false },
    { query: 'enabled=no', serves: false },
    { query: 'disabled=false&enabled=false', serves: true },
    { query: 'disabled=', serves: true },
    { query: 'enabled=', serves: true },
    { query: 'enabled=true', serves: true },
  ])('reads a provider with $query as Dubbo consumers do (serves: $serves), never as an invalid entry', ({ query, serves }) => {
    const result = decodeDubboEntry(entry('org.example.Greeter', `tri://10.0.0.5:50051/org.example.Greeter?${query}`));
    expect(result).toMatchObject({ ok: true, instances: serves ? [{ host: '10.0.0.5', port: 50051 }] : [] });
  });

  it('leaves a provider an operator disabled out of the set without a warning or the invalid-entry metric', async () => {
    const counted = async (): Promise<number> => (await invalidInstancesTotal.get()).values.find((value) => value.labels.provider === 'zk-dubbo')?.value ?? 0;
    const store = new ProviderStore('zk-dubbo', rootLogger, decodeDubboEntry);
    const snapshots: ProviderSnapshot[] = [];
    store.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
    const before = await counted();
    store.publishRaw('org.example.Greeter', [entry('org.example.Greeter', 'tri://10.0.0.5:50051/org.example.Greeter?disabled=true'), entry('org.example.Greeter', 'tri://10.0.0.6:50051/org.example.Greeter')], '1');
    expect(snapshots.at(-1)).toMatchObject({ invalid: 0, instances: [{ host: '10.0.0.6' }] });
    expect(await counted()).toBe(before);
    store.complete();
  });

  it('decodes + as a space, as java.net.URLDecoder does', () => {
    const result = decodeDubboEntry({ service: 'org.example.Greeter', name: 'tri%3A%2F%2F10.0.0.5%3A50051%2Forg.example.Greeter%3Fapplication%3Dmy+app', data: null });
    expect(result).toMatchObject({ ok: true, instances: [{ metadata: { application: 'my app' } }] });
  });
});
