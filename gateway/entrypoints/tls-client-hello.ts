/** TLS record payloads are at most 2^14 bytes (RFC 8446 §5.1); a little slack for older encodings. */
const MAX_RECORD_LENGTH = 16_384 + 2_048;

/** What the ClientHello of a connection says about SNI: the name, or `none` (no SNI, or not a ClientHello we can read). */
export type ServerNameVerdict = { readonly serverName: string } | 'none';

/** A ClientHello larger than this is not read for SNI (`none`); real ones are a few kilobytes at most. */
const MAX_HELLO_LENGTH = 4 * MAX_RECORD_LENGTH;

/**
 * For `peekSocket` on a TLS port: the SNI host name of the ClientHello (RFC 8446 §4.1.2, RFC 6066
 * §3), `none` when it has none (or is not a ClientHello we can read: OpenSSL will refuse it),
 * undefined until the whole ClientHello has arrived. A ClientHello may span several records
 * (RFC 8446 §5.1: clients and middleboxes that fragment it); they are joined before reading.
 */
export function readServerName(data: Buffer): ServerNameVerdict | undefined {
  if (data.length < 5) return undefined;
  if (data[0] !== 0x16 /* handshake */) return 'none';
  const recordLength = data.readUInt16BE(3);
  if (recordLength > MAX_RECORD_LENGTH) return 'none';
  if (data.length < 5 + recordLength) return undefined;
  if (recordLength < 4 || data[5] !== 0x01 /* client_hello */) return 'none';
  const helloEnd = 4 + data.readUIntBE(6, 3);
  if (helloEnd <= recordLength) return readClientHello(data, 5, 5 + helloEnd);
  if (helloEnd > MAX_HELLO_LENGTH) return 'none';
  // Fragmented: the handshake bytes of the records that follow, up to the end of the ClientHello.
  const fragments = [data.subarray(5, 5 + recordLength)];
  let gathered = recordLength;
  for (let at = 5 + recordLength; gathered < helloEnd; ) {
    if (data.length < at + 5) return undefined;
    if (data[at] !== 0x16) return 'none';
    const length = data.readUInt16BE(at + 3);
    if (length === 0 || length > MAX_RECORD_LENGTH) return 'none';
    if (data.length < at + 5 + length) return undefined;
    fragments.push(data.subarray(at + 5, at + 5 + length));
    gathered += length;
    at += 5 + length;
  }
  return readClientHello(Buffer.concat(fragments, gathered), 0, helloEnd);
}

/** The SNI verdict of the ClientHello handshake message (with its 4-byte header) from `start` to `end` of `data`. */
function readClientHello(data: Buffer, start: number, end: number): ServerNameVerdict {
  // Handshake header (4), legacy_version (2), random (32).
  let at = start + 4 + 2 + 32;
  const skip = (lengthBytes: 1 | 2): boolean => {
    if (at + lengthBytes > end) return false;
    at += lengthBytes + (lengthBytes === 1 ? data[at]! : data.readUInt16BE(at));
    return at <= end;
  };
  // legacy_session_id, cipher_suites, legacy_compression_methods.
  if (!skip(1) || !skip(2) || !skip(1) || at + 2 > end) return 'none';
  const extensionsEnd = Math.min(end, at + 2 + data.readUInt16BE(at));
  at += 2;
  while (at + 4 <= extensionsEnd) {
    const type = data.readUInt16BE(at);
    const length = data.readUInt16BE(at + 2);
    at += 4;
    if (type === 0 /* server_name */) return serverNameOf(data, at + 2, Math.min(at + length, extensionsEnd));
    at += length;
  }
  return 'none';
}

/** The first `host_name` entry of a ServerNameList between `start` and `end`. */
function serverNameOf(data: Buffer, start: number, end: number): ServerNameVerdict {
  let at = start;
  while (at + 3 <= end) {
    const type = data[at]!;
    const length = data.readUInt16BE(at + 1);
    at += 3;
    if (type === 0 /* host_name */ && at + length <= end && length > 0) return { serverName: data.toString('latin1', at, at + length) };
    at += length;
  }
  return 'none';
}
