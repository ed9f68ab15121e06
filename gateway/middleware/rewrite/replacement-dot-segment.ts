import { hasDotSegment } from '../../router/path-normalise.ts';

/** A piece of a replacement: text written as is (`$$` read as `$`), or null for a substitution (`$1`, `$<name>`, `$&`, `` $` ``, `$'`). */
type ReplacementPiece = string | null;

/**
 * The `.` or `..` segment, as written (`..`, `%2E%2E`…), that `replacement` puts into every path
 * the rewrite `patternSource` changes, whatever the request's text; undefined when none does.
 * Such a rewrite can serve no request it changes: each is refused with 400
 * `rewritten-dot-segment` (see `rewrite`), so the configuration can refuse it when it loads.
 *
 * Only what holds for every request counts, so a rewrite reported here would be refused by every
 * request, and one that is not keeps its per-request check:
 * - the segment lies inside one run of the replacement's own text, with no substitution in it
 *   (a group's text could hold anything, a `/` included);
 * - it is bounded on both sides inside that run by `/`, or ended by a `?` (the replacement's own
 *   query: nothing before it can hold a `?`, as the rewrite runs on the path without its query),
 *   and not after that `?`;
 * - the replacement's start counts as a segment's start only when the pattern is anchored with `^`
 *   and has no top-level `|` (the match starts the path, and the rewrite adds a leading `/` to a
 *   path without one), its end as a segment's end only when the pattern ends with `$` and has no
 *   top-level `|` (the match ends the path): otherwise the path's text around the match joins it.
 * So `/a/../b` and `/data/%2E%2E/$1` always make one, as `..` with `^/x$` does (the path `/..`);
 * `/data/$1/public` (a group of `..`) and `/a/..` with `^/x` (a path `/x.y` gives `/a/...y`) only
 * might. A substitution that String.prototype.replace would leave as text (`$9` without a ninth
 * group, `$<` without a `>`) is taken as one: that can only miss a segment, never invent one;
 * but `$<` is read as text when the pattern names no group, as the text up to its `>` may hold
 * the `?` that starts the query. Patterns are compiled without flags, as the configuration compiles them.
 */
export function replacementDotSegment(patternSource: string, replacement: string): string | undefined {
  const anchors = patternAnchors(patternSource);
  const pieces = replacementPieces(replacement, hasNamedGroups(patternSource));
  for (let index = 0; index < pieces.length; index += 1) {
    const piece = pieces[index];
    if (piece === null || piece === undefined) continue;
    const query = piece.indexOf('?');
    const text = query === -1 ? piece : piece.slice(0, query);
    const segments = text.split('/');
    const startKnown = index === 0 && anchors.start;
    const endKnown = query !== -1 || (index === pieces.length - 1 && anchors.end);
    for (let segment = startKnown ? 0 : 1; segment < segments.length; segment += 1) {
      if (segment === segments.length - 1 && !endKnown) break;
      const written = segments[segment]!;
      // One rule for what a dot segment is: the one the rewrite applies to its output.
      if (hasDotSegment(`/${written}`)) return written;
    }
    if (query !== -1) return undefined;
  }
  return undefined;
}

/**
 * Whether the flagless regex `source` has a named group. Without one, String.prototype.replace
 * writes `$<` as text, so `$<a?b>` is no substitution: its `?` starts the query, and a segment
 * after it is no segment of the path.
 */
function hasNamedGroups(source: string): boolean {
  // The empty alternative always matches; `groups` is an object exactly when the regex names a group.
  return new RegExp(`(?:${source})|`).exec('')?.groups !== undefined;
}

/** `replacement` split into its own text and its substitutions, as String.prototype.replace reads it (`namedGroups`: whether the pattern has any). */
function replacementPieces(replacement: string, namedGroups: boolean): ReplacementPiece[] {
  const pieces: ReplacementPiece[] = [];
  let text = '';
  for (let index = 0; index < replacement.length; index += 1) {
    const char = replacement[index]!;
    const next = replacement[index + 1];
    if (char !== '$' || next === undefined) {
      text += char;
    } else if (next === '$') {
      text += '$';
      index += 1;
    } else if (next === '&' || next === '`' || next === "'" || (next === '<' && namedGroups) || (next >= '0' && next <= '9')) {
      pieces.push(text, null);
      text = '';
      index += 1;
      // `$nn` is one substitution, `$<name>` one up to its `>` (a `$<` without one is text to
      // String.prototype.replace, taken as a substitution here: see the JSDoc above).
      if (next === '<') {
        const close = replacement.indexOf('>', index);
        if (close !== -1) index = close;
      } else if (next >= '0' && next <= '9' && /\d/.test(replacement[index + 1] ?? '')) {
        index += 1;
      }
    } else {
      text += char;
    }
  }
  pieces.push(text);
  return pieces;
}

/** Whether every match of the flagless regex `source` starts at the path's start (`^…`, no top-level `|`) and ends at its end (`…$`). */
function patternAnchors(source: string): { readonly start: boolean; readonly end: boolean } {
  let depth = 0;
  let alternation = false;
  let endsWithDollar = false;
  for (let index = 0; index < source.length; index += 1) {
    const char = source[index]!;
    endsWithDollar = false;
    if (char === '\\') {
      index += 1;
    } else if (char === '[') {
      // A class runs to its first unescaped `]` (`[]` is an empty class in JavaScript).
      for (index += 1; index < source.length && source[index] !== ']'; index += 1) if (source[index] === '\\') index += 1;
    } else if (char === '(') {
      depth += 1;
    } else if (char === ')') {
      depth -= 1;
    } else if (char === '|' && depth === 0) {
      alternation = true;
    } else if (char === '$') {
      endsWithDollar = depth === 0;
    }
  }
  return { start: !alternation && source.startsWith('^'), end: !alternation && endsWithDollar };
}
