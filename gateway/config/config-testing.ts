import { expect } from 'vitest';
import { GatewayConfigError, parseConfig, type ParseConfigOptions } from './load.ts';

/** The error `text` is refused with, read as the file `path`; fails the test when it is accepted. */
export function errorOf(text: string, path = '/etc/sb/gateway.yaml', options: ParseConfigOptions = {}): GatewayConfigError {
  try {
    parseConfig(path, text, options);
  } catch (error) {
    if (error instanceof GatewayConfigError) return error;
    throw error;
  }
  throw new Error('the config was accepted');
}

/** Fails the test unless `text`, read as the file `path`, is refused with a message that contains `expected`. */
export function expectRefused(text: string, expected: string, path?: string): void {
  expect(errorOf(text, path).message).toContain(expected);
}
