import { describe, expect, it } from 'vitest';
import { clientNetwork } from './ip-range.ts';

describe('clientNetwork', () => {
  it.each([
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:DB8:1:2::9', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:ff::1', 60, '2001:db8:1:f0::/60'],
    ['2001:db8:1:2::1', 48, '2001:db8:1::/48'],
    ['fe80::1%eth0', 64, 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', 96, '64:ff9b:0:0:0:0::/96'],
    ['2001:db8::1', 128, '2001:db8::1'],
    ['::ffff:192.0.2.1', 64, '192.0.2.1'],
    ['192.0.2.1', 64, '192.0.2.1'],
    ['', 64, ''],
    ['not:an:address', 64, 'not:an:address'],
  ] as const)('keys %s with prefix %i as %s', (address, prefix, expected) => {
    expect(clientNetwork(address, prefix)).toBe(expected);
  });
});
