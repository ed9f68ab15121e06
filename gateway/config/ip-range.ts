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

const isLoopbackAddress = ipRangeMatcher(parseIpRanges('loopback')!);

/** True when a listener bound to `host` is reachable from this machine only: `localhost`, 127.0.0.0/8 or ::1 (undefined means every interface). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  return host.toLowerCase() === 'localhost' || isLoopbackAddress(host);
}
