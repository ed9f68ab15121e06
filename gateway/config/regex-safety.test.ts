import { describe, expect, it } from 'vitest';
import { regexBacktrackingRisk } from './regex-safety.ts';

describe('regexBacktrackingRisk', () => {
  it.each([
    String.raw`^/api/v[0-9]+/(.*)$`,
    String.raw`^/static/.*\.(css|js)$`,
    String.raw`^/users/(?<id>\d+)$`,
    String.raw`^/(en|de|fr)(/.*)?$`,
    String.raw`^/(?:[a-z0-9-]+/)*item$`,
    String.raw`^/api/v1/(users|orders)(/[0-9a-f-]{36})?$`,
    String.raw`^/a/([^/]+)/b/([^/]+)$`,
    String.raw`^/(?!admin).*`,
    String.raw`(?<=/)v1`,
    String.raw`\.php$`,
    String.raw`^/v(\d+)/items/(\w+)$`,
  ])('finds nothing in the common route pattern %s', (source) => {
    expect(regexBacktrackingRisk(source)).toBeUndefined();
  });

  it.each([
    [String.raw`^/(a+)+$`, 'exponential time', '(a+)+'],
    [String.raw`^/(\w+\s?)*$`, 'exponential time', '(\\w+\\s?)*'],
    [String.raw`^/([a-z0-9-]+)+/x$`, 'exponential time', '([a-z0-9-]+)+'],
    [String.raw`^/.*a.*a.*b$`, 'polynomial time', '.*'],
    [String.raw`^/(.*)\.(.*)$`, 'polynomial time', '[^/]*'],
    [String.raw`/+$`, 'quadratic time', 'anchor it'],
  ])('refuses %s, saying why', (source, complexity, hint) => {
    const risk = regexBacktrackingRisk(source);
    expect(risk).toContain(complexity);
    expect(risk).toContain(hint);
  });

  it('leaves a pattern that does not compile to the syntax check', () => {
    expect(regexBacktrackingRisk('(')).toBeUndefined();
  });
});
