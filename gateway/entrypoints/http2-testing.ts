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
  const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return {
    sessions,
    client,
    close: async () => {
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
