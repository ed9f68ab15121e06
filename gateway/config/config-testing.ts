import { GatewayConfigError, parseConfig } from './load.ts';

/** The error `text` is refused with, read as the file `path`; fails the test when it is accepted. */
export function errorOf(text: string, path = '/etc/sb/gateway.yaml'): GatewayConfigError {
  try {
    parseConfig(path, text);
  } catch (error) {
    if (error instanceof GatewayConfigError) return error;
    throw error;
  }
  throw new Error('the config was accepted');
}
