import { describe, expect, it } from 'vitest';
import { formatLogLine, prettySink, wantsColor } from './log-pretty.ts';

const TIME = new Date(2025, 0, 2, 3, 4, 5, 67).getTime();
const plain = { color: false };

describe('formatLogLine', () => {
  it('puts time, level, component and message first, then the other fields as key=value', () => {
    const line = JSON.stringify({ level: 40, time: TIME, pid: 1, hostname: 'h', name: 'switchboard', component: 'provider', provider: 'zk:a:1/services', reason: 'session expired', msg: 'registry stale' });
    expect(formatLogLine(line, plain)).toBe('03:04:05.067 WARN  provider: registry stale provider=zk:a:1/services reason="session expired"\n');
  });

  it('reads an access line as method, path, status and duration', () => {
    const line = JSON.stringify({ level: 30, time: '2025-01-02T03:04:05.067Z', method: 'GET', path: '/api/user/7', status: 200, durationMs: 3.25, upstream: '127.0.0.1:9001', errorClass: undefined });
    const text = formatLogLine(line, plain);
    expect(text).toMatch(/^\d\d:\d\d:\d\d\.067 INFO {2}GET \/api\/user\/7 200 3\.25ms upstream=127\.0\.0\.1:9001\n$/);
  });

  it('shows objects as JSON and errors by their message', () => {
    const line = JSON.stringify({ level: 50, time: TIME, msg: 'failed', keys: ['a', 'b'], err: { message: 'boom', stack: 'x' } });
    expect(formatLogLine(line, plain)).toBe('03:04:05.067 ERROR failed keys=["a","b"] err="boom"\n');
  });

  it('colours the level only when asked', () => {
    const line = JSON.stringify({ level: 50, time: TIME, msg: 'm' });
    expect(formatLogLine(line, { color: true })).toContain('\u001b[31mERROR\u001b[0m');
    expect(formatLogLine(line, plain)).not.toContain('\u001b');
  });

  it('passes text that is not a JSON object through unchanged', () => {
    expect(formatLogLine('not json', plain)).toBe('not json\n');
    expect(formatLogLine('[1,2]\n', plain)).toBe('[1,2]\n');
  });
});

describe('prettySink', () => {
  it('formats every line of a write separately, and writes nothing for a write of no lines', () => {
    const written: string[] = [];
    const sink = prettySink({ write: (text: string) => written.push(text) }, plain);
    sink.write(`${JSON.stringify({ level: 30, time: TIME, msg: 'one' })}\n${JSON.stringify({ level: 30, time: TIME, msg: 'two' })}\n`);
    sink.write('\n');
    expect(written).toEqual(['03:04:05.067 INFO  one\n03:04:05.067 INFO  two\n']);
  });
});

describe('wantsColor', () => {
  it.each([
    { isTTY: true, env: {}, expected: true },
    { isTTY: true, env: { NO_COLOR: '1' }, expected: false },
    { isTTY: false, env: {}, expected: false },
  ])('is $expected for a TTY=$isTTY stream with env $env', ({ isTTY, env, expected }) => {
    expect(wantsColor({ isTTY }, env)).toBe(expected);
  });
});
