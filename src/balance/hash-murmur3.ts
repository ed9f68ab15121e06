const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/**
 * MurmurHash3 x86_32 (Austin Appleby, public domain) of the UTF-16LE encoding of `text`, as an
 * unsigned 32-bit integer. Reading two code units per block avoids encoding the string first; the
 * result equals the reference implementation run over `Buffer.from(text, 'utf16le')`.
 */
export function murmur3(text: string, seed = 0): number {
  const length = text.length;
  let hash = seed | 0;
  let index = 0;
  for (; index + 1 < length; index += 2) {
    let block = (text.charCodeAt(index) & 0xffff) | ((text.charCodeAt(index + 1) & 0xffff) << 16);
    block = Math.imul(block, C1);
    block = (block << 15) | (block >>> 17);
    block = Math.imul(block, C2);
    hash ^= block;
    hash = (hash << 13) | (hash >>> 19);
    hash = (Math.imul(hash, 5) + 0xe6546b64) | 0;
  }
  if (index < length) {
    let tail = text.charCodeAt(index) & 0xffff;
    tail = Math.imul(tail, C1);
    tail = (tail << 15) | (tail >>> 17);
    tail = Math.imul(tail, C2);
    hash ^= tail;
  }
  hash ^= length * 2;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
