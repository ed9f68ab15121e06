import { describe, expect, it } from 'vitest';
import { encodeGoMicroService, goMicroNodeKey } from './go-micro-registry.ts';

describe('the go-micro registry writer used by the layout tests', () => {
  it('derives keys as go-micro nodePath does: "/" in names becomes "-", path.Join cleans slashes', () => {
    expect(goMicroNodeKey('greeter', 'greeter-1')).toBe('/micro/registry/greeter/greeter-1');
    expect(goMicroNodeKey('go.micro/api', 'a/b')).toBe('/micro/registry/go.micro-api/a-b');
    expect(goMicroNodeKey('greeter', 'n1', '/micro-registry')).toBe('/micro-registry/greeter/n1');
  });

  it('encodes as Go json.Marshal does: declaration order, null for nil, HTML-safe escapes', () => {
    const text = encodeGoMicroService({
      nodes: [{ metadata: { q: 'a<b>&c' }, address: '10.0.0.1:80', id: 'n1' }],
      endpoints: null,
      metadata: null,
      version: 'v1',
      name: 'greeter',
    } as never);
    expect(text).toBe('{"name":"greeter","version":"v1","metadata":null,"endpoints":null,"nodes":[{"id":"n1","address":"10.0.0.1:80","metadata":{"q":"a\\u003cb\\u003e\\u0026c"}}]}');
  });
});
