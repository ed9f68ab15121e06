import { describe, expect, it } from 'vitest';
import { classifyWatchCancel } from './etcd-watch.ts';

describe('classifyWatchCancel', () => {
  it.each([
    ['an empty reason, as etcd 3.4 sends for a compacted start revision', new Error('Watcher canceled: '), 'compacted'],
    ['a reason that names compaction', new Error('Watcher canceled: mvcc: required revision has been compacted'), 'compacted'],
    ['a permission error', new Error('Watcher canceled: etcdserver: permission denied'), 'broken'],
    ['a stream error that is not a cancel', new Error('14 UNAVAILABLE: Connection dropped'), 'broken'],
    ['a thrown value that is not an Error', 'boom', 'broken'],
  ])('classifies %s', (_what, error, expected) => {
    expect(classifyWatchCancel(error)).toBe(expected);
  });
});
