import { createHash } from 'node:crypto';
import { CREDENTIAL_HEADER } from './credential-header.ts';
import type { RouteInput } from './schema-route.ts';

/** Longest derived name; longer matches (a long regex) keep their start and a digest of the whole. */
const MAX_DERIVED_NAME_LENGTH = 128;

/**
 * The name of every route: its own `name`, or one derived from what it matches, so that adding,
 * removing or moving other routes leaves it alone (its breaker, `key: route` buckets, metrics
 * and flow series follow it). Routes of identical matches are told apart by their order among
 * themselves (`#2`, `#3`), and a derived name never takes one a route was given.
 */
export function routeNames(routes: readonly RouteInput[]): string[] {
  const taken = new Set<string>();
  for (const route of routes) if (route.name !== undefined) taken.add(route.name);
  const lastOf = new Map<string, number>();
  return routes.map((route) => {
    if (route.name !== undefined) return route.name;
    const base = matchName(route);
    let count = lastOf.get(base) ?? 0;
    let name: string;
    do {
      count += 1;
      name = count === 1 ? base : `${base}#${count}`;
    } while (taken.has(name));
    lastOf.set(base, count);
    taken.add(name);
    return name;
  });
}

/**
 * What a route matches, in one line: `GET,HEAD api.example.com/api {x-env}~1a2b3c @web`. Methods,
 * header names and entry points are sorted (their order does not change the match); header values
 * appear only as a digest, so that a value matched on stays out of logs and metrics labels. The
 * values of credential headers stay out of the digest too: 6 hex digits of an unsalted SHA-256
 * would let a short secret be found by trying values; routes that differ only there get `#n`.
 */
export function matchName(route: RouteInput): string {
  const path = route.grpcService !== undefined ? `/${route.grpcService}` : route.path;
  const target = path ?? (route.pathRegex !== undefined ? `~${route.pathRegex}` : '/');
  const parts: string[] = [];
  if (route.methods) parts.push([...new Set(route.methods)].sort().join(','));
  parts.push(route.host === undefined ? target : path !== undefined || route.pathRegex === undefined ? `${route.host}${target}` : `${route.host} ${target}`);
  if (route.headers && Object.keys(route.headers).length > 0) {
    const entries = Object.entries(route.headers)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => [name, CREDENTIAL_HEADER.test(name.toLowerCase()) ? null : value] as const);
    parts.push(`{${entries.map(([name]) => name).join(',')}}~${digest(JSON.stringify(entries)).slice(0, 6)}`);
  }
  if (route.entryPoints) parts.push(`@${[...new Set(route.entryPoints)].sort().join(',')}`);
  const name = parts.join(' ');
  return name.length <= MAX_DERIVED_NAME_LENGTH ? name : `${name.slice(0, MAX_DERIVED_NAME_LENGTH - 12)}…#${digest(name).slice(0, 10)}`;
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
