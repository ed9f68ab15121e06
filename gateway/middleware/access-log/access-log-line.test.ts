import { describe, expect, it } from 'vitest';
import { LISTENER_ANSWER, type GatewayContext } from '../../context.ts';
import { accessLogText, hundredthsText, refusalLogText, tcpLogText } from './access-log-line.ts';

describe('hundredthsText', () => {
  it('prints every count of hundredths as JavaScript prints the number it stands for', () => {
    const samples = [0, 1, 5, 9, 10, 11, 50, 99, 100, 101, 105, 110, 199, 1_000, 1_001, 1_010, 1_234_567, 987_654_321_09, 2 ** 40 + 7];
    for (let hundredths = 0; hundredths < 20_000; hundredths += 1) samples.push(hundredths);
    for (const hundredths of samples) expect(hundredthsText(hundredths)).toBe(String(hundredths / 100));
  });

  it('falls back to the plain division for what is not a non-negative safe integer', () => {
    expect(hundredthsText(-5)).toBe('-0.05');
    expect(hundredthsText(Number.NaN)).toBe('NaN');
  });
});

describe('refusalLogText', () => {
  const refusal = { status: 400, error: 'bad-request', bytes: 60, clientAddress: '::ffff:203.0.113.7', method: undefined, target: undefined };

  it('writes a line of the requests\' shape with the error code as errorClass and no route, service, upstream or request id', () => {
    const line = refusalLogText({ ...refusal, status: 431, error: 'header-too-large', bytes: 86 });
    expect(line.endsWith('}\n')).toBe(true);
    const fields = JSON.parse(line) as Record<string, unknown>;
    expect(fields).toEqual({ level: 30, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), status: 431, durationMs: 0, bytes: 86, attempts: 0, clientIp: '203.0.113.7', errorClass: 'header-too-large' });
  });

  it('writes the method and path of a parsed head without the hidden query parameters', () => {
    const fields = JSON.parse(refusalLogText({ ...refusal, method: 'POST', target: '/upload?api_key=secret&x="1"' }, ['api_key'])) as Record<string, unknown>;
    expect(fields).toMatchObject({ method: 'POST', path: '/upload?x="1"', errorClass: 'bad-request' });
  });

  it('writes an absolute-form target as its origin-form path, without the userinfo, as a served request\'s line has it', () => {
    const line = refusalLogText({ ...refusal, method: 'GET', target: 'http://alice:s3cret@a.test/x?api_key=k&y=2' }, ['api_key']);
    expect(JSON.parse(line)).toMatchObject({ path: '/x?y=2' });
    expect(line).not.toContain('s3cret');
    expect(JSON.parse(refusalLogText({ ...refusal, method: 'CONNECT', target: 'a.test:443' }))).toMatchObject({ path: 'a.test:443' });
  });

  it.each([
    ['an http:// target with an empty host', 'http://alice:s3cret@/x', 'http:///x'],
    ['another scheme', 'ftp://alice:s3cret@a.test/x', 'ftp://a.test/x'],
    ['an authority-form target', 'alice:s3cret@a.test:443', 'a.test:443'],
  ])('drops the userinfo of %s, which has no origin form', (_case, target, path) => {
    const line = refusalLogText({ ...refusal, method: 'GET', target });
    expect(JSON.parse(line)).toMatchObject({ path });
    expect(line).not.toContain('s3cret');
  });
});

describe('accessLogText of a response that never ended', () => {
  /** A routed request whose response was destroyed before it ended; `listenerAnswer` when the listener answered in its place. */
  function cut(listenerAnswer?: object): GatewayContext {
    const response = { headersSent: false, statusCode: 200, writableEnded: false, destroyed: true, ...(listenerAnswer ? { [LISTENER_ANSWER]: listenerAnswer } : {}) };
    return {
      request: { method: 'POST', url: '/up' },
      response,
      outcome: { status: 400, errorClass: 'bad-request', attempts: 1, bytesOut: 60 },
      startedAt: performance.now(),
      routeName: 'up',
      service: 'up',
      requestId: 'r',
      clientIp: '127.0.0.1',
    } as unknown as GatewayContext;
  }

  it('marks it aborted when the connection broke, not when the listener answered in its place', () => {
    expect(JSON.parse(accessLogText(cut(), false))).toMatchObject({ aborted: true });
    expect(JSON.parse(accessLogText(cut({ status: 400, error: 'bad-request', bytes: 60 }), false))).not.toHaveProperty('aborted');
  });
});

describe('tcpLogText', () => {
  const record = { service: 'redis', startedAt: performance.now(), upstream: '10.0.0.7:6379', attempts: 1, connected: true, errorClass: undefined, bytes: 5, bytesReceived: 14 };

  it('writes a closed connection with its entry point, bytes each way, server name and status 200 when it reached an upstream', () => {
    const fields = JSON.parse(tcpLogText(record, 'secure', '::ffff:203.0.113.7', 'redis.test')) as Record<string, unknown>;
    expect(fields).toEqual({
      level: 30,
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      protocol: 'tcp',
      entryPoint: 'secure',
      status: 200,
      durationMs: expect.any(Number),
      bytes: 5,
      bytesReceived: 14,
      upstream: '10.0.0.7:6379',
      attempts: 1,
      service: 'redis',
      clientIp: '203.0.113.7',
      serverName: 'redis.test',
    });
  });

  it('gives a connection no upstream took the status its failure has over HTTP, and keeps the error class of one that broke once joined', () => {
    const status = (errorClass: string, connected = false) => (JSON.parse(tcpLogText({ ...record, connected, errorClass }, 'redis', '127.0.0.1', undefined)) as { status: number; errorClass: string }).status;
    expect([status('no-instances'), status('no-healthy-instances'), status('connect-refused'), status('connect-timeout'), status('cancelled'), status('internal')]).toEqual([503, 503, 502, 504, 499, 500]);
    expect(status('idle-timeout', true)).toBe(200);
    expect(JSON.parse(tcpLogText({ ...record, errorClass: 'reset-after-headers' }, 'redis', '127.0.0.1', undefined))).toMatchObject({ status: 200, errorClass: 'reset-after-headers' });
    expect(JSON.parse(tcpLogText({ ...record, upstream: undefined, attempts: 0, connected: false, errorClass: 'no-instances' }, 'redis', undefined, undefined))).not.toHaveProperty('upstream');
  });
});
