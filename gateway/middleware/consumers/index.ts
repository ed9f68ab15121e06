// Consumers as the middleware see them: the identity a credential proved, published as a context variable.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ConsumerConfig } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';

export { accessDeniedTotal, denyAccess, type AccessDenial } from './deny.ts';

declare module '../../context.ts' {
  interface ContextVariables {
    /** The consumer an authentication middleware identified; later middleware (a rate limit keyed by `consumer`) read it. */
    consumer: ConsumerConfig;
  }
}

/** Header carrying the identified consumer's name upstream; a client's own value is always removed first. */
export const CONSUMER_HEADER = 'x-consumer';

/**
 * Finds the consumer an API key belongs to. Keys are compared as SHA-256 digests with
 * `timingSafeEqual` against every stored digest, so neither the time taken nor the file reveals
 * a key; the number of consumers is not secret, so the loop length may depend on it.
 */
export class ConsumerKeyIndex {
  private readonly entries: { readonly digest: Buffer; readonly consumer: ConsumerConfig }[];

  constructor(consumers: readonly ConsumerConfig[]) {
    this.entries = consumers.flatMap((consumer) => consumer.keyHashes.map((hex) => ({ digest: Buffer.from(hex, 'hex'), consumer })));
  }

  /** The consumer holding `key`, or undefined. */
  find(key: string): ConsumerConfig | undefined {
    const digest = createHash('sha256').update(key, 'utf8').digest();
    let found: ConsumerConfig | undefined;
    // No early exit: every digest is compared, whichever matched.
    for (const entry of this.entries) if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry.consumer;
    return found;
  }
}

/** Publishes `consumer` on the request and tells the upstream its name (replacing anything the client sent). */
export function identify(context: GatewayContext, consumer: ConsumerConfig | undefined): void {
  const headers = context.upstream.headers;
  if (headers[CONSUMER_HEADER] !== undefined) delete headers[CONSUMER_HEADER];
  if (!consumer) return;
  context.set('consumer', consumer);
  headers[CONSUMER_HEADER] = consumer.name;
}
