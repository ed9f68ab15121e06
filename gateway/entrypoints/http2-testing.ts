import { connect, type ClientHttp2Session } from 'node:http2';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { pino } from 'pino';
import type { ClientRequest, ClientResponse } from '../context.ts';
import type { RefusalReport } from './http1-refusal.ts';
import { Http2Sessions } from './http2-sessions.ts';

const LIMITS = { maxHeaderSize: 16_384, headersTimeoutMs: 10_000, requestTimeoutMs: 0, keepAliveTimeoutMs: 75_000 };

/** `Http2Sessions` behind a plaintext listener on port 0, and a client speaking HTTP/2 to it with prior knowledge. */
export interface PlainHttp2 {
  readonly sessions: Http2Sessions;
  readonly client: ClientHttp2Session;
  /** The listener's port, for clients of a test's own. */
  readonly port: number;
  /** Destroys the client and closes the listener. */
  close(): Promise<void>;
}

/**
 * Starts `Http2Sessions` with `handler` (as an h2c entry point hands it requests), `limits` over the
 * defaults and `refused` told of the resets no handler saw (none kept by default), and connects a client.
 */
export async function startPlainHttp2(
  handler: (request: ClientRequest, response: ClientResponse) => void,
  limits: Partial<typeof LIMITS> = {},
  refused: RefusalReport = () => undefined,
): Promise<PlainHttp2> {
  const sessions = new Http2Sessions(handler, refused, { ...LIMITS, ...limits }, pino({ level: 'silent' }));
  const server: Server = createServer((socket) => sessions.accept(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const client = connect(`http://127.0.0.1:${port}`);
  return {
    sessions,
    client,
    port,
    close: async () => {
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** One HTTP/2 frame (RFC 9113 §4.1): `type`, `flags` and `streamId`, then `payload`. */
export function http2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/**
 * The bytes a client sends to open a session with prior knowledge and a GET of `path` on stream 1
 * whose header block is spread over a HEADERS frame and `continuations` CONTINUATION frames, each of
 * those with one header field (HPACK literals, RFC 7541 §6.2.2).
 */
export function continuedGet(path: string, continuations: number): Buffer {
  const literal = (name: string, value: string) => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  // :method GET and :scheme http from the static table, :authority (1) and :path (4) as literals with a static name.
  const first = Buffer.concat([Buffer.from([0x82, 0x86, 0x01, 2]), Buffer.from('gw'), Buffer.from([0x04, path.length]), Buffer.from(path)]);
  const frames = [http2Frame(1, continuations === 0 ? 0x5 : 0x1, 1, first)];
  // END_STREAM (0x1) on the HEADERS frame, END_HEADERS (0x4) on the last frame of the block.
  for (let index = 0; index < continuations; index += 1) frames.push(http2Frame(9, index === continuations - 1 ? 0x4 : 0, 1, literal(`x-part-${index}`, 'v')));
  return Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), http2Frame(4, 0, 0, Buffer.alloc(0)), ...frames]);
}
