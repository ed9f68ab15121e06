/** TLS record payloads are at most 2^14 bytes (RFC 8446 §5.1); a little slack for older encodings. */
const MAX_RECORD_LENGTH = 16_384 + 2_048;

/**
 * What the ClientHello of a connection says about SNI: the name, `none` (no SNI, or not a ClientHello
 * we can read), or `too-large` (more than `MAX_HELD_BYTES` read and the ClientHello still not whole).
 */
export type ServerNameVerdict = { readonly serverName: string } | 'none' | 'too-large';

/**
 * A ClientHello larger than this (with its 4-byte header) is not read for SNI (`none`). Real ones,
 * post-quantum key shares included, are a few kilobytes; a larger bound let a client that drips
 * its bytes make the gateway gather (and judge) up to 72 KB per connection.
 */
const MAX_HELLO_LENGTH = 16_384;

/**
 * The most bytes of a connection read before the ClientHello's verdict: a ClientHello of
 * `MAX_HELLO_LENGTH` in one or two records takes 10 bytes more, and the slack leaves room for a
 * record of `MAX_RECORD_LENGTH`, or the headers of some 800 records. Without it a client that sent its ClientHello one byte a record (5
 * bytes of header each) had the gateway hold 96 KiB per connection before any verdict. Envoy's
 * tls_inspector caps the same wait (`max_client_hello_size`, 64 KiB).
 */
export const MAX_HELD_BYTES = MAX_HELLO_LENGTH + 4_096;

/**
 * For `peekSocket` on a TLS port, one per connection: the SNI host name of the ClientHello
 * (RFC 8446 §4.1.2, RFC 6066 §3), `none` when it has none (or is not a ClientHello we can read:
 * OpenSSL will refuse it), undefined until the whole ClientHello has arrived (`too-large` past `MAX_HELD_BYTES`). A ClientHello may
 * span several records (RFC 8446 §5.1: clients and middleboxes fragment it, even inside its
 * 4-byte header); their handshake bytes are joined before reading. Each call is given the bytes
 * of the call before and more, and resumes at the first record it has not taken, so a ClientHello
 * dripped in tiny records costs time in proportion to its length, not to its square.
 */
export function serverNameReader(): (data: Buffer) => ServerNameVerdict | undefined {
  /** Start and end in the data of each record's handshake bytes taken so far. */
  const spans: number[] = [];
  let at = 0;
  let gathered = 0;
  let helloEnd = -1;
  return (data) => {
    while (helloEnd === -1 || gathered < helloEnd) {
      if (data.length < at + 5) return data.length > MAX_HELD_BYTES ? 'too-large' : undefined;
      if (data[at] !== 0x16 /* handshake */) return 'none';
      const length = data.readUInt16BE(at + 3);
      // RFC 8446 §5.1: handshake records are never empty.
      if (length === 0 || length > MAX_RECORD_LENGTH) return 'none';
      if (data.length < at + 5 + length) return data.length > MAX_HELD_BYTES ? 'too-large' : undefined;
      if (spans.length === 0 && data[at + 5] !== 0x01 /* client_hello */) return 'none';
      spans.push(at + 5, at + 5 + length);
      gathered += length;
      at += 5 + length;
      if (helloEnd === -1 && gathered >= 4) {
        helloEnd = 4 + ((handshakeByte(data, spans, 1) << 16) | (handshakeByte(data, spans, 2) << 8) | handshakeByte(data, spans, 3));
        if (helloEnd > MAX_HELLO_LENGTH) return 'none';
      }
    }
    if (spans.length === 2) return readClientHello(data, spans[0]!, spans[0]! + helloEnd);
    const fragments: Buffer[] = [];
    for (let index = 0; index < spans.length; index += 2) fragments.push(data.subarray(spans[index], spans[index + 1]));
    return readClientHello(Buffer.concat(fragments, gathered), 0, helloEnd);
  };
}

/** The verdict of `serverNameReader` on bytes judged once, as they are. */
export function readServerName(data: Buffer): ServerNameVerdict | undefined {
  return serverNameReader()(data);
}

/** Byte `index` of the handshake bytes that `spans` mark in `data`. */
function handshakeByte(data: Buffer, spans: readonly number[], index: number): number {
  let remaining = index;
  for (let span = 0; ; span += 2) {
    const length = spans[span + 1]! - spans[span]!;
    if (remaining < length) return data[spans[span]! + remaining]!;
    remaining -= length;
  }
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

/** OpenSSL refuses a longer `host_name` (TLSEXT_MAXLEN_host_name); a DNS name has at most 253 characters. */
const MAX_SERVER_NAME_LENGTH = 255;

/**
 * The first `host_name` entry of a ServerNameList between `start` and `end`; `none` for one OpenSSL
 * would refuse (longer than 255 bytes, or holding a NUL), so that a passed-through ClientHello
 * never puts kilobytes of name in a log line.
 */
function serverNameOf(data: Buffer, start: number, end: number): ServerNameVerdict {
  let at = start;
  while (at + 3 <= end) {
    const type = data[at]!;
    const length = data.readUInt16BE(at + 1);
    at += 3;
    if (type === 0 /* host_name */ && at + length <= end && length > 0) {
      const name = data.subarray(at, at + length);
      return length > MAX_SERVER_NAME_LENGTH || name.includes(0) ? 'none' : { serverName: name.toString('latin1') };
    }
    at += length;
  }
  return 'none';
}
