import { describe, expect, it } from 'vitest';
import { listingDigest } from './store-digest.ts';

describe('listingDigest', () => {
  it('is the same for the same objects, in whatever order they were listed', () => {
    const a = new Map([['/sb/routes/a', '{"path":"/a"}'], ['/sb/services/s', '{}']]);
    const b = new Map([['/sb/services/s', '{}'], ['/sb/routes/a', '{"path":"/a"}']]);
    expect(listingDigest(a)).toBe(listingDigest(b));
  });

  it.each([
    ['a changed value', new Map([['/sb/routes/a', '{"path":"/b"}']])],
    ['an extra object', new Map([['/sb/routes/a', '{"path":"/a"}'], ['/sb/routes/b', '{}']])],
    ['no objects', new Map<string, string>()],
    ['the same text split elsewhere between key and value', new Map([['/sb/routes/a{', '"path":"/a"}']])],
  ])('differs for %s', (_case, other) => {
    expect(listingDigest(other)).not.toBe(listingDigest(new Map([['/sb/routes/a', '{"path":"/a"}']])));
  });
});
