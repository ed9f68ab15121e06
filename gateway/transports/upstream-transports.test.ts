import { createServer } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import type { TransportSettings } from './transport.ts';
import { listenOnLoopback, startAttemptGateway, until } from './transport-http2-testing.ts';
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

describe('UpstreamTransports.close (the shutdown)', () => {
  it.each(['http', 'h2c'] as const)('cuts a %s request the upstream never answers once the grace given has passed, as pool-closed', async (protocol) => {
    let received = 0;
    const silent = protocol === 'http' ? createServer(() => (received += 1)) : createHttp2Server().on('stream', () => (received += 1));
    const gateway = await startAttemptGateway();
    const transports = new UpstreamTransports();
    try {
      const transport = transports.get({ host: '127.0.0.1', protocol }, `127.0.0.1:${await listenOnLoopback(silent)}`, settings('a'));
      gateway.attempt = (context, pick) => transport.attempt(context, pick, { headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 }, null);
      const answer = gateway.send('/never');
      expect(await until(() => received === 1, 3_000), 'the upstream received the request').toBe(true);
      let closed = false;
      void transports.close(100).then(() => (closed = true));
      expect(await until(() => closed, 3_000), 'the transports closed').toBe(true);
      expect((await answer).status).toBe(503);
      expect(gateway.ended.map(({ result }) => (result.ok ? 'ok' : result.errorClass))).toEqual(['pool-closed']);
    } finally {
      await gateway.close();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
