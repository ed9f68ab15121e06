// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that tells an upstream
// the client's address on a forwarded TCP connection. Written here rather than taken from npm: the
// sending side is about forty lines of buffer writes, and the packages that exist (proxy-protocol-js,
// proxy-protocol-v2) are mostly parsers, unmaintained for years, and would add code on every connection.
import { isIPv4, isIPv6 } from 'node:net';
import { plainIp, type ProxyProtocolVersion } from '../config/index.ts';

/** The two ends of the client's connection to the gateway: the client, and the address it connected to. */
export interface ConnectionAddresses {
  readonly sourceAddress: string | undefined;
  readonly sourcePort: number | undefined;
  readonly destinationAddress: string | undefined;
  readonly destinationPort: number | undefined;
}

/** The 12-byte signature every version 2 header starts with. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/**
 * The PROXY header for a connection between `addresses`, in `version`. Both ends must be of one
 * family (IPv4 or IPv6); otherwise (a unix socket, an unknown address) the header says UNKNOWN /
 * LOCAL, which a receiver takes as "use the connection's own addresses".
 */
export function proxyProtocolHeader(version: ProxyProtocolVersion, addresses: ConnectionAddresses): Buffer {
  // The spec allows only plain IPv4 or IPv6 text in version 1 (HAProxy refuses the line otherwise)
  // and version 2 has 16 bytes with no room for a zone: `plainIp` writes both ends so.
  const source = addresses.sourceAddress === undefined ? '' : plainIp(addresses.sourceAddress);
  const destination = addresses.destinationAddress === undefined ? '' : plainIp(addresses.destinationAddress);
  const sourcePort = addresses.sourcePort ?? 0;
  const destinationPort = addresses.destinationPort ?? 0;
  const family = isIPv4(source) && isIPv4(destination) ? 4 : isIPv6(source) && isIPv6(destination) ? 6 : 0;
  if (version === 1) {
    return Buffer.from(family === 0 ? 'PROXY UNKNOWN\r\n' : `PROXY TCP${family} ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`, 'latin1');
  }
  if (family === 0) {
    // Version 2, command LOCAL (0x20), family UNSPEC, no address block.
    return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  }
  const addressLength = family === 4 ? 4 : 16;
  const header = Buffer.alloc(16 + addressLength * 2 + 4);
  PROXY_V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, command PROXY
  header[13] = family === 4 ? 0x11 : 0x21; // AF_INET or AF_INET6, over STREAM
  header.writeUInt16BE(addressLength * 2 + 4, 14);
  writeAddress(header, 16, source, family);
  writeAddress(header, 16 + addressLength, destination, family);
  header.writeUInt16BE(sourcePort, 16 + addressLength * 2);
  header.writeUInt16BE(destinationPort, 18 + addressLength * 2);
  return header;
}

function writeAddress(target: Buffer, offset: number, address: string, family: 4 | 6): void {
  if (family === 4) {
    address.split('.').forEach((octet, index) => (target[offset + index] = Number(octet)));
    return;
  }
  ipv6Groups(address).forEach((group, index) => target.writeUInt16BE(group, offset + index * 2));
}

/** The eight 16-bit groups of an IPv6 address, `::` expanded and a trailing dotted IPv4 part read. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const first = parse(head);
  if (tail === undefined) return first;
  const last = parse(tail);
  return [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
}
