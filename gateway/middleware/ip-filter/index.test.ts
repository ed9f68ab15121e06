import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { GatewayContext } from '../../context.ts';
import { clientAddress, ranges } from './index.ts';
import { ipRangeMatcher } from '../../config/ip-range.ts';
import { clientFromChain } from '../forwarded/index.ts';

const contextOf = (peer: string, clientIp: string, forwardedFor?: string) =>
  ({ clientIp, request: { socket: { remoteAddress: peer } as Socket, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } } }) as unknown as GatewayContext;

describe('ranges', () => {
  it('matches an IPv4-mapped IPv6 range against the plain IPv4 client, and IPv4 ranges against mapped clients', () => {
    const mapped = ipRangeMatcher(ranges(['::ffff:127.0.0.1', '::ffff:10.0.0.0/104']));
    expect(['127.0.0.1', '10.9.8.7', '::ffff:127.0.0.1', '127.0.0.2', '::1', '11.0.0.1'].map(mapped)).toEqual([true, true, true, false, false, false]);
    const hex = ipRangeMatcher(ranges(['::ffff:a00:0/104']));
    expect(['10.9.8.7', '11.0.0.1'].map(hex)).toEqual([true, false]);
    const v4 = ipRangeMatcher(ranges(['127.0.0.0/8']));
    expect(['::ffff:127.0.0.9', '127.1.1.1', '::1'].map(v4)).toEqual([true, true, false]);
  });
});

describe('clientAddress', () => {
  it('takes the client of the trusted-proxy rule at depth 0, in its plain IPv4 form', () => {
    const read = clientAddress({ depth: 0, trustedProxies: ['loopback'] });
    expect(read(contextOf('::ffff:127.0.0.1', '::ffff:10.0.0.1', '1.2.3.4'))).toBe('10.0.0.1');
    expect(read(contextOf('::ffff:127.0.0.1', '::FFFF:10.0.0.1', '1.2.3.4'))).toBe('10.0.0.1');
    expect(read(contextOf('::ffff:127.0.0.1', '::ffff:a00:1', '1.2.3.4'))).toBe('10.0.0.1');
  });

  it('takes the N-th X-Forwarded-For entry from the right only from a trusted peer, and fails closed on a short chain', () => {
    const read = clientAddress({ depth: 2, trustedProxies: ['loopback'] });
    expect(read(contextOf('127.0.0.1', '', '203.0.113.5, 10.0.0.1'))).toBe('203.0.113.5');
    expect(read(contextOf('::ffff:127.0.0.1', '', '198.51.100.1,203.0.113.5 , 10.0.0.1'))).toBe('203.0.113.5');
    expect(read(contextOf('127.0.0.1', '', '10.0.0.1'))).toBeUndefined();
    expect(read(contextOf('127.0.0.1', '', 'unknown, 10.0.0.1'))).toBeUndefined();
    // A proxy that writes the client's port (Azure Application Gateway) still names an address.
    expect(read(contextOf('127.0.0.1', '', '203.0.113.5:5678, 10.0.0.1'))).toBe('203.0.113.5');
    expect(read(contextOf('127.0.0.1', '', '[2001:db8::5]:443, 10.0.0.1'))).toBe('2001:db8::5');
    expect(read(contextOf('127.0.0.1', '', '203.0.113.5:99999, 10.0.0.1'))).toBeUndefined();
    // An empty entry counts as one, and is no address: the client cannot move the depth into what it wrote by adding empty ones.
    expect(read(contextOf('127.0.0.1', '', '203.0.113.5, , 10.0.0.1'))).toBeUndefined();
    expect(read(contextOf('127.0.0.1', '', '203.0.113.5,,10.0.0.1'))).toBeUndefined();
    expect(read(contextOf('127.0.0.1', '', '203.0.113.5, 198.51.100.1, '))).toBe('198.51.100.1');
    expect(read(contextOf('127.0.0.1', '', ', 10.0.0.1'))).toBeUndefined();
    expect(read(contextOf('127.0.0.1', '', ' , 203.0.113.5, 10.0.0.1'))).toBe('203.0.113.5');
    // An untrusted peer's header proves nothing: the peer is the client.
    expect(read(contextOf('192.0.2.9', '192.0.2.9', '203.0.113.5, 10.0.0.1'))).toBe('192.0.2.9');
  });
});

describe('an empty X-Forwarded-For entry', () => {
  // Behind two trusted proxies (loopback and 10/8): the first wrote an empty entry where the client's address belongs.
  const chains = ['203.0.113.5, , 10.0.0.1', '203.0.113.5,,10.0.0.1', '203.0.113.5, \t, 10.0.0.1'];

  it.each(chains)('in "%s" hands neither the trusted-proxy walk nor the depth of an IP list what the client wrote on its left', (chain) => {
    const isTrusted = ipRangeMatcher(ranges(['loopback', '10.0.0.0/8']));
    // The walk stops at the empty entry and takes the hop that reported it.
    expect(clientFromChain(chain, '127.0.0.1', isTrusted)).toBe('10.0.0.1');
    // Depth 2 lands on the empty entry: no address, the list fails closed.
    expect(clientAddress({ depth: 2, trustedProxies: ['loopback'] })(contextOf('127.0.0.1', '', chain))).toBeUndefined();
  });
});
