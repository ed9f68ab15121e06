import { describe, expect, it } from 'vitest';
import { hasDotSegment } from '../../router/path-normalise.ts';
import { rewritePath } from './index.ts';
import { replacementDotSegment } from './replacement-dot-segment.ts';

/** Paths to try each rewrite on: every one a rewrite below changes must come out with a dot segment. */
const PATHS = ['/', '/x', '/x.y', '/ax', '/old/', '/old/x', '/reports/admin', '/v2', '/123', '/a', '/b', '/|', '/a|b', '/search', '/api/report.json', '/api/...json'];

describe('replacementDotSegment', () => {
  it.each([
    ['^/old/', '/a/../b/', '..'],
    ['^/reports/(.*)$', '/data/%2E%2E/$1', '%2E%2E'],
    ['^/old/', '/data/.%2e/', '.%2e'],
    ['x', '/./', '.'],
    ['^/x$', '..', '..'],
    ['^/x$', '/a/..', '..'],
    ['^/(\\w+)$', '$1/./', '.'],
    ['^/x', '../y', '..'],
    ['^/search$', '/find/..?q=1', '..'],
    ['^/v(\\d+)$', '/$$/../$1', '..'],
    ['^/(?<id>\\d+)$', '/$<id>/../x', '..'],
    // A group name the pattern lacks is replaced by nothing when it names any group.
    ['^/(?<id>x)$', '/a$<id?>/..', '..'],
    ['^/x$', '/$&/../', '..'],
    ['^/(a|b)$', '..', '..'],
    ['^/[|]$', '.', '.'],
    ['^/a\\|b$', '/c/.', '.'],
  ])('finds that %s → %j makes the segment %j in every path it changes', (pattern, replacement, segment) => {
    expect(replacementDotSegment(pattern, replacement)).toBe(segment);
    // The claim checked against the rewrite itself: whatever it changes, it changes into a dot segment.
    const changed = PATHS.map((path) => [path, rewritePath(path, new RegExp(pattern), replacement)]).filter(([path, rewritten]) => rewritten !== path);
    expect(changed.length).toBeGreaterThan(0);
    for (const [path, rewritten] of changed) expect(hasDotSegment(rewritten!), `${path} → ${rewritten}`).toBe(true);
  });

  it.each([
    // What the groups hold decides: /api/...json makes /data/../public, the others do not.
    ['^/api/([^/]+)\\.json$', '/data/$1/public', '/api/report.json', '/data/report/public'],
    // The path's text after the match joins the last segment, before the match the first.
    ['^/x', '/a/..', '/x.y', '/a/...y'],
    ['x', '../y', '/ax', '/a../y'],
    ['^/x', '/a/.$1/', '/x', '/a/.$1/'],
    // A query's text, three dots and dots beside other text are no dot segment.
    ['^/x$', '/find?q=/../', '/x', '/find?q=/../'],
    ['^/x$', '/.../', '/x', '/.../'],
    ['^/x$', '/a.%2E./', '/x', '/a.%2E./'],
    ['^/x$', '/$$./', '/x', '/$./'],
    ['^/(\\w+)$', '/$1../', '/v2', '/v2../'],
    // Without named groups `$<` is text, and the `?` inside it starts the query.
    ['^/x$', '/a$<id?>/..', '/x', '/a$<id?>/..'],
  ])('leaves %s → %j to the per-request check: %s becomes %s', (pattern, replacement, path, rewritten) => {
    expect(replacementDotSegment(pattern, replacement)).toBeUndefined();
    expect(rewritePath(path, new RegExp(pattern), replacement)).toBe(rewritten);
    expect(hasDotSegment(rewritten)).toBe(false);
  });

  it('takes the path around the match as unknown when the pattern has a top-level alternative, though each here is anchored', () => {
    // Every path it changes becomes /c/.., but proving that would mean reading the regex: the request is refused instead.
    expect(replacementDotSegment('^/a$|^/b$', '/c/..')).toBeUndefined();
    expect(replacementDotSegment('^/(a$|b$)', '/c/..')).toBeUndefined();
  });
});
