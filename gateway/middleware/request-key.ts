// What the limits (`rateLimit`, `inFlightReq`) count a request under: its `key` setting read from the request.
import { createHash } from 'node:crypto';
import { clientNetwork } from '../config/ip-range.ts';
import type { RateLimitKey } from '../config/types.ts';
import type { GatewayContext } from '../context.ts';

/**
 * Header and claim values longer than this are kept as their SHA-256: a client picks them, and at
 * up to `maxHeaderSize` each they made 100,000 local buckets (or as many Redis keys) weigh gigabytes.
 */
const MAX_PLAIN_KEY_LENGTH = 64;

/** `value`, or its digest when it is longer than `MAX_PLAIN_KEY_LENGTH` (`#` and 43 base64url characters). */
function boundedKey(value: string): string {
  return value.length <= MAX_PLAIN_KEY_LENGTH ? value : `#${createHash('sha256').update(value).digest('base64url')}`;
}

/**
 * Reads what a request counts under (a rate limit's bucket, an in-flight limit's count); a missing
 * header or claim shares one key (the empty key) with every other request lacking it. An IPv6
 * client counts as its `ipv6Subnet` network.
 */
export function requestKeyReader(key: RateLimitKey, ipv6Subnet: number): (context: GatewayContext) => string {
  switch (key.from) {
    case 'client-ip':
      return (context) => clientNetwork(context.clientIp, ipv6Subnet);
    case 'route':
      return (context) => context.routeName;
    case 'service':
      return (context) => context.service;
    case 'consumer':
      // Requests no authentication middleware identified share the empty key.
      return (context) => context.get('consumer')?.name ?? '';
    case 'header': {
      const name = key.name.toLowerCase();
      return (context) => {
        const value = context.request.headers[name];
        return boundedKey(Array.isArray(value) ? value.join(',') : (value ?? ''));
      };
    }
    case 'claim': {
      const name = key.name;
      return (context) => {
        const value = context.get('jwtClaims')?.[name];
        return value === undefined || value === null ? '' : boundedKey(typeof value === 'string' ? value : JSON.stringify(value));
      };
    }
  }
}
