import { forwardedForAddress, ipRangeMatcher, parseIpRanges, plainIp } from '../../config/ip-range.ts';
import type { GatewayContext, Middleware } from '../../context.ts';

/** Settings of the forwarded middleware. */
export interface ForwardedOptions {
  /** Peers whose X-Forwarded-* headers are believed: IPs, CIDRs, `loopback`, `private`. None by default. */
  readonly trustedProxies?: readonly string[];
}

/**
 * Sets the forwarding headers upstream and `context.clientIp`. A direct peer that is not a
 * trusted proxy speaks for nobody: its X-Forwarded-* and Forwarded headers are dropped, the
 * client is the peer, and X-Forwarded-For becomes the peer alone. From a trusted proxy the
 * incoming X-Forwarded-For is kept with the peer appended, and the client is the right-most
 * address that is not a trusted proxy (an entry may carry a port, `203.0.113.7:5678` or
 * `[2001:db8::1]:443`, as some proxies write it; one that is not an IP ends the walk: the hop that
 * reported it is taken as the client). X-Forwarded-Proto and -Host are kept from a trusted proxy
 * and otherwise set from this connection; X-Real-IP is always the client.
 */
export function forwarded(options: ForwardedOptions = {}): Middleware {
  const apply = forwardingStep(options);
  return async function forwarded(context, next) {
    apply(context);
    await next();
  };
}

/** What `forwarded` does before the inner layers, as a plain step (the request runner calls it without a middleware frame). */
export function forwardingStep(options: ForwardedOptions = {}): (context: GatewayContext) => void {
  const texts = options.trustedProxies ?? [];
  const ranges = texts.flatMap((text) => {
    const parsed = parseIpRanges(text);
    if (!parsed) throw new Error(`forwarded: "${text}" is not an IP address or CIDR`);
    return parsed;
  });
  const isTrusted = ipRangeMatcher(ranges);
  return (context) => {
    const { request } = context;
    const headers = context.upstream.headers;
    const peer = plainIp(request.socket.remoteAddress ?? '');
    const fromTrusted = ranges.length > 0 && isTrusted(peer);
    if (fromTrusted) {
      const incoming = headerText(headers['x-forwarded-for']);
      context.clientIp = incoming ? clientFromChain(incoming, peer, isTrusted) : peer;
      headers['x-forwarded-for'] = incoming ? `${incoming}, ${peer}` : peer;
    } else {
      // Deleting only what is there keeps the headers object out of V8's slow dictionary mode.
      for (const name of UNTRUSTED_FORWARDING_HEADERS) if (headers[name] !== undefined) delete headers[name];
      context.clientIp = peer;
      headers['x-forwarded-for'] = peer;
    }
    if (!fromTrusted || headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = context.secure ? 'https' : 'http';
    if ((!fromTrusted || headers['x-forwarded-host'] === undefined) && request.headers.host !== undefined) headers['x-forwarded-host'] = request.headers.host;
    headers[REAL_IP_HEADER] = context.clientIp;
  };
}

/** The header naming the client upstream, whoever the peer: `context.clientIp`. */
export const REAL_IP_HEADER = 'x-real-ip';

/**
 * Forwarding headers an untrusted client may not set: the de-facto X-Forwarded-* family (Traefik's
 * list, which also has `-Uri`, `-Method` and the client certificate's, which auth services and apps
 * behind a proxy believe) and RFC 7239 Forwarded.
 */
export const UNTRUSTED_FORWARDING_HEADERS: readonly string[] = [
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-ssl',
  'x-forwarded-scheme',
  'x-forwarded-uri',
  'x-forwarded-method',
  'x-forwarded-tls-client-cert',
  'x-forwarded-tls-client-cert-info',
  'forwarded',
];

/** The client of an X-Forwarded-For chain that ends at `peer`: right to left, the first hop that is not trusted. */
export function clientFromChain(chain: string, peer: string, isTrusted: (address: string) => boolean): string {
  let client = peer;
  const hops = chain.split(',');
  for (let index = hops.length - 1; index >= 0; index -= 1) {
    const hop = forwardedForAddress(hops[index]!);
    if (hop === undefined) return client;
    client = hop;
    if (!isTrusted(hop)) return hop;
  }
  return client;
}

function headerText(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text?.trim() || undefined;
}
