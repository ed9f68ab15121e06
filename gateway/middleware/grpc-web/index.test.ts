import type { OutgoingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { echoed, fakeProxy, sendTestRequest, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { grpcTypeOf, grpcWeb } from './index.ts';

describe('grpcWeb', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it.each([
    ['application/grpc-web', 'application/grpc'],
    ['application/grpc-web+proto', 'application/grpc+proto'],
    ['application/grpc-web+json; charset=utf-8', 'application/grpc+json'],
    ['application/grpc-web-text', 'application/grpc'],
    ['application/grpc-web-text+proto', 'application/grpc+proto'],
  ])('sends a call of %s upstream as %s', (web, grpc) => {
    expect(grpcTypeOf(web)).toBe(grpc);
  });

  it('sends a -text call upstream as gRPC without its length, keeps the gRPC-Web-only headers, and marks the call for translation', async () => {
    server = await serveMiddleware([grpcWeb()]);
    const response = await sendTestRequest(server.port, '/helloworld.Greeter/SayHello', { method: 'POST', headers: { 'content-type': 'application/grpc-web-text', 'content-length': '8', 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1' }, body: 'AAAAAAA=' });
    const upstream = echoed(response).headers;
    expect(upstream).toMatchObject({ 'content-type': 'application/grpc', 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1' });
    expect(upstream['content-length']).toBeUndefined();
    expect(server.contexts[0]!.grpcWeb).toBeDefined();
    expect(server.contexts[0]!.get('requestBodyDecoder')).toBeDefined();
  });

  it("gives a gRPC answer the call's own gRPC-Web type, and leaves the head of an answer of another type to the answer replacer", async () => {
    server = await serveMiddleware([grpcWeb()], fakeProxy({ headers: { 'content-type': 'application/grpc+proto' }, body: Buffer.alloc(0) }));
    const grpc = await server.send('/s/m', { method: 'POST', headers: { 'content-type': 'application/grpc-web+proto; charset=x' } });
    expect(grpc.headers['content-type']).toBe('application/grpc-web+proto');
    await server.close();
    server = await serveMiddleware([grpcWeb()], fakeProxy({ status: 503, headers: { 'content-type': 'text/html' }, body: Buffer.from('down') }));
    const html = await server.send('/s/m', { method: 'POST', headers: { 'content-type': 'application/grpc-web-text' } });
    expect([html.status, html.headers['content-type'], html.body.toString()]).toEqual([503, 'text/html', 'down']);
  });

  it('replaces an upstream answer that is not gRPC with a Trailers-Only status of the call\'s type, and leaves gRPC answers and the gateway\'s own alone', async () => {
    server = await serveMiddleware([grpcWeb()]);
    await server.send('/s/m', { method: 'POST', headers: { 'content-type': 'application/grpc-web-text', 'content-length': '0' } });
    const context = server.contexts[0]!;
    const replace = context.answerReplacer!;
    expect(replace(502, { 'content-type': 'text/html; charset=utf-8', 'content-length': '120', 'content-encoding': 'gzip', server: 'nginx' })).toEqual({
      status: 200,
      outcomeStatus: 502,
      body: Buffer.alloc(0),
      headers: { server: 'nginx', 'content-type': 'application/grpc-web-text', 'content-length': 0, 'grpc-status': '14', 'grpc-message': 'the upstream answered HTTP 502 (text/html), not gRPC' },
    });
    expect(context.outcome.grpcStatus).toBe(14);
    expect(replace(200, { 'content-type': 'application/grpc' })).toBeUndefined();
    expect(replace(200, { 'content-type': 'application/grpc-web+proto' })).toBeUndefined();
    expect(replace(503, {}, 'no-instances')).toBeUndefined();
  });

  it('keeps the status of a Trailers-Only answer whose type is missing or not gRPC, and gives it the call\'s type', async () => {
    server = await serveMiddleware([grpcWeb()]);
    await server.send('/s/m', { method: 'POST', headers: { 'content-type': 'application/grpc-web+proto', 'content-length': '0' } });
    const context = server.contexts[0]!;
    for (const type of [undefined, 'text/plain']) {
      const headers: OutgoingHttpHeaders = { 'grpc-status': '7', 'grpc-message': 'denied', 'content-length': '0', ...(type === undefined ? {} : { 'content-type': type }) };
      expect(context.answerReplacer!(200, headers)).toBeUndefined();
      for (const hook of context.responseHeaderHooks) hook(200, headers, context);
      expect(headers).toEqual({ 'grpc-status': '7', 'grpc-message': 'denied', 'content-type': 'application/grpc-web+proto' });
    }
  });

  it('leaves every other request untouched, a native gRPC call included', async () => {
    server = await serveMiddleware([grpcWeb()]);
    for (const type of ['application/grpc', 'application/json']) {
      const response = await server.send('/s/m', { method: 'POST', headers: { 'content-type': type, 'content-length': '0' } });
      expect(echoed(response).headers).toMatchObject({ 'content-type': type, 'content-length': '0' });
    }
    expect(server.contexts.map((context) => context.grpcWeb)).toEqual([undefined, undefined]);
  });
});
