import { describe, expect, it } from 'vitest';
import { logLevelFrom } from './log-level.ts';

describe('logLevelFrom', () => {
  it.each([
    [undefined, { level: 'info' }],
    ['', { level: 'info' }],
    ['debug', { level: 'debug' }],
    [' WARN ', { level: 'warn' }],
    ['silent', { level: 'silent' }],
  ] as const)('reads %j as %j', (value, expected) => {
    expect(logLevelFrom(value, 'info')).toEqual(expected);
  });

  it('keeps the fallback for a value that names no level, and says why instead of throwing', () => {
    expect(logLevelFrom('verbose', 'info')).toEqual({ level: 'info', problem: 'SWITCHBOARD_LOG_LEVEL="verbose" is not one of trace, debug, info, warn, error, fatal, silent; logging at info' });
  });
});
