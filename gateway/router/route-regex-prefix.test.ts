import { describe, expect, it } from 'vitest';
import { regexLiteralPrefix } from './route-regex-prefix.ts';

describe('regexLiteralPrefix', () => {
  it.each([
    ['^/files/.*\\.json$', '/files/'],
    ['^/api\\/v1\\.2/x', '/api/v1.2/x'],
    ['^/users/[0-9]+$', '/users/'],
    ['^/api/v1?', '/api/v'],
    ['^/api/v1*', '/api/v'],
    ['^/api/v1{2}', '/api/v'],
    ['^/api/v1+', '/api/v1'],
    ['^/a\\d', '/a'],
    ['^/a\\bc', '/a'],
    ['^/(api|users)', ''],
    ['^/api|^/x', ''],
    ['/api', ''],
    ['\\.json$', ''],
    ['^', ''],
    ['^/a(?=b)', '/a'],
  ])('reads %s as starting with %s', (source, literal) => {
    expect(regexLiteralPrefix(source)).toBe(literal);
  });

  it.each([
    ['^/api/v1?', ['/api/v', '/api/v1']],
    ['^/api\\/v1\\.2/x', ['/api/v1.2/x']],
    ['^/users/[0-9]+$', ['/users/7']],
  ])('gives a prefix that every match of %s starts with', (source, matches) => {
    for (const path of matches) {
      expect(new RegExp(source).test(path)).toBe(true);
      expect(path.startsWith(regexLiteralPrefix(source))).toBe(true);
    }
  });
});
