import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo, Server as TcpServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import type { AttemptResult } from './transport.ts';
import { recordingPick } from './transport-testing.ts';

/** For tests: listens on a free loopback port and returns it. */
export async function listenOnLoopback(server: Server | Http2Server | TcpServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** For tests: polls `condition` every 10 ms; false if it still fails after `withinMs`. */
export async function until(condition: () => boolean, withinMs: number): Promise<boolean> {
  for (const deadline = performance.now() + withinMs; !condition(); await delay(10)) if (performance.now() > deadline) return false;
  return true;
}

/**
 * For tests: an h2c backend that takes one stream at a time per session (as a gRPC server with
 * long-lived streams at its limit does) and answers `on session <index in sessions>`; a `/hold`
 * stream waits in `held` until the test calls its answer.
 */
export interface HoldingBackend {
  readonly port: number;
  readonly sessions: ServerHttp2Session[];
  readonly held: (() => void)[];
  close(): Promise<void>;
}

/** For tests: starts a `HoldingBackend`. */
export async function startHoldingBackend(): Promise<HoldingBackend> {
  const sessions: ServerHttp2Session[] = [];
  const held: (() => void)[] = [];
  const server = createHttp2Server({ settings: { maxConcurrentStreams: 1 } }, (request, response) => {
    const answer = () => response.end(`on session ${sessions.indexOf(request.stream.session as ServerHttp2Session)}`);
    if (request.url === '/hold') held.push(answer);
    else answer();
  });
  server.on('session', (session) => sessions.push(session));
  const port = await listenOnLoopback(server);
  return {
    port,
    sessions,
    held,
    close: async () => {
      for (const session of sessions) session.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** One attempt through a `AttemptGateway`: its result and what it reported to its pick. */
export interface EndedAttempt {
  readonly result: AttemptResult;
  readonly outcome: UpstreamOutcome | undefined;
}

/**
 * For tests: an HTTP/1.1 listener that runs each request through `attempt` (the gateway's error
 * answer when it fails) and keeps how each ended, in the order they ended.
 */
export interface AttemptGateway {
  readonly port: number;
  attempt: (context: GatewayContext, pick: ReturnType<typeof recordingPick>['pick']) => Promise<AttemptResult>;
  readonly ended: EndedAttempt[];
  /** Sends a GET for `path` and resolves with the status and the body's text. */
  send(path: string): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

/** For tests: starts an `AttemptGateway` whose `attempt` the test sets. */
export async function startAttemptGateway(): Promise<AttemptGateway> {
  const ended: EndedAttempt[] = [];
  const server = createServer((request, response) => {
    const context = initialContext(request, response);
    const { pick, outcome } = recordingPick();
    void gateway.attempt(context, pick).then((result) => {
      if (!result.ok) sendGatewayError(context, result.errorClass);
      ended.push({ result, outcome: outcome() });
    });
  });
  const port = await listenOnLoopback(server);
  const gateway: AttemptGateway = {
    port,
    attempt: () => Promise.reject(new Error('the test set no attempt')),
    ended,
    send: async (path) => {
      const answer = await sendTestRequest(port, path);
      return { status: answer.status, body: answer.body.toString('utf8') };
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return gateway;
}
