import type { IncomingHttpHeaders } from 'node:http';
import { headerHasValue } from '../../src/header-list.ts';
import { HostKind, type CompiledRoute } from './route-compile.ts';
import { regexLiteralPrefix } from './route-regex-prefix.ts';

/** What a route's method and header conditions look at. */
export interface RouteConditions {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
}

/** One node of a group's segment tree: the routes whose prefix (or regex literal prefix) ends at this segment. */
interface PathNode {
  children: Map<string, PathNode> | undefined;
  /** Prefix routes whose prefix is exactly this node's path, in specificity order. */
  readonly prefixRoutes: CompiledRoute[];
  /** Regex routes whose literal prefix covers this node's path, in specificity order. */
  readonly regexRoutes: CompiledRoute[];
}

/** The routes of one host condition (one exact host, one wildcard suffix, or any host). */
interface RouteGroup {
  readonly root: PathNode;
  /** Routes without a path condition (`path: /` or none), in specificity order. */
  readonly catchAll: CompiledRoute[];
}

/**
 * Routes indexed so that a lookup costs the host's labels and the path's segments, not the number
 * of routes: one group per host condition (exact host, wildcard suffix, any), each a segment tree
 * (a radix tree whose edges are whole path segments, since prefixes match by whole segments).
 * Gives the same answer as trying `routes` one after the other in specificity order
 * (`compareSpecificity`), because that order is host first, then path: within the groups a host
 * reaches (exact, then wildcards by longer suffix, then any), regex routes come first, then the
 * deepest prefix node, then catch-alls; methods, headers and file order break ties inside a node.
 * A regex route sits at the node of the whole segments of its literal prefix (`^/files/.*` under
 * `files`), so only regexes whose literal prefix the path has are tested.
 */
export class RouteTable {
  private readonly exact = new Map<string, RouteGroup>();
  private readonly wildcard = new Map<string, RouteGroup>();
  private readonly any: RouteGroup = newGroup();
  /** Nodes visited by the current lookup; reused because a lookup is synchronous and allocates nothing else. */
  private readonly visited: PathNode[] = [];

  /** `routes` must be in specificity order, each with `order` its index there. */
  constructor(routes: readonly CompiledRoute[]) {
    for (const route of routes) {
      const group = this.groupFor(route);
      if (route.regex) nodeAt(group.root, regexSegments(route.regex.source)).regexRoutes.push(route);
      else if (route.prefix !== undefined) nodeAt(group.root, route.prefix.slice(1).split('/')).prefixRoutes.push(route);
      else group.catchAll.push(route);
    }
  }

  /** True when some route has a host condition, so lookups must read the Host. */
  get usesHost(): boolean {
    return this.exact.size > 0 || this.wildcard.size > 0;
  }

  /** The first route in specificity order that matches; `host` normalised, `path` origin-form with its query. */
  match(host: string, path: string, conditions: RouteConditions): CompiledRoute | undefined {
    if (host !== '') {
      const exact = this.exact.get(host);
      const found = exact && this.matchGroup(exact, path, conditions);
      if (found) return found;
      if (this.wildcard.size > 0) {
        // Longest suffix first: the leftmost dot gives the longest `.suffix`.
        for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
          const group = this.wildcard.get(host.slice(dot));
          const inGroup = group && this.matchGroup(group, path, conditions);
          if (inGroup) return inGroup;
        }
      }
    }
    return this.matchGroup(this.any, path, conditions);
  }

  private groupFor(route: CompiledRoute): RouteGroup {
    if (route.hostKind === HostKind.Any) return this.any;
    const groups = route.hostKind === HostKind.Exact ? this.exact : this.wildcard;
    let group = groups.get(route.host);
    if (!group) {
      group = newGroup();
      groups.set(route.host, group);
    }
    return group;
  }

  private matchGroup(group: RouteGroup, path: string, conditions: RouteConditions): CompiledRoute | undefined {
    const visited = this.visited;
    let depth = 0;
    visited[0] = group.root;
    let pathEnd = path.indexOf('?');
    if (pathEnd === -1) pathEnd = path.length;
    let node = group.root;
    let hasRegex = node.regexRoutes.length > 0;
    // Walk down by whole segments as far as the tree goes; `start` is just past a slash.
    for (let start = 1; node.children !== undefined && start <= pathEnd; ) {
      let end = path.indexOf('/', start);
      if (end === -1 || end > pathEnd) end = pathEnd;
      const child = node.children.get(path.slice(start, end));
      if (child === undefined) break;
      node = child;
      visited[++depth] = node;
      hasRegex ||= node.regexRoutes.length > 0;
      if (end === pathEnd) break;
      start = end + 1;
    }
    if (hasRegex) {
      // A regex beats every prefix of its group: the lowest-ranked matching regex over all visited nodes wins.
      const pathname = pathEnd === path.length ? path : path.slice(0, pathEnd);
      let best: CompiledRoute | undefined;
      for (let level = 0; level <= depth; level += 1) {
        for (const route of visited[level]!.regexRoutes) {
          if (best !== undefined && route.order > best.order) break;
          if (meetsConditions(route, conditions) && route.regex!.test(pathname)) {
            best = route;
            break;
          }
        }
      }
      if (best) return best;
    }
    // The deepest node holds the longest prefix; prefixes on one path nest, so depth orders them by length.
    for (let level = depth; level > 0; level -= 1) {
      for (const route of visited[level]!.prefixRoutes) if (meetsConditions(route, conditions)) return route;
    }
    for (const route of group.catchAll) if (meetsConditions(route, conditions)) return route;
    return undefined;
  }
}

/** True when the request meets the route's method and header conditions (`headerHasValue`: a value sent twice or in a list counts); host and path are the table's business. */
export function meetsConditions(route: CompiledRoute, conditions: RouteConditions): boolean {
  if (route.methods && !route.methods.has(conditions.method)) return false;
  for (const [name, value] of route.headers) if (!headerHasValue(conditions.headers[name], value)) return false;
  return true;
}

function newGroup(): RouteGroup {
  return { root: newNode(), catchAll: [] };
}

function newNode(): PathNode {
  return { children: undefined, prefixRoutes: [], regexRoutes: [] };
}

function nodeAt(root: PathNode, segments: readonly string[]): PathNode {
  let node = root;
  for (const segment of segments) {
    node.children ??= new Map();
    let child = node.children.get(segment);
    if (!child) {
      child = newNode();
      node.children.set(segment, child);
    }
    node = child;
  }
  return node;
}

/** The whole segments a path must start with for the regex to match it: `^/files/v1/x.*` → files, v1. */
function regexSegments(source: string): string[] {
  const literal = regexLiteralPrefix(source);
  const lastSlash = literal.lastIndexOf('/');
  if (literal.charCodeAt(0) !== 47 || lastSlash <= 0) return [];
  return literal.slice(1, lastSlash).split('/');
}
