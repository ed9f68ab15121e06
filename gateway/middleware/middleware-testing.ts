import { createServer, request as httpRequest, type Agent, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rootLogger } from '../../src/logger.ts';
import type { GatewayContext, Middleware } from '../context.ts';
import { createContext } from '../request-handler.ts';
import { compose } from './compose.ts';
import { transformBody } from './response-transform/index.ts';

/** What the fake upstream answers: the upstream side of the context as the proxy would send it. */
export interface EchoedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  host: string | undefined;
  useInstanceHost: boolean;
}

/** A response as the test client received it. */
export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A real HTTP server on port 0 running middleware through `compose()` around a fake proxy. */
export interface MiddlewareServer {
  readonly port: number;
  /** Every context the server built, in arrival order. */
  readonly contexts: GatewayContext[];
  /** Sends one request over a fresh connection. */
  send(path: string, options?: { method?: string; headers?: OutgoingHttpHeaders; agent?: Agent }): Promise<TestResponse>;
  close(): Promise<void>;
}

/** Upstream response the fake proxy starts from; hooks and transforms edit it as they would a real one. */
export interface FakeUpstreamAnswer {
  status?: number;
  headers?: OutgoingHttpHeaders;
  /** Body to send; by default the JSON `EchoedRequest`. */
  body?: Buffer;
}

/**
 * The centre of the onion in tests: does what the proxy does with the context (response header
 * hooks, body transforms, outcome) and answers with `answer` or an echo of the upstream request.
 */
export function fakeProxy(answer: FakeUpstreamAnswer = {}): (context: GatewayContext) => Promise<void> {
  return async (context) => {
    const { upstream } = context;
    const status = answer.status ?? 200;
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', ...answer.headers };
    const echo: EchoedRequest = { path: upstream.path, headers: upstream.headers, host: upstream.host, useInstanceHost: upstream.useInstanceHost ?? false };
    for (const hook of context.responseHeaderHooks) hook(status, headers, context);
    const body = await transformBody(answer.body ?? Buffer.from(JSON.stringify(echo)), headers, context.responseBodyTransforms);
    headers['content-length'] ??= String(body.length);
    context.outcome = { status, attempts: 1, upstream: '127.0.0.1:1', bytesOut: body.length };
    context.response.writeHead(status, headers);
    context.response.end(body);
  };
}

/** Makes the request look as if it came over TLS, as an https entry point's would. */
export const overTls: Middleware = async (context, next) => {
  Object.defineProperty(context, 'secure', { value: true });
  await next();
};

/** The context the pipeline builds for a fresh request, before any middleware. */
export function initialContext(request: GatewayContext['request'], response: GatewayContext['response']): GatewayContext {
  return createContext(request, response, rootLogger);
}

/** Starts a server on 127.0.0.1, port 0, that runs `middleware` around `inner` (the fake proxy by default). */
export async function serveMiddleware(middleware: readonly Middleware[], inner = fakeProxy()): Promise<MiddlewareServer> {
  const contexts: GatewayContext[] = [];
  const handle = compose(middleware, inner);
  const server: Server = createServer((request, response) => {
    const context = initialContext(request, response);
    contexts.push(context);
    handle(context).catch((error: Error) => {
      if (!response.headersSent) response.writeHead(500, { 'x-error': error.message });
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    contexts,
    send: (path, options = {}) => sendTestRequest(port, path, options),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Sends one request to 127.0.0.1:`port` on a fresh connection (or one of `agent`'s) and resolves with the whole answer. */
export function sendTestRequest(port: number, path: string, options: { method?: string; headers?: OutgoingHttpHeaders; body?: string; agent?: Agent } = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {}, agent: options.agent ?? false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

/** The fake upstream's echo of the request it got. */
export function echoed(response: TestResponse): EchoedRequest {
  return JSON.parse(response.body.toString('utf8')) as EchoedRequest;
}

/**
 * A layer to list before the middleware under test: `next()` resolves with the context of the next
 * request once that middleware has run synchronously up to its first wait (a fault's timer set, a
 * forwardAuth's check sent), so the test can act on a request that is being held.
 */
export function arrivals(): { layer: Middleware; next: () => Promise<GatewayContext> } {
  const waiting: ((context: GatewayContext) => void)[] = [];
  const layer: Middleware = (context, next) => {
    const promise = next();
    waiting.shift()?.(context);
    return promise;
  };
  return { layer, next: () => new Promise<GatewayContext>((resolve) => waiting.push(resolve)) };
}
