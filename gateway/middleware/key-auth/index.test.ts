import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/harness/wait.ts';
import type { ConsumerConfig, KeyAuthSettings } from '../../config/types.ts';
import { accessLog, accessLogDestination } from '../access-log/index.ts';
import { echoed, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { keyAuth } from './index.ts';

const KEY = 'partner-key-0b7e3c9a1f5d2846';
const partner: ConsumerConfig = { name: 'partner', keyHashes: [createHash('sha256').update(KEY).digest('hex')], passwordHashes: [], jwt: [], labels: {}, rateLimit: undefined };
const settings = (strip: boolean): KeyAuthSettings => ({ header: undefined, query: 'api_key', strip, consumers: [partner] });

describe('keyAuth', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it.each([
    ['strip', true, '/q?a=1'],
    ['strip: false', false, `/q?a=1&api_key=${KEY}`],
  ])('with %s, sends a query key upstream only when told to and never writes it into the access log', async (_name, strip, upstreamPath) => {
    const lines: string[] = [];
    server = await serveMiddleware([accessLog({ logger: accessLogDestination({ write: (batch: string) => lines.push(batch) }) }), keyAuth(settings(strip))]);
    const response = await server.send(`/q?a=1&api_key=${KEY}`);
    expect([response.status, echoed(response).path, echoed(response).headers['x-consumer']]).toEqual([200, upstreamPath, 'partner']);
    await waitFor(() => lines.length > 0);
    expect(lines.join('')).toContain('"path":"/q?a=1"');
    expect(lines.join('')).not.toContain(KEY);
  });

  it.each([
    ['strip', true, '/q?a=1', undefined],
    // Unchecked, it would stand for the key before an upstream that reads the query.
    ['strip: false', false, '/q?a=1', KEY],
  ])('with %s and the key in the header, treats a query key alike', async (_name, strip, upstreamPath, upstreamHeader) => {
    server = await serveMiddleware([keyAuth({ header: 'x-api-key', query: 'api_key', strip, consumers: [partner] })]);
    const response = await server.send('/q?a=1&api_key=other-key', { headers: { 'x-api-key': KEY } });
    expect([response.status, echoed(response).path, echoed(response).headers['x-api-key'], echoed(response).headers['x-consumer']]).toEqual([200, upstreamPath, upstreamHeader, 'partner']);
  });

  it.each([
    ['another value beside the checked query key', `/q?api_key=${KEY}&a=1&api_key=forged`, undefined, `/q?api_key=${KEY}&a=1`],
    ['a query key beside the checked header key', '/q?api_key=forged&a=1', KEY, '/q?a=1'],
    ['the checked key in both the header and the query', `/q?api_key=${KEY}&a=1`, KEY, `/q?api_key=${KEY}&a=1`],
  ])('with strip: false, passes on only the key it checked: %s', async (_name, target, headerKey, upstreamPath) => {
    // PHP and Rack read a parameter's last value: an unchecked one would stand for the key.
    server = await serveMiddleware([keyAuth({ header: 'x-api-key', query: 'api_key', strip: false, consumers: [partner] })]);
    const response = await server.send(target, { headers: headerKey === undefined ? {} : { 'x-api-key': headerKey } });
    expect([response.status, echoed(response).path, echoed(response).headers['x-consumer']]).toEqual([200, upstreamPath, 'partner']);
  });

  it.each([
    ['strip', true, undefined],
    ['strip: false', false, KEY],
  ])("with %s, passes on none of the client's other spellings of the key header, which CGI-style upstreams read as the key", async (_name, strip, upstreamKey) => {
    server = await serveMiddleware([keyAuth({ header: 'x-api-key', query: undefined, strip, consumers: [partner] })]);
    const response = await server.send('/h', { headers: { 'x-api-key': KEY, x_api_key: 'unchecked', 'x-api_key': 'unchecked' } });
    const { headers } = echoed(response);
    expect([response.status, headers['x-api-key'], headers.x_api_key, headers['x-api_key'], headers['x-consumer']]).toEqual([200, upstreamKey, undefined, undefined, 'partner']);
  });
});
