import { describe, expect, it } from 'vitest';
import { clientUpstreamHeaders, HOP_BY_HOP, isHopByHop, responseHeadersForClient, sendableUpstreamHeaders, upstreamRequestHeaders } from './hop-by-hop.ts';

describe('clientUpstreamHeaders', () => {
  it('copies in one pass what upstreamRequestHeaders keeps: no hop-by-hop, Connection-named, Expect or pseudo-headers', () => {
    const client = {
      host: 'example.test',
      connection: 'keep-alive, X-Secret',
      'keep-alive': 'timeout=5',
      'x-secret': 'drop me',
      te: 'trailers',
      upgrade: 'websocket',
      'transfer-encoding': 'chunked',
      'proxy-authorization': 'Basic eA==',
      'http2-settings': 'AAMAAABk',
      expect: '100-continue',
      ':authority': 'example.test',
      accept: 'application/json',
    };
    const copy = clientUpstreamHeaders(client);
    expect(copy).toEqual({ host: 'example.test', accept: 'application/json' });
    expect(copy).toEqual(upstreamRequestHeaders(client));
    expect(copy).not.toBe(client);
    // The client's own headers stay as they came.
    expect(client['x-secret']).toBe('drop me');
  });
});

describe('sendableUpstreamHeaders', () => {
  it('sends the context copy itself when nothing in it needs dropping', () => {
    const headers = clientUpstreamHeaders({ host: 'a.test', connection: 'keep-alive' });
    headers['x-forwarded-for'] = '127.0.0.1';
    expect(sendableUpstreamHeaders(headers)).toBe(headers);
  });

  it.each([
    ['a hop-by-hop header', 'connection', 'close'],
    ['Expect', 'expect', '100-continue'],
    ['a pseudo-header', ':path', '/'],
  ])('copies without %s that middleware added after the context was made, leaving the context copy alone', (_case, name, value) => {
    const headers = clientUpstreamHeaders({ host: 'a.test' });
    headers[name] = value;
    const sent = sendableUpstreamHeaders(headers);
    expect(sent).not.toBe(headers);
    expect(sent).toEqual({ host: 'a.test' });
    expect(headers[name]).toBe(value);
  });

  it('drops a header a middleware-set Connection names', () => {
    const headers = clientUpstreamHeaders({ host: 'a.test' });
    headers.connection = 'x-internal';
    headers['x-internal'] = 'yes';
    expect(sendableUpstreamHeaders(headers)).toEqual({ host: 'a.test' });
  });
});

describe('isHopByHop', () => {
  it.each([...HOP_BY_HOP].map((name) => [name]))('knows %s as hop-by-hop', (name) => {
    expect(isHopByHop(name)).toBe(true);
  });

  it.each([['host'], ['user-agent'], ['x-request-id'], ['content-length'], ['trailers'], ['tE'], ['connectioN'], ['upgrade2'], ['x-forwarded-for'], ['proxy-connectio'], ['']])('lets %s through', (name) => {
    expect(isHopByHop(name)).toBe(false);
  });
});

describe('responseHeadersForClient', () => {
  it('copies the headers without hop-by-hop, Connection-named and pseudo-headers, and leaves the original as it was', () => {
    const headers: Record<string, string> = { 'content-type': 'text/plain', connection: 'keep-alive, X-Hop', 'keep-alive': 'timeout=5', 'x-hop': '1', 'transfer-encoding': 'chunked', ':status': '200', 'x-end': 'kept' };
    const original = { ...headers };
    const stripped = responseHeadersForClient(headers);
    expect(stripped).not.toBe(headers);
    expect(stripped).toEqual({ 'content-type': 'text/plain', 'x-end': 'kept' });
    expect(Object.keys(stripped)).toEqual(['content-type', 'x-end']);
    expect(headers).toEqual(original);
  });

  it('returns the headers themselves when there is nothing to drop', () => {
    const headers = { 'content-type': 'text/plain', 'content-length': '2', date: 'Tue, 01 Dec 2026 15:00:00 GMT' };
    expect(responseHeadersForClient(headers)).toBe(headers);
    expect(headers).toEqual({ 'content-type': 'text/plain', 'content-length': '2', date: 'Tue, 01 Dec 2026 15:00:00 GMT' });
  });
});
