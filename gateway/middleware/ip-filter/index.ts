import { forwardedForAddress, ipRangeMatcher, parseIpRanges, plainIp, type IpRange } from '../../config/ip-range.ts';
import type { IpFilterSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { denyAccess } from '../consumers/index.ts';

/** Answers 403 to clients whose address is outside `sourceRange` (Traefik's ipAllowList). */
export function ipAllowList(settings: IpFilterSettings): Middleware {
  const inRange = ipRangeMatcher(ranges(settings.sourceRange));
  const clientOf = clientAddress(settings);
  return async function ipAllowList(context, next) {
    const client = clientOf(context);
    if (client === undefined) return denyAccess(context, { status: 403, reason: 'ip-unknown', message: 'the client address cannot be decided' });
    if (!inRange(client)) return denyAccess(context, { status: 403, reason: 'ip-not-allowed', message: 'the client address is not allowed' });
    await next();
  };
}

/** Answers 403 to clients whose address is inside `sourceRange` (APISIX's ip-restriction blacklist). */
export function ipDenyList(settings: IpFilterSettings): Middleware {
  const inRange = ipRangeMatcher(ranges(settings.sourceRange));
  const clientOf = clientAddress(settings);
  return async function ipDenyList(context, next) {
    const client = clientOf(context);
    if (client === undefined) return denyAccess(context, { status: 403, reason: 'ip-unknown', message: 'the client address cannot be decided' });
    if (inRange(client)) return denyAccess(context, { status: 403, reason: 'ip-denied', message: 'the client address is denied' });
    await next();
  };
}

/**
 * The ranges of `texts`, with IPv4-mapped IPv6 ranges (`::ffff:10.0.0.0/104`, `::ffff:a00:0/104`) also written as
 * the IPv4 range they map, since client addresses are compared in their plain IPv4 form.
 */
export function ranges(texts: readonly string[]): IpRange[] {
  return texts.flatMap((text) => {
    const parsed = parseIpRanges(text) ?? [];
    return parsed.flatMap((range) => {
      const mapped = range.family === 'ipv6' && range.prefix >= 96 ? plainIp(range.address) : range.address;
      return mapped !== range.address ? [range, { family: 'ipv4' as const, address: mapped, prefix: range.prefix - 96 }] : [range];
    });
  });
}

/**
 * How a list reads the client address. Depth 0: `context.clientIp`, which the forwarded
 * middleware set by the trusted-proxy rule. Depth N: the N-th X-Forwarded-For entry from the
 * right (Traefik's `ipStrategy.depth`), believed only when the peer is a trusted proxy; undefined
 * when the chain is shorter than N or that entry is not an address (one with a port is, as in
 * `clientFromChain`; an empty one is not, and counts as an entry), so a list fails closed.
 */
export function clientAddress(settings: Pick<IpFilterSettings, 'depth' | 'trustedProxies'>): (context: GatewayContext) => string | undefined {
  if (settings.depth === 0) return (context) => plainIp(context.clientIp);
  const isTrusted = ipRangeMatcher(ranges(settings.trustedProxies));
  return (context) => {
    const peer = plainIp(context.request.socket.remoteAddress ?? '');
    if (!isTrusted(peer)) return peer;
    const raw = context.request.headers['x-forwarded-for'];
    // An empty entry keeps its place, as in `clientFromChain`: dropped, it would move the N-th entry
    // one to the left, past a hop of a trusted proxy into what the client wrote. Read there, it is no address.
    const hops = (Array.isArray(raw) ? raw.join(',') : (raw ?? '')).split(',');
    const hop = hops[hops.length - settings.depth];
    return hop === undefined ? undefined : forwardedForAddress(hop);
  };
}
