import { describe, expect, it } from 'vitest';
import { isIP } from 'node:net';
import { clientNetwork, plainIp } from './ip-range.ts';

describe('clientNetwork', () => {
  it.each([
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:DB8:1:2::9', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:ff::1', 60, '2001:db8:1:f0::/60'],
    ['2001:db8:1:2::1', 48, '2001:db8:1::/48'],
    ['fe80::1%eth0', 64, 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', 96, '64:ff9b:0:0:0:0::/96'],
    ['2001:db8::1', 128, '2001:db8::1'],
    // The whole address, as plainIp writes it: without the zone id.
    ['fe80::1%eth0', 128, 'fe80::1'],
    ['::ffff:192.0.2.1', 64, '192.0.2.1'],
    // IPv4-mapped in other spellings: the IPv4 client, not a /64 shared with every other one.
    ['::FFFF:192.0.2.1', 64, '192.0.2.1'],
    ['::ffff:c000:201', 64, '192.0.2.1'],
    ['::FFFF:C000:0201', 128, '192.0.2.1'],
    ['0:0:0:0:0:ffff:192.0.2.1', 64, '192.0.2.1'],
    ['::fffe:c000:201', 64, '0:0:0:0::/64'],
    ['1::ffff:c000:201', 64, '1:0:0:0::/64'],
    ['192.0.2.1', 64, '192.0.2.1'],
    ['', 64, ''],
    ['not:an:address', 64, 'not:an:address'],
  ] as const)('keys %s with prefix %i as %s', (address, prefix, expected) => {
    expect(clientNetwork(address, prefix)).toBe(expected);
  });
});

