import { afterEach, describe, expect, it } from 'vitest';
import type { TransportSettings } from './transport.ts';
import { UpstreamTransports } from './upstream-transports.ts';

const settings = (key: string): TransportSettings => ({ connectTimeoutMs: 1_000, tls: { ca: undefined, cert: undefined, key: undefined, verify: true, serverName: undefined }, key });
const http = { host: '127.0.0.1', protocol: 'http' as const };

describe('UpstreamTransports', () => {
  const transports = new UpstreamTransports();
  afterEach(() => transports.close());

  it('hands out one transport per protocol, address and settings key', () => {
    const first = transports.get(http, '127.0.0.1:1', settings('a'));
    // A key built anew per request (not the same string object) finds the same transport.
    expect(transports.get(http, ['127.0.0.1', '1'].join(':'), settings(['a'].join('')))).toBe(first);
    expect(transports.get(http, '127.0.0.1:2', settings('a'))).not.toBe(first);
    expect(transports.get(http, '127.0.0.1:1', settings('b'))).not.toBe(first);
    expect(transports.get({ host: '127.0.0.1', protocol: 'h2c' }, '127.0.0.1:1', settings('a'))).not.toBe(first);
  });

  it('makes a fresh transport after sweeping an idle one, and keeps the ones still in use', () => {
    const swept = transports.get(http, '127.0.0.1:1', settings('a'));
    expect(transports.sweep(-60_000)).toBe(1);
    const fresh = transports.get(http, '127.0.0.1:1', settings('a'));
    expect(fresh).not.toBe(swept);
    expect(transports.sweep(60_000)).toBe(0);
    expect(transports.get(http, '127.0.0.1:1', settings('a'))).toBe(fresh);
  });
});
