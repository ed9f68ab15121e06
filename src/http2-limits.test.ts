import { describe, expect, it } from 'vitest';
import { headerListSize, isLargeHead, outgoingHeaderList, requestHeaderBlockBound, SEND_HEADER_BLOCK_LENGTH } from './http2-limits.ts';

describe('request head sizes as RFC 7541 counts them', () => {
  it('counts each field as its name and value plus 32, received or to be sent alike', () => {
    expect(headerListSize([':path', '/', 'x-a', 'bc'])).toBe(5 + 1 + 32 + 3 + 2 + 32);
    expect(outgoingHeaderList({ ':path': '/', 'x-a': 'bc' })).toEqual({ fields: 2, size: 5 + 1 + 32 + 3 + 2 + 32 });
  });

  it('counts an array value as a field per element, a number as its digits, and skips an undefined value', () => {
    expect(outgoingHeaderList({ cookie: ['a=1', 'b=2'], 'content-length': 12, absent: undefined })).toEqual({ fields: 3, size: 2 * (6 + 3 + 32) + (14 + 2 + 32) });
  });

  it.each([
    { fields: 128, size: 16_384, large: false },
    { fields: 129, size: 5_000, large: true },
    { fields: 10, size: 16_385, large: true },
  ])('holds a head of $fields fields and $size bytes large: $large', ({ fields, size, large }) => {
    expect(isLargeHead({ fields, size })).toBe(large);
  });

  // Measured with node 20's and node 24's node:http2 (the same on both): the largest names and values (in all) it still sent as a request head of 5, 105 and 1,005 fields.
  it.each([
    { fields: 5, namesAndValues: 65_459 },
    { fields: 105, namesAndValues: 64_259 },
    { fields: 1_005, namesAndValues: 53_459 },
  ])('bounds a head of $fields fields as nghttp2 does before sending it: $namesAndValues bytes of names and values fit, one more does not', ({ fields, namesAndValues }) => {
    const head = (bytes: number) => ({ fields, size: bytes + 32 * fields });
    expect(requestHeaderBlockBound(head(namesAndValues))).toBe(SEND_HEADER_BLOCK_LENGTH);
    expect(requestHeaderBlockBound(head(namesAndValues + 1))).toBeGreaterThan(SEND_HEADER_BLOCK_LENGTH);
  });
});
