import { createHash } from 'node:crypto';
import type { Member } from './balancer-member.ts';
import { peekedEndpoint, type PickContext, type PickResult, type Picker } from './picker.ts';

/** Hex characters of a sticky id: 64 bits of SHA-256, as Traefik keeps a short hash of the server. */
const STICKY_ID_HEX_CHARS = 16;

/** Past this many remembered ids the cache starts afresh; a service's addresses are far fewer. */
const STICKY_ID_CACHE_MAX_ENTRIES = 10_000;

const cache = new Map<string, string>();

/**
 * The opaque id a sticky cookie names `address` by, for the service salted `salt`: the first 64 bits
 * of SHA-256 over both, in hex. Stable across processes and restarts (workers of one gateway, and
 * gateways behind one load balancer, read each other's cookies), and it never shows the address.
 */
export function stickyId(salt: string, address: string): string {
  const key = `${salt}\n${address}`;
  let id = cache.get(key);
  if (id === undefined) {
    id = createHash('sha256').update(key).digest('hex').slice(0, STICKY_ID_HEX_CHARS);
    if (cache.size >= STICKY_ID_CACHE_MAX_ENTRIES) cache.clear();
    cache.set(key, id);
  }
  return id;
}

/**
 * `inner` with sticky sessions: a pick whose `context.sticky` names (by `stickyId`) one of
 * `eligible` that is healthy (not routable by panic alone) takes that member through `attempt`,
 * counted as any pick; a retry's pick (`tried` holds it), an id of no such member, or none, goes
 * to `inner`. Made only for balancers with a
 * sticky salt, so a service without sticky sessions picks as before.
 */
export function stickyPicker<M extends Member>(inner: Picker, eligible: readonly M[], salt: string, attempt: (member: M) => PickResult): Picker {
  const byId = new Map<string, M>();
  for (const member of eligible) if (member.healthy) byId.set(stickyId(salt, member.address), member);
  const named = (context: PickContext): M | undefined => {
    if (context.sticky === undefined) return undefined;
    const member = byId.get(context.sticky);
    return member === undefined || context.tried?.includes(member.address) === true ? undefined : member;
  };
  return {
    pick(context) {
      const member = named(context);
      return member === undefined ? inner.pick(context) : attempt(member);
    },
    peek(context) {
      const member = named(context);
      return member === undefined ? inner.peek(context) : peekedEndpoint(member);
    },
  };
}
