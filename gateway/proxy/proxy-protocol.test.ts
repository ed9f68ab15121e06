import { describe, expect, it } from 'vitest';
import { PROXY_V2_SIGNATURE, proxyProtocolHeader } from './proxy-protocol.ts';

const IPV4 = { sourceAddress: '127.0.0.2', sourcePort: 51_234, destinationAddress: '127.0.0.1', destinationPort: 6380 };
const IPV6 = { sourceAddress: '2001:db8::1', sourcePort: 40_000, destinationAddress: '::1', destinationPort: 443 };

describe('the PROXY protocol header', () => {
  it('writes version 1 as one text line with both addresses and ports', () => {
    expect(proxyProtocolHeader(1, IPV4).toString('latin1')).toBe('PROXY TCP4 127.0.0.2 127.0.0.1 51234 6380\r\n');
    expect(proxyProtocolHeader(1, IPV6).toString('latin1')).toBe('PROXY TCP6 2001:db8::1 ::1 40000 443\r\n');
  });

  it('writes version 2 for IPv4 as signature, PROXY over TCP4, 12 bytes of addresses and ports', () => {
    const header = proxyProtocolHeader(2, IPV4);
    expect(header.subarray(0, 12)).toEqual(PROXY_V2_SIGNATURE);
    expect(header.subarray(12).toString('hex')).toBe(['21', '11', '000c', '7f000002', '7f000001', 'c822', '18ec'].join(''));
  });

  it('writes version 2 for IPv6 with both 16-byte addresses, :: expanded', () => {
    const header = proxyProtocolHeader(2, IPV6);
    expect(header.length).toBe(16 + 36);
    expect(header.subarray(12, 16).toString('hex')).toBe('21210024');
    expect(header.subarray(16, 32).toString('hex')).toBe('20010db8000000000000000000000001');
    expect(header.subarray(32, 48).toString('hex')).toBe('00000000000000000000000000000001');
    expect(header.readUInt16BE(48)).toBe(40_000);
    expect(header.readUInt16BE(50)).toBe(443);
  });

  it('sends the IPv4 form for IPv4 clients of a dual-stack listener (::ffff:a.b.c.d)', () => {
    const mapped = { ...IPV4, sourceAddress: '::ffff:127.0.0.2', destinationAddress: '::ffff:127.0.0.1' };
    expect(proxyProtocolHeader(1, mapped).toString('latin1')).toBe('PROXY TCP4 127.0.0.2 127.0.0.1 51234 6380\r\n');
    expect(proxyProtocolHeader(2, mapped)).toEqual(proxyProtocolHeader(2, IPV4));
  });

  it('sends the IPv4 form for an IPv4-mapped address in any spelling, as every other part of the gateway writes it (plainIp)', () => {
    const mapped = { ...IPV4, sourceAddress: '::FFFF:7f00:2', destinationAddress: '0:0:0:0:0:ffff:127.0.0.1' };
    expect(proxyProtocolHeader(1, mapped).toString('latin1')).toBe('PROXY TCP4 127.0.0.2 127.0.0.1 51234 6380\r\n');
    expect(proxyProtocolHeader(2, mapped)).toEqual(proxyProtocolHeader(2, IPV4));
  });

  it('leaves out the zone of a link-local address (fe80::1%eth0), which neither version can carry', () => {
    const linkLocal = { sourceAddress: 'fe80::1%eth0', sourcePort: 40_000, destinationAddress: 'fe80::2%eth0', destinationPort: 443 };
    expect(proxyProtocolHeader(1, linkLocal).toString('latin1')).toBe('PROXY TCP6 fe80::1 fe80::2 40000 443\r\n');
    expect(proxyProtocolHeader(2, linkLocal).subarray(16, 48).toString('hex')).toBe(
      'fe800000000000000000000000000001' + 'fe800000000000000000000000000002',
    );
  });

  it('says UNKNOWN (v1) or LOCAL (v2) when the addresses are missing or of two families', () => {
    const mixed = { ...IPV4, destinationAddress: '::1' };
    expect(proxyProtocolHeader(1, mixed).toString('latin1')).toBe('PROXY UNKNOWN\r\n');
    expect(proxyProtocolHeader(2, { ...IPV4, sourceAddress: undefined }).subarray(12).toString('hex')).toBe('20000000');
  });
});
