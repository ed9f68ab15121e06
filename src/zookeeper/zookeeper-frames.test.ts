import { describe, expect, it } from 'vitest';
import { ZooKeeperFrameSplitter } from './zookeeper-frames.ts';

/** A frame as the server sends it: length prefix, then `body`. */
function frame(body: string): Buffer {
  const bytes = Buffer.from(body);
  const prefix = Buffer.alloc(4);
  prefix.writeInt32BE(bytes.length, 0);
  return Buffer.concat([prefix, bytes]);
}

const body = (delivered: Buffer) => delivered.subarray(4).toString();

describe('ZooKeeperFrameSplitter', () => {
  it('delivers each frame of a chunk alone, as a view of the chunk rather than a copy', () => {
    const chunk = Buffer.concat(Array.from({ length: 500 }, (_, index) => frame(`reply-${index}`)));
    const delivered: Buffer[] = [];
    new ZooKeeperFrameSplitter().push(chunk, (one) => delivered.push(one) > 0);
    expect(delivered.map(body)).toEqual(Array.from({ length: 500 }, (_, index) => `reply-${index}`));
    // The library copies the rest of the chunk per frame; a view of the one received buffer copies nothing.
    expect(delivered.every((one) => one.buffer === chunk.buffer)).toBe(true);
  });

  it('joins a frame split anywhere, its length prefix included, across several chunks', () => {
    const stream = Buffer.concat([frame('first'), frame('x'.repeat(300)), frame(''), frame('last')]);
    for (const cuts of [[1], [2, 3, 4, 5], [9, 10, 11, 12, 200], [stream.length - 1]]) {
      const splitter = new ZooKeeperFrameSplitter();
      const delivered: string[] = [];
      let start = 0;
      for (const cut of [...cuts, stream.length]) {
        splitter.push(stream.subarray(start, cut), (one) => delivered.push(body(one)) > 0);
        start = cut;
      }
      expect(delivered).toEqual(['first', 'x'.repeat(300), '', 'last']);
    }
  });

  it('drops the rest of a chunk once delivery says the connection is gone, and a reset forgets a partial frame', () => {
    const splitter = new ZooKeeperFrameSplitter();
    const delivered: string[] = [];
    const stream = Buffer.concat([frame('a'), frame('b'), frame('c')]);
    splitter.push(stream, (one) => delivered.push(body(one)) < 1);
    expect(delivered).toEqual(['a']);
    splitter.push(frame('partial').subarray(0, 6), () => true);
    splitter.reset();
    splitter.push(frame('fresh'), (one) => delivered.push(body(one)) > 0);
    expect(delivered).toEqual(['a', 'fresh']);
  });

  it('refuses a negative frame length with a stable code', () => {
    const bad = Buffer.alloc(8);
    bad.writeInt32BE(-5, 0);
    expect(() => new ZooKeeperFrameSplitter().push(bad, () => true)).toThrow(expect.objectContaining({ code: 'SB_ZK_MARSHALLING_ERROR' }));
  });
});
