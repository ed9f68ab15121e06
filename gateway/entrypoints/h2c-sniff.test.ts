import { connect, createServer, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { HTTP2_PREFACE, sniffPreface } from './h2c-sniff.ts';
import { peekSocket } from './socket-peek.ts';

describe('sniffPreface', () => {
  it.each([
    ['GET / HTTP/1.1\r\n', 'http/1.1'],
    ['POST /', 'http/1.1'],
    ['P', undefined],
    ['PRI * HTTP/2.0\r\n', undefined],
    ['PRI * HTTP/1.1\r\n\r\n', 'http/1.1'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'h2c'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04', 'h2c'],
  ])('judges %j as %s', (bytes, expected) => {
    expect(sniffPreface(Buffer.from(bytes, 'latin1'))).toBe(expected);
  });
});

describe('peekSocket', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  /** A server that peeks each connection for the preface, then reads what follows as the next server would. */
  function start(timeoutMs: number): Promise<{ port: number; verdicts: Promise<{ verdict: string | undefined; rest: string }> }> {
    return new Promise((resolve) => {
      let report: (value: { verdict: string | undefined; rest: string }) => void = () => undefined;
      const verdicts = new Promise<{ verdict: string | undefined; rest: string }>((done) => (report = done));
      server = createServer((socket: Socket) => {
        void peekSocket(socket, timeoutMs, sniffPreface).then((verdict) => {
          if (!verdict) return report({ verdict, rest: '' });
          let rest = '';
          socket.on('data', (chunk: Buffer) => {
            rest += chunk.toString('latin1');
            if (rest.endsWith('END')) report({ verdict, rest });
          });
        });
      });
      server.listen(0, '127.0.0.1', () => resolve({ port: (server!.address() as { port: number }).port, verdicts }));
    });
  }

  it('hands on every byte, the peeked ones first, when the preface arrives in pieces', async () => {
    const { port, verdicts } = await start(5_000);
    const client = connect(port, '127.0.0.1');
    client.write(HTTP2_PREFACE.subarray(0, 3));
    setImmediate(() => client.write(Buffer.concat([HTTP2_PREFACE.subarray(3), Buffer.from('frames END')])));
    expect(await verdicts).toEqual({ verdict: 'h2c', rest: `${HTTP2_PREFACE.toString('latin1')}frames END` });
    client.destroy();
  });

  it('shows the judge every byte so far and hands them all on when they drip in one at a time', async () => {
    // A stream stands in for the socket so that each byte is its own read.
    const stream = new PassThrough();
    const text = 'GET /a-path-long-enough-to-grow-the-buffer-several-times HTTP/1.1\r\n';
    const judged: string[] = [];
    const verdict = peekSocket(stream as unknown as Socket, 5_000, (bytes) => {
      judged.push(bytes.toString('latin1'));
      return bytes.length === text.length ? 'done' : undefined;
    });
    for (const byte of Buffer.from(text, 'latin1')) {
      stream.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await verdict).toBe('done');
    expect(judged).toEqual([...text].map((_char, index) => text.slice(0, index + 1)));
    expect((stream.read() as Buffer).toString('latin1')).toBe(text);
  });

  it('hands on an HTTP/1.1 request whole', async () => {
    const { port, verdicts } = await start(5_000);
    const client = connect(port, '127.0.0.1', () => client.write('GET / HTTP/1.1\r\nEND'));
    expect(await verdicts).toEqual({ verdict: 'http/1.1', rest: 'GET / HTTP/1.1\r\nEND' });
    client.destroy();
  });

  it('closes a connection that says too little in time', async () => {
    const { port, verdicts } = await start(100);
    const client = connect(port, '127.0.0.1', () => client.write('PRI'));
    const closed = new Promise((resolve) => client.on('close', resolve));
    expect((await verdicts).verdict).toBeUndefined();
    await closed;
  });
});
