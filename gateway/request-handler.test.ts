import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { componentLogger } from '../src/logger.ts';
import { parseConfig } from './config/index.ts';
import { createContext, createRequestRunner } from './request-handler.ts';

describe('createRequestRunner', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  it('answers 500 internal when something inside the onion throws, and still reports the request once', async () => {
    const ended: number[] = [];
    const runner = createRequestRunner(parseConfig('g.yaml', 'accessLog: false\nroutes: [{ path: /, service: svc }]'), {
      proxy: () => Promise.reject(new Error('a middleware failed')),
      hasService: () => true,
      onRequestEnd: (context) => ended.push(context.outcome.status),
    });
    const log = componentLogger('test');
    server = createServer((request, response) => void runner(createContext(request, response, log)));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, path: '/x' }, (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      })
        .on('error', reject)
        .end();
    });
    expect(answer.status).toBe(500);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'internal', status: 500, service: 'svc' });
    expect(ended).toEqual([500]);
  });
});
