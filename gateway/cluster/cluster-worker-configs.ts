import { createHash } from 'node:crypto';

/**
 * Which configuration text the primary sent: `sequence` counts the texts it sent since it started
 * (1 is the one it started with), `digest` is the text's SHA-256 (base64url, as the config store's
 * `listingDigest`), equal for equal texts whichever gateway or sequence sent them.
 */
export interface ConfigIdentity {
  readonly sequence: number;
  readonly digest: string;
}

/** The identity of the `sequence`-th text the primary sends, `text`. */
export function configIdentity(sequence: number, text: string): ConfigIdentity {
  return { sequence, digest: createHash('sha256').update(text).digest('base64url') };
}
