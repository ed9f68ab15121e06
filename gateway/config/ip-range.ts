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

/**
 * An address as the gateway names a client or a peer everywhere (logs, access lists, trusted
 * proxies, rate-limit and hash keys, PROXY headers): an IPv4-mapped IPv6 address (RFC 4291
 * §2.5.5.2) as the IPv4 address it maps, in every spelling (`::ffff:10.0.0.1`, `::FFFF:10.0.0.1`,
 * `::ffff:a00:1`, `0:0:0:0:0:ffff:10.0.0.1`), and an IPv6 address without its zone id
 * (`fe80::1%eth0` as `fe80::1`: it names an interface of the gateway's host, which means nothing to
 * anyone else, and Envoy and nginx write link-local peers without it too). Any other text is
 * returned as it is: an address in brackets or with a port is `forwardedForAddress`'s to read.
 */
export function plainIp(address: string): string {
  // The form node gives a dual-stack listener's IPv4 peers, without a scan.
  if (isDottedMapped(address)) return address.slice(7);
  const zone = address.indexOf('%');
  if ((zone === -1 && !MAPPED_MARK.test(address)) || !readIpv6Groups(address)) return address;
  return mappedIpv4() ?? (zone === -1 ? address : address.slice(0, zone));
}

/** True for `::ffff:` and a dotted IPv4 address, the form node gives a dual-stack listener's IPv4 peers. */
function isDottedMapped(address: string): boolean {
  return address.startsWith('::ffff:') && readIpv4(address, 7, address.length) !== -1;
}

/** The IPv4 address `IPV6_GROUPS` maps (`::ffff:0:0/96`), or undefined when it is no IPv4-mapped address. */
function mappedIpv4(): string | undefined {
  for (let index = 0; index < 5; index += 1) if (IPV6_GROUPS[index] !== 0) return undefined;
  if (IPV6_GROUPS[5] !== 0xffff) return undefined;
  const high = IPV6_GROUPS[6]!;
  const low = IPV6_GROUPS[7]!;
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** What every spelling of an IPv4-mapped address holds; text without it is not one. */
const MAPPED_MARK = /:ffff:/i;

/**
 * The address of one `X-Forwarded-For` entry: an IP address, or one with a port as some proxies
 * write it (`203.0.113.7:5678`, `[2001:db8::1]:443`, `[2001:db8::1]`, as Azure Application
 * Gateway does), as `plainIp` writes it (IPv4-mapped addresses as their IPv4 one, no zone id);
 * undefined for anything else.
 */
export function forwardedForAddress(entry: string): string | undefined {
  const text = entry.trim();
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return undefined;
    const rest = text.slice(close + 1);
    const inner = text.slice(1, close);
    return (rest === '' || isPortSuffix(rest)) && isIP(inner) === 6 ? plainIp(inner) : undefined;
  }
  const plain = plainIp(text);
  if (isIP(plain) !== 0) return plain;
  const colon = text.indexOf(':');
  if (colon === -1 || colon !== text.lastIndexOf(':') || !isPortSuffix(text.slice(colon))) return undefined;
  const host = text.slice(0, colon);
  return isIP(host) === 4 ? host : undefined;
}

/** True for `:` and a port number, 0 to 65535, of at most five digits. */
function isPortSuffix(text: string): boolean {
  return /^:\d{1,5}$/.test(text) && Number(text.slice(1)) <= 65535;
}

/**
 * The client key of `address` for per-client state: an IPv4 address (also IPv4-mapped) as it is,
 * an IPv6 address as the network of its first `ipv6Prefix` bits (`2001:db8:1:2::/64`), since a
 * provider hands one customer a whole /64 (RFC 6177) and per address it would hold 2^64 keys.
 * Traefik's `ipStrategy.ipv6Subnet`; with a prefix of 128, the address as `plainIp` writes it.
 * Text that is not an address is returned as it is.
 */
export function clientNetwork(address: string, ipv6Prefix: number): string {
  if (address.indexOf(':') === -1) return address;
  if (isDottedMapped(address)) return address.slice(7);
  if (!readIpv6Groups(address)) return address;
  return mappedIpv4() ?? (ipv6Prefix >= 128 ? plainIp(address) : ipv6NetworkKey(ipv6Prefix));
}

/**
 * The eight groups of the address `readIpv6Groups` read last. Rate limiting keys every IPv6
 * request, so one scan fills this module's buffer instead of splitting and joining new arrays
 * (3 µs a request); nothing awaits between the read and its use.
 */
