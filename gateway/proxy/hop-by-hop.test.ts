import { describe, expect, it } from 'vitest';
import { clientUpstreamHeaders, sendableUpstreamHeaders, upstreamRequestHeaders } from './hop-by-hop.ts';

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
