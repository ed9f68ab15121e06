import { createServer, type Server } from 'node:http';
import { connect as http2Connect, constants, createServer as createHttp2Server, type ClientHttp2Session, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { initialContext } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import type { AttemptResult } from './transport.ts';
import { http2Attempt } from './transport-http2-attempt.ts';
import { NEVER_SENT } from './transport-outcome.ts';
import { recordingPick } from './transport-testing.ts';

const listen = async (server: Server | Http2Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/** A session to `port` once it is connected. */
async function connected(port: number): Promise<ClientHttp2Session> {
  const session = http2Connect(`http://127.0.0.1:${port}`);
  await new Promise((ready) => session.once('connect', ready));
  return session;
}

describe('http2Attempt: a request sent again after a going-away session refused it, ended (its client gone) while the fresh session still connects', () => {
  let backend: Http2Server;
  let backendPort: number;
  let gateway: Server;
  /** Streams the backend saw, refused ones included. */
  let streams = 0;
  /** What the attempt's `sessions` hands out, in turn. */
  let handedOut: Promise<ClientHttp2Session>[] = [];
  let calls = 0;
  let last: Promise<{ result: AttemptResult; reports: UpstreamOutcome[] }> | undefined;
  const backendSessions: ServerHttp2Session[] = [];

  beforeAll(async () => {
    // Answers a session's first stream; refuses every later one unprocessed with a graceful GOAWAY, as a server rotating its connections.
    backend = createHttp2Server((request, response) => {
      streams += 1;
      if ((request.stream.id ?? 0) > 1) return void request.stream.session?.goaway(constants.NGHTTP2_NO_ERROR, request.stream.id! - 2);
      response.end('first');
    });
    backend.on('session', (session: ServerHttp2Session) => backendSessions.push(session));
    backendPort = await listen(backend);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, reports } = recordingPick();
      last = http2Attempt(context, () => handedOut[calls++]!, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, null, 'http').then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, reports };
      });
    });
    await listen(gateway);
  });
  afterAll(async () => {
    for (const session of backendSessions) session.destroy();
    gateway.closeAllConnections();
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
  });

  it("is the instance's attempt, not unsent: the refused stream reached it; the pick is still released unused once the fresh session connects", async () => {
    // A session whose first stream is spent, so that the attempt's stream is refused.
    const going = await connected(backendPort);
    const first = going.request({ ':path': '/first' });
    first.resume();
    await new Promise((ended) => first.once('end', ended));
    let connectFresh!: (live: ClientHttp2Session) => void;
    const fresh = new Promise<ClientHttp2Session>((resolve) => (connectFresh = resolve));
    handedOut = [Promise.resolve(going), fresh];
    calls = 0;
    const before = streams;
    let late: ClientHttp2Session | undefined;
    try {
      const { port } = gateway.address() as AddressInfo;
      const client = connect(port, '127.0.0.1');
      client.on('error', () => undefined);
      client.write('GET /call HTTP/1.1\r\nhost: gateway\r\n\r\n');
      // Refused on the going-away session, and sent again on a fresh one (the second `sessions` call), still connecting: the client leaves.
      await waitFor(() => calls === 2);
      expect(streams).toBe(before + 1);
      client.destroy();
      const { result, reports } = await last!;
      expect(result).toMatchObject({ ok: false, errorClass: 'cancelled', responseStarted: false });
      expect(result).not.toHaveProperty('unsent');
      expect(reports).toEqual([]);
      late = await connected(backendPort);
      connectFresh(late);
      await (result as { released?: Promise<void> }).released;
      // The refused stream was no failure, and nothing went on the late session.
      expect(reports).toEqual([NEVER_SENT]);
      expect(late.state.nextStreamID ?? 1).toBe(1);
    } finally {
      going.destroy();
      late?.destroy();
    }
  });
});