const IPV6_GROUPS = new Uint16Array(8);

const COLON = 0x3a;
const DOT = 0x2e;

/** The key of the first `prefix` bits of `IPV6_GROUPS`: whole groups in hex, then the masked partial one. */
function ipv6NetworkKey(prefix: number): string {
  let key = '';
  const whole = prefix >> 4;
  for (let index = 0; index < whole; index += 1) key += `${IPV6_GROUPS[index]!.toString(16)}:`;
  const partBits = prefix & 15;
  if (partBits > 0) key += `${(IPV6_GROUPS[whole]! & (0xffff << (16 - partBits)) & 0xffff).toString(16)}:`;
  return `${key}:/${prefix}`;
}

/**
 * Reads an IPv6 address (a `%zone` ignored, an IPv4 tail allowed) into `IPV6_GROUPS` in one scan;
 * false when it is not one by the rules `net.isIP` applies (groups of 1 to 4 hex digits, at most
 * one `::` standing for at least one group, a dotted IPv4 tail without leading zeros).
 */
function readIpv6Groups(text: string): boolean {
  const zone = text.indexOf('%');
  const end = zone === -1 ? text.length : zone;
  let count = 0;
  let gap = -1;
  let at = 0;
  if (end >= 2 && text.charCodeAt(0) === COLON && text.charCodeAt(1) === COLON) {
    gap = 0;
    at = 2;
    if (at === end) return fillGap(count, gap);
  }
  for (;;) {
    // A group (or the IPv4 tail) starts at `at`.
    let value = 0;
    let digits = 0;
    let cursor = at;
    while (cursor < end && digits < 5) {
      const digit = hexValue(text.charCodeAt(cursor));
      if (digit === -1) break;
      value = (value << 4) | digit;
      digits += 1;
      cursor += 1;
    }
    if (cursor < end && text.charCodeAt(cursor) === DOT) {
      if (count > 6) return false;
      const ipv4 = readIpv4(text, at, end);
      if (ipv4 === -1) return false;
      IPV6_GROUPS[count] = ipv4 >>> 16;
      IPV6_GROUPS[count + 1] = ipv4 & 0xffff;
      count += 2;
      break;
    }
    if (digits === 0 || digits > 4 || count === 8) return false;
    IPV6_GROUPS[count] = value;
    count += 1;
    if (cursor === end) break;
    if (text.charCodeAt(cursor) !== COLON) return false;
    cursor += 1;
    if (cursor < end && text.charCodeAt(cursor) === COLON) {
      if (gap !== -1) return false;
      gap = count;
      cursor += 1;
      if (cursor === end) break;
    } else if (cursor === end) return false;
    at = cursor;
  }
  return fillGap(count, gap);
}

/** Moves the groups after a `::` to the end and zeroes the ones it stands for; false when the count is wrong. */
function fillGap(count: number, gap: number): boolean {
  if (gap === -1) return count === 8;
  if (count > 7) return false;
  IPV6_GROUPS.copyWithin(8 - (count - gap), gap, count);
  IPV6_GROUPS.fill(0, gap, 8 - (count - gap));
  return true;
}

/** The value of a hex digit's character code, or -1. */
function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** The 32-bit value of the dotted IPv4 address that fills `text` from `start` to `end`, or -1 (as `net.isIP`: no leading zeros). */
function readIpv4(text: string, start: number, end: number): number {
  let result = 0;
  let at = start;
  for (let part = 0; part < 4; part += 1) {
    if (part > 0) {
      if (at >= end || text.charCodeAt(at) !== DOT) return -1;
      at += 1;
    }
    const first = at;
    let value = 0;
    while (at < end && at - first < 3) {
      const code = text.charCodeAt(at);
      if (code < 0x30 || code > 0x39) break;
      value = value * 10 + code - 0x30;
      at += 1;
    }
    const digits = at - first;
    if (digits === 0 || value > 255 || (digits > 1 && text.charCodeAt(first) === 0x30)) return -1;
    result = result * 256 + value;
  }
  return at === end ? result : -1;
}

const isLoopbackAddress = ipRangeMatcher(parseIpRanges('loopback')!);

/** True when a listener bound to `host` is reachable from this machine only: `localhost`, 127.0.0.0/8 or ::1 (undefined means every interface). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  return host.toLowerCase() === 'localhost' || isLoopbackAddress(host);
}
