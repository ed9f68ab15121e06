import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGrpcWebAnswer } from '../../test/harness/grpc-web-reader.ts';
import type { Middleware } from '../context.ts';
import { serveMiddleware, type MiddlewareServer } from '../middleware/middleware-testing.ts';
import { sendErrorAnswer, sendGatewayError } from './error-response.ts';
import { grpcAnswerContentType } from './grpc-answer.ts';
import { GrpcStatus } from './grpc-status.ts';
import type { GatewayErrorClass } from './upstream-error.ts';

describe('grpcAnswerContentType', () => {
  it.each([
    [undefined, 'application/grpc'],
    ['application/grpc', 'application/grpc'],
    ['application/grpc+proto', 'application/grpc'],
    ['application/grpc-web', 'application/grpc-web'],
    ['application/grpc-web+proto', 'application/grpc-web+proto'],
    ['application/grpc-web+json; charset=utf-8', 'application/grpc-web+json'],
    ['application/grpc-web-text', 'application/grpc-web-text'],
    ['application/grpc-web-text+proto', 'application/grpc-web-text+proto'],
  ])('answers a call of %s with %s', (requestType, answerType) => {
    expect(grpcAnswerContentType(requestType)).toBe(answerType);
  });

  it.each([
    // The encoding the accept header names, as Envoy's filter answers (PROTOCOL-WEB.md: the client asks for text by accept).
    ['application/grpc-web-text', 'application/grpc-web', 'application/grpc-web'],
    ['application/grpc-web-text+proto', 'application/grpc-web+proto', 'application/grpc-web+proto'],
    ['application/grpc-web+proto', 'application/grpc-web-text', 'application/grpc-web-text+proto'],
    ['application/grpc-web', 'text/html, application/grpc-web-text+proto;q=0.9, application/grpc-web', 'application/grpc-web-text'],
    ['application/grpc-web-text', 'Application/GRPC-Web-Text', 'application/grpc-web-text'],
    // Media types are case-insensitive (RFC 9110 §8.3.1): a binary call asking for text in capitals gets text.
    ['application/grpc-web+proto', 'Application/GRPC-Web-Text', 'application/grpc-web-text+proto'],
    ['application/grpc-web-text', 'APPLICATION/GRPC-WEB', 'application/grpc-web'],
    // A range of weight 0 is "not acceptable" (RFC 9110 §12.4.2): the next gRPC-Web type chooses, or the call's own.
    ['application/grpc-web+proto', 'application/grpc-web-text;q=0, application/grpc-web', 'application/grpc-web+proto'],
    ['application/grpc-web', 'application/grpc-web-text; q=0.0, */*', 'application/grpc-web'],
    ['application/grpc-web-text', 'application/grpc-web;Q=0', 'application/grpc-web-text'],
    ['application/grpc-web', 'application/grpc-web-text;q=0.5', 'application/grpc-web-text'],
    // No gRPC-Web type in accept: the call's own encoding.
    ['application/grpc-web-text', '*/*', 'application/grpc-web-text'],
    ['application/grpc-web+proto', 'application/json', 'application/grpc-web+proto'],
    ['application/grpc', 'application/grpc-web-text', 'application/grpc'],
  ])('answers a call of %s that accepts %s with %s', (requestType, accept, answerType) => {
    expect(grpcAnswerContentType(requestType, accept)).toBe(answerType);
  });
});

describe("the gateway's own answers to a gRPC-Web call, read as a browser's gRPC-Web client reads them", () => {
  let server: MiddlewareServer;
  /** Answers as the path says: `/class/<gateway error class>`, or `/refused/<status>` (a middleware's refusal). */
  const answering: Middleware = async (context) => {
    const [, kind, what] = context.request.url!.split('/');
    if (kind === 'class') return sendGatewayError(context, what as GatewayErrorClass);
    sendErrorAnswer(context, Number(what), 'refused', 'refusé: try again in 1 s');
  };

  beforeAll(async () => {
    server = await serveMiddleware([answering]);
  });
  afterAll(() => server.close());

  const types = ['application/grpc-web', 'application/grpc-web+proto', 'application/grpc-web+json', 'application/grpc-web-text', 'application/grpc-web-text+proto'];
  const answers: [path: string, status: number, message: RegExp][] = [
    ['/class/no-route', GrpcStatus.UNIMPLEMENTED, /route/],
    ['/class/no-instances', GrpcStatus.UNAVAILABLE, /instance/],
    ['/class/headers-timeout', GrpcStatus.DEADLINE_EXCEEDED, /.+/],
    ['/refused/429', GrpcStatus.RESOURCE_EXHAUSTED, /^refusé: try again in 1 s$/],
    ['/refused/401', GrpcStatus.UNAUTHENTICATED, /^refusé: try again in 1 s$/],
  ];

  it.each(types.flatMap((type) => answers.map(([path, status, message]) => [type, path, status, message] as const)))('answers a %s call on %s in its own content type, with a status the client reads', async (type, path, status, message) => {
    const answer = await server.send(path, { method: 'POST', headers: { 'content-type': type, 'x-grpc-web': '1' } });
    expect(answer.status).toBe(200);
    expect(readGrpcWebAnswer(type, answer.headers, answer.body)).toEqual({ status, message: expect.stringMatching(message) });
  });

  it('keeps application/grpc for a gRPC call', async () => {
    const answer = await server.send('/refused/429', { method: 'POST', headers: { 'content-type': 'application/grpc' } });
    expect({ type: answer.headers['content-type'], status: answer.headers['grpc-status'] }).toEqual({ type: 'application/grpc', status: String(GrpcStatus.RESOURCE_EXHAUSTED) });
  });
});
