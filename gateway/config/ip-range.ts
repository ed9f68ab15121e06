import { BlockList, isIP } from 'node:net';

/** One address range: a single address is a range with the full prefix (32 or 128). */
export interface IpRange {
  readonly family: 'ipv4' | 'ipv6';
  readonly address: string;
  readonly prefix: number;
}

/** Names that stand for well-known ranges, so a config need not spell them out. */
const NAMED_RANGES: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/**
 * Parses an IP address (`10.0.0.7`, `::1`), a CIDR (`10.0.0.0/8`, `fd00::/8`) or a name of
 * well-known ranges (`loopback`, `private`). Returns undefined when the text is none of these.
 */
export function parseIpRanges(text: string): IpRange[] | undefined {
  const named = NAMED_RANGES[text.trim().toLowerCase()];
  if (named) return named.map((cidr) => parseOne(cidr)!);
  const range = parseOne(text.trim());
  return range ? [range] : undefined;
}

function parseOne(text: string): IpRange | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const bits = version === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bits) return undefined;
  return { family: version === 4 ? 'ipv4' : 'ipv6', address, prefix };
}

/** Builds a matcher for `ranges`; IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) match IPv4 ranges. */
export function ipRangeMatcher(ranges: readonly IpRange[]): (address: string) => boolean {
  if (ranges.length === 0) return () => false;
  const list = new BlockList();
  for (const range of ranges) list.addSubnet(range.address, range.prefix, range.family);
  return (address) => {
    const version = isIP(address);
    return version !== 0 && list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/** Strips the `::ffff:` of an IPv4-mapped IPv6 address, so logs and hashes see `10.0.0.1`. */
export function plainIp(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * The client key of `address` for per-client state: an IPv4 address (also IPv4-mapped) as it is,
 * an IPv6 address as the network of its first `ipv6Prefix` bits (`2001:db8:1:2::/64`), since a
 * provider hands one customer a whole /64 (RFC 6177) and per address it would hold 2^64 keys.
 * Traefik's `ipStrategy.ipv6Subnet`. Text that is not an address is returned as it is.
 */
export function clientNetwork(address: string, ipv6Prefix: number): string {
  if (address.indexOf(':') === -1) return address;
  const plain = plainIp(address);
  if (plain !== address || ipv6Prefix >= 128) return plain;
  const groups = ipv6Groups(address);
  if (!groups) return address;
  let key = '';
  const whole = ipv6Prefix >> 4;
  for (let index = 0; index < whole; index += 1) key += `${groups[index]!.toString(16)}:`;
  const partBits = ipv6Prefix & 15;
  if (partBits > 0) key += `${(groups[whole]! & (0xffff << (16 - partBits)) & 0xffff).toString(16)}:`;
  return `${key}:/${ipv6Prefix}`;
}

/** The eight 16-bit groups of an IPv6 address (zone and an IPv4 tail allowed), or undefined. */
function ipv6Groups(text: string): number[] | undefined {
  const zone = text.indexOf('%');
  const address = zone === -1 ? text : text.slice(0, zone);
  if (isIP(address) !== 6) return undefined;
  const parts = (half: string): number[] => {
    if (half === '') return [];
    const groups: number[] = [];
    for (const part of half.split(':')) {
      if (part.includes('.')) {
        const [a, b, c, d] = part.split('.').map(Number) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else groups.push(parseInt(part, 16));
    }
    return groups;
  };
  const gap = address.indexOf('::');
  if (gap === -1) return parts(address);
  const head = parts(address.slice(0, gap));
  const tail = parts(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

const isLoopbackAddress = ipRangeMatcher(parseIpRanges('loopback')!);

/** True when a listener bound to `host` is reachable from this machine only: `localhost`, 127.0.0.0/8 or ::1 (undefined means every interface). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  return host.toLowerCase() === 'localhost' || isLoopbackAddress(host);
}