describe('plainIp', () => {
  it.each([
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::FFFF:10.0.0.1', '10.0.0.1'],
    ['::ffff:a00:1', '10.0.0.1'],
    ['::ffff:102:304', '1.2.3.4'],
    ['0:0:0:0:0:FFFF:0A00:0001', '10.0.0.1'],
    ['0::ffff:255.255.255.255', '255.255.255.255'],
    ['10.0.0.1', '10.0.0.1'],
    ['2001:db8::1', '2001:db8::1'],
    ['::ffff', '::ffff'],
    ['::ffff:0:a00:1', '::ffff:0:a00:1'],
    ['1::ffff:a00:1', '1::ffff:a00:1'],
    ['::ffff:x:1', '::ffff:x:1'],
    // Zone ids name an interface of the gateway's host: dropped, in every form.
    ['fe80::1%eth0', 'fe80::1'],
    ['FE80::abcd:1%25', 'FE80::abcd:1'],
    ['::ffff:10.0.0.1%eth0', '10.0.0.1'],
    ['::ffff:a00:1%2', '10.0.0.1'],
    // Not addresses: as they are.
    ['::ffff:1.2.3.256', '::ffff:1.2.3.256'],
    ['::ffff:01.2.3.4', '::ffff:01.2.3.4'],
    ['::ffff:1.2.3', '::ffff:1.2.3'],
    // IPv4-translated (::ffff:0:0/96), not IPv4-mapped: an IPv6 address of its own.
    ['::ffff:0:192.0.2.1', '::ffff:0:192.0.2.1'],
    ['10.0.0.1%eth0', '10.0.0.1%eth0'],
    ['%eth0', '%eth0'],
    ['x%eth0', 'x%eth0'],
    ['[::ffff:10.0.0.1]', '[::ffff:10.0.0.1]'],
    ['[fe80::1%eth0]', '[fe80::1%eth0]'],
    ['', ''],
  ])('writes %s as %s', (address, expected) => {
    expect(plainIp(address)).toBe(expected);
  });

  it('gives an address node reads as the same address, and every IPv4-mapped spelling as its IPv4 one', () => {
    const random = randomNumbers(5);
    const next = (): number => random.next().value;
    const wrong: string[] = [];
    for (let round = 0; round < 2_000; round += 1) {
      const ipv4 = `${next() % 256}.${next() % 256}.${next() % 256}.${next() % 256}`;
      const [a, b, c, d] = ipv4.split('.').map(Number) as [number, number, number, number];
      const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
      for (const mapped of [`::ffff:${ipv4}`, `::FFFF:${hex}`, `0:0:0:0:0:ffff:${hex}`, `0::FfFf:${ipv4}%eth${round}`]) {
        if (plainIp(mapped) !== ipv4) wrong.push(`${mapped}: ${plainIp(mapped)}, not ${ipv4}`);
      }
      const other = `2001:db8::${hex}`;
      for (const [text, expected] of [[other, other], [`${other}%${round}`, other], [ipv4, ipv4]]) {
        const plain = plainIp(text!);
        if (plain !== expected || isIP(plain) === 0) wrong.push(`${text}: ${plain}, not ${expected}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

/** The first implementation (split, `net.isIP`, arrays): slow on the hot path, plain to check against. */
function referenceNetwork(address: string, ipv6Prefix: number): string {
  if (address.indexOf(':') === -1) return address;
  if (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  const zone = address.indexOf('%');
  const text = zone === -1 ? address : address.slice(0, zone);
  if (isIP(text) !== 6) return address;
  const parts = (half: string): number[] =>
    half === ''
      ? []
      : half.split(':').flatMap((part) => {
          if (!part.includes('.')) return [parseInt(part, 16)];
          const [a, b, c, d] = part.split('.').map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        });
  const gap = text.indexOf('::');
  const head = parts(gap === -1 ? text : text.slice(0, gap));
  const tail = gap === -1 ? [] : parts(text.slice(gap + 2));
  const groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  // IPv4-mapped in any spelling: the IPv4 address, whatever the prefix.
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  if (ipv6Prefix >= 128) return text;
  let key = '';
  for (let index = 0; index < ipv6Prefix >> 4; index += 1) key += `${groups[index]!.toString(16)}:`;
  const partBits = ipv6Prefix & 15;
  if (partBits > 0) key += `${(groups[ipv6Prefix >> 4]! & (0xffff << (16 - partBits)) & 0xffff).toString(16)}:`;
  return `${key}:/${ipv6Prefix}`;
}

/** A small deterministic generator, so a failure names an input that reproduces. */
function* randomNumbers(seed: number): Generator<number, never> {
  let state = seed;
  for (;;) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    yield state >>> 8;
  }
}

describe('clientNetwork against a plain reference', () => {
  const addresses = [
    '::', '::1', '1::', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1::8', '1:2:3:4:5:6::8', '1::3:4:5:6:7:8',
    '2001:db8::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'FFFF:Ab:0:00:000:0000:0001:fedc',
    '2001:db8:85a3::8a2e:370:7334', '2001:0db8:0000:0000:0000:ff00:0042:8329', 'fe80::1%eth0',
    'fe80::abcd:1%25', 'fe80::%1', '::%eth0', '::ffff:192.0.2.1', '::FFFF:192.0.2.1', '::ffff:0:192.0.2.1',
    '64:ff9b::192.0.2.1', '::192.0.2.1', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5::255.255.255.255', '1::0.0.0.0',
    // Not addresses: returned as they are.
    ':', ':::', '1:::2', '1::2::3', ':1::', '1:', ':1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8', '12345::', 'g::1', '1::2.3.4', '1::01.2.3.4', '1::1.2.3.256', '1.2.3.4::', '::1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4', '1:2:3:4:5:6::1.2.3.4', '::1.2.3.4.5', ' ::1', '::1 ', '%eth0', '::x%eth0',
  ];
  it('gives the reference key of every address at every prefix length', () => {
    for (const address of addresses) {
      for (let prefix = 1; prefix <= 128; prefix += 1) {
        expect(clientNetwork(address, prefix), `${address} /${prefix}`).toBe(referenceNetwork(address, prefix));
      }
    }
  });

  it('gives the reference key of random addresses written in every form', () => {
    const random = randomNumbers(7);
    const next = (): number => random.next().value;
    // Differences are gathered and compared once: an expect() per case cost most of the test's time.
    const wrong: string[] = [];
    const notRead: string[] = [];
    for (let round = 0; round < 2_000; round += 1) {
      // Runs of zero groups make `::` likely.
      const groups = Array.from({ length: 8 }, () => (next() % 3 === 0 ? 0 : next() % (next() % 2 ? 0x10000 : 0x100)));
      const full = groups.map((group) => group.toString(16)).join(':');
      const padded = groups.map((group) => group.toString(16).padStart(4, '0').toUpperCase()).join(':');
      const start = next() % 8;
      const length = 1 + (next() % (8 - start));
      const left = groups.slice(0, start).map((group) => group.toString(16)).join(':');
      const right = groups.slice(start + length).map((group) => group.toString(16)).join(':');
      const compressed = `${left}::${right}`;
      const ipv4 = `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
      const mixed = `${groups.slice(0, 6).map((group) => group.toString(16)).join(':')}:${ipv4}`;
      const mixedCompressed = start < 6 ? `${left}::${groups.slice(Math.min(start + length, 6), 6).map((group) => group.toString(16)).join(':')}${start + length < 6 ? ':' : ''}${ipv4}` : mixed;
      for (const address of [full, padded, compressed, mixed, mixedCompressed, `${compressed}%eth${start}`]) {
        // Below 128, so that a key read from the address differs from the address.
        const prefix = 1 + (next() % 127);
        const [key, expected] = [clientNetwork(address, prefix), referenceNetwork(address, prefix)];
        if (key !== expected) wrong.push(`${address} /${prefix}: ${key}, not ${expected}`);
        if (expected === address) notRead.push(address);
      }
    }
    expect(wrong).toEqual([]);
    expect(notRead, 'written as addresses but not read as such').toEqual([]);
  });

  it('refuses what the reference refuses among random text of address characters', () => {
    const random = randomNumbers(11);
    const next = (): number => random.next().value;
    const alphabet = '0123456789abcdefABCDEFg:::..%';
    let accepted = 0;
    const wrong: string[] = [];
    for (let round = 0; round < 20_000; round += 1) {
      let address = '';
      for (let length = next() % 24; length > 0; length -= 1) address += alphabet[next() % alphabet.length];
      const prefix = 1 + (next() % 128);
      const expected = referenceNetwork(address, prefix);
      if (expected.endsWith(`/${prefix}`)) accepted += 1;
      const key = clientNetwork(address, prefix);
      if (key !== expected) wrong.push(`${address} /${prefix}: ${key}, not ${expected}`);
    }
    expect(wrong).toEqual([]);
    // The random text holds real addresses too, not only refusals.
    expect(accepted).toBeGreaterThan(100);
  });
});
