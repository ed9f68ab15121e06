import { afterEach, describe, expect, it } from 'vitest';
import { ipRangeMatcher, parseIpRanges } from '../../config/ip-range.ts';
import { echoed, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { clientFromChain, forwarded } from './index.ts';

// The test client always connects from 127.0.0.1, so "loopback" makes it a trusted proxy.
describe('forwarded', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('replaces every forwarding header of an untrusted peer with what the connection shows', async () => {
    server = await serveMiddleware([forwarded()]);
    const response = await server.send('/', {
      headers: {
        host: 'shop.example.com',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example.com',
        'x-forwarded-port': '443',
        forwarded: 'for=6.6.6.6',
        'x-real-ip': '6.6.6.6',
      },
    });
    const headers = echoed(response).headers;
    expect(headers).toMatchObject({ 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'shop.example.com', 'x-real-ip': '127.0.0.1' });
    expect(headers['x-forwarded-port']).toBeUndefined();
    expect(headers.forwarded).toBeUndefined();
    expect(server.contexts[0]!.clientIp).toBe('127.0.0.1');
  });

  it('does not trust a peer outside the trusted ranges', async () => {
    server = await serveMiddleware([forwarded({ trustedProxies: ['10.0.0.0/8'] })]);
    const response = await server.send('/', { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(echoed(response).headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(server.contexts[0]!.clientIp).toBe('127.0.0.1');
  });

  it('appends the trusted peer to the incoming chain and takes the right-most untrusted hop as the client', async () => {
    server = await serveMiddleware([forwarded({ trustedProxies: ['loopback', '10.0.0.0/8'] })]);
    const response = await server.send('/', { headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.7, 10.0.0.5', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example.com' } });
    const headers = echoed(response).headers;
    expect(headers['x-forwarded-for']).toBe('6.6.6.6, 203.0.113.7, 10.0.0.5, 127.0.0.1');
    expect(headers['x-real-ip']).toBe('203.0.113.7');
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers['x-forwarded-host']).toBe('shop.example.com');
    expect(server.contexts[0]!.clientIp).toBe('203.0.113.7');
  });

  it('fills in X-Forwarded-Proto and -Host when a trusted proxy did not send them', async () => {
    server = await serveMiddleware([forwarded({ trustedProxies: ['127.0.0.1'] })]);
    const response = await server.send('/', { headers: { host: 'api.example.com' } });
    expect(echoed(response).headers).toMatchObject({ 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'api.example.com' });
  });

  it('refuses a trusted proxy entry that is not an address or CIDR', () => {
    expect(() => forwarded({ trustedProxies: ['10.0.0.0/40'] })).toThrow('10.0.0.0/40');
  });
});

describe('clientFromChain', () => {
  const isTrusted = ipRangeMatcher(['loopback', 'private'].flatMap((name) => parseIpRanges(name)!));

  it.each([
    ['203.0.113.7, 10.0.0.5', '203.0.113.7'],
    ['6.6.6.6, 203.0.113.7', '203.0.113.7'],
    ['10.0.0.1, 10.0.0.2', '10.0.0.1'],
    ['garbage, 10.0.0.2', '10.0.0.2'],
    ['203.0.113.7:5678', '203.0.113.7'],
    ['203.0.113.7:5678, 10.0.0.5:443', '203.0.113.7'],
    ['[2001:db8::7]:443, [fd00::1]', '2001:db8::7'],
    ['[::ffff:203.0.113.9]:80', '203.0.113.9'],
    ['203.0.113.7:', '127.0.0.1'],
    ['203.0.113.7:65536', '127.0.0.1'],
    ['203.0.113.7:5678:1', '127.0.0.1'],
    ['[2001:db8::7]:x', '127.0.0.1'],
    ['[2001:db8::7', '127.0.0.1'],
    ['[203.0.113.7]:80', '127.0.0.1'],
    ['2001:db8::7:443, 10.0.0.5', '2001:db8::7:443'],
    ['host.example:80', '127.0.0.1'],
    ['::ffff:203.0.113.9', '203.0.113.9'],
    ['::FFFF:203.0.113.9', '203.0.113.9'],
    ['::ffff:cb00:7109', '203.0.113.9'],
    ['0:0:0:0:0:ffff:cb00:7109, ::FFFF:10.0.0.5', '203.0.113.9'],
    ['2001:db8::1, fd00::1', '2001:db8::1'],
    // An empty entry is no address: the walk ends there, whatever the client wrote on its left.
    ['203.0.113.7, , 10.0.0.5', '10.0.0.5'],
    ['203.0.113.7,,10.0.0.5', '10.0.0.5'],
    ['203.0.113.7, 10.0.0.5, ', '127.0.0.1'],
    ['203.0.113.7, , 198.51.100.2', '198.51.100.2'],
  ])('reads chain "%s" behind a trusted peer as client %s', (chain, client) => {
    expect(clientFromChain(chain, '127.0.0.1', isTrusted)).toBe(client);
  });
});
