import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_HELD_BYTES, readServerName, serverNameReader } from './tls-client-hello.ts';

/** The first bytes a real Node TLS client sends (its ClientHello), captured by a plain TCP server. */
async function clientHello(servername: string | undefined): Promise<Buffer> {
  const { connect: tlsConnect } = await import('node:tls');
  return new Promise((resolve) => {
    const server = createServer((socket: Socket) => {
      socket.once('data', (bytes: Buffer) => {
        resolve(bytes);
        socket.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      const client = tlsConnect({ host: '127.0.0.1', port, ...(servername === undefined ? {} : { servername }), ALPNProtocols: ['h2', 'http/1.1'] });
      client.on('error', () => undefined);
    });
  });
}

/** `hello` (one record, as Node sends it) with its SNI host name `name` replaced by `replacement`, every length around it fixed. */
function withServerName(hello: Buffer, name: string, replacement: Buffer): Buffer {
  const at = hello.indexOf(name, 0, 'latin1');
  const grown = replacement.length - name.length;
  const out = Buffer.concat([hello.subarray(0, at), replacement, hello.subarray(at + name.length)]);
  const add = (offset: number, bytes: 2 | 3) => (bytes === 2 ? out.writeUInt16BE(out.readUInt16BE(offset) + grown, offset) : out.writeUIntBE(out.readUIntBE(offset, 3) + grown, offset, 3));
  // Record length, handshake length, then the name's, its list's and its extension's lengths before it.
  add(3, 2);
  add(6, 3);
  for (const offset of [at - 2, at - 5, at - 7]) add(offset, 2);
  // The extensions' total length: after legacy_version and random, the session id, cipher suites and compression methods.
  let extensions = 5 + 4 + 2 + 32;
  extensions += 1 + out[extensions]!;
  extensions += 2 + out.readUInt16BE(extensions);
  extensions += 1 + out[extensions]!;
  add(extensions, 2);
  return out;
}

describe('readServerName', () => {
  const sockets: Socket[] = [];
  afterEach(() => sockets.splice(0).forEach((socket) => socket.destroy()));

  it('reads the SNI name of a real ClientHello', async () => {
    expect(readServerName(await clientHello('b.test'))).toEqual({ serverName: 'b.test' });
  });

  it('says none for a host name OpenSSL would refuse: longer than 255 bytes, or holding a NUL (a passed-through name reaches the access log)', async () => {
    const name = 'name.example.com';
    const hello = await clientHello(name);
    expect(readServerName(withServerName(hello, name, Buffer.from('x.example.com', 'latin1')))).toEqual({ serverName: 'x.example.com' });
    expect(readServerName(withServerName(hello, name, Buffer.from(`${'a'.repeat(60)}.`.repeat(4) + 'test', 'latin1')))).toEqual({ serverName: `${'a'.repeat(60)}.`.repeat(4) + 'test' });
    expect(readServerName(withServerName(hello, name, Buffer.from(`${'a'.repeat(60)}.`.repeat(5) + 'test', 'latin1')))).toBe('none');
    expect(readServerName(withServerName(hello, name, Buffer.from('a\0.example.com', 'latin1')))).toBe('none');
  });

  it('says none for a ClientHello without SNI', async () => {
    expect(readServerName(await clientHello(''))).toBe('none');
  });

  it('waits until the whole first record has arrived', async () => {
    const hello = await clientHello('a.example.com');
    for (const length of [0, 1, 4, 5, 40, hello.length - 1]) expect(readServerName(hello.subarray(0, length))).toBeUndefined();
    expect(readServerName(hello)).toEqual({ serverName: 'a.example.com' });
  });

  it('reads the SNI name of a ClientHello fragmented across records, once every fragment has arrived', async () => {
    const hello = await clientHello('a.example.com');
    const message = hello.subarray(5, 5 + hello.readUInt16BE(3));
    // Three handshake records of 40 bytes, 100 bytes and the rest, as fragmenting clients and middleboxes send them.
    const cuts = [0, 40, 140, message.length];
    const fragmented = Buffer.concat(
      cuts.slice(1).map((end, index) => {
        const header = Buffer.from([0x16, 3, 1, 0, 0]);
        header.writeUInt16BE(end - cuts[index]!, 3);
        return Buffer.concat([header, message.subarray(cuts[index], end)]);
      }),
    );
    for (const length of [45, 50, 150, fragmented.length - 1]) expect(readServerName(fragmented.subarray(0, length))).toBeUndefined();
    expect(readServerName(fragmented)).toEqual({ serverName: 'a.example.com' });
    // A record of another type where the next fragment should be: not a ClientHello to read.
    const interrupted = Buffer.from(fragmented);
    interrupted[45] = 0x17;
    expect(readServerName(interrupted)).toBe('none');
  });

  it.each([1, 3, 4, 100])('reads the SNI name of a ClientHello whose first record holds %i of its bytes, its handshake header split or not', async (cut) => {
    const hello = await clientHello('a.example.com');
    const message = hello.subarray(5, 5 + hello.readUInt16BE(3));
    const record = (bytes: Buffer) => Buffer.concat([Buffer.from([0x16, 3, 1, bytes.length >> 8, bytes.length & 255]), bytes]);
    const split = Buffer.concat([record(message.subarray(0, cut)), record(message.subarray(cut))]);
    expect(readServerName(split)).toEqual({ serverName: 'a.example.com' });
    // One reader given the bytes as they drip in, as peekSocket does: undefined until the last one.
    const reader = serverNameReader();
    for (let length = 0; length < split.length; length += 1) expect(reader(split.subarray(0, length))).toBeUndefined();
    expect(reader(split)).toEqual({ serverName: 'a.example.com' });
  });

  it('reads the SNI name of a ClientHello sent one byte a record', async () => {
    const hello = await clientHello('a.example.com');
    const message = hello.subarray(5, 5 + hello.readUInt16BE(3));
    const records = Buffer.concat([...message].map((byte) => Buffer.from([0x16, 3, 1, 0, 1, byte])));
    expect(readServerName(records)).toEqual({ serverName: 'a.example.com' });
  });

  it(`says too-large once more than ${MAX_HELD_BYTES} bytes were read without a whole ClientHello`, () => {
    // A ClientHello of 16 KB, one byte a record: 96 KiB before its end.
    const body = Buffer.alloc(16_384);
    body[0] = 0x01;
    body.writeUIntBE(16_384 - 4, 1, 3);
    const records = Buffer.concat([...body].map((byte) => Buffer.from([0x16, 3, 1, 0, 1, byte])));
    const reader = serverNameReader();
    for (let length = 0; length <= MAX_HELD_BYTES; length += 1_000) expect(reader(records.subarray(0, length))).toBeUndefined();
    expect(reader(records.subarray(0, MAX_HELD_BYTES))).toBeUndefined();
    expect(reader(records.subarray(0, MAX_HELD_BYTES + 1))).toBe('too-large');
  });

  it('says none for a ClientHello longer than 16 KB as soon as its header has arrived', () => {
    const header = Buffer.from([0x16, 3, 1, 0, 4, 0x01, 0, 0, 0]);
    header.writeUIntBE(16_384 - 4 + 1, 6, 3);
    expect(readServerName(header)).toBe('none');
    header.writeUIntBE(16_384 - 4, 6, 3);
    expect(readServerName(header)).toBeUndefined();
  });

  it('says none for what is not a TLS handshake', () => {
    expect(readServerName(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toBe('none');
    expect(readServerName(Buffer.from([0x16, 3, 1, 0xff, 0xff]))).toBe('none');
    expect(readServerName(Buffer.from([0x16, 3, 1, 0, 4, 0x02, 0, 0, 0]))).toBe('none');
  });

  it('says none instead of reading past a truncated extension list', async () => {
    const hello = Buffer.from(await clientHello('a.test'));
    // Claim a record that ends right after the cipher suites: the parser must stop at the record's end.
    hello.writeUInt16BE(4 + 2 + 32 + 1 + hello[5 + 4 + 2 + 32]! + 2, 3);
    expect(readServerName(hello)).toBe('none');
  });
});
