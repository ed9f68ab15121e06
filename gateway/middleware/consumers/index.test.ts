import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ConsumerConfig } from '../../config/types.ts';
import { ConsumerKeyIndex } from './index.ts';

const digest = (key: string) => createHash('sha256').update(key).digest('hex');
const consumer = (name: string, keys: string[]): ConsumerConfig => ({ name, keyHashes: keys.map(digest), passwordHashes: [], jwt: [], labels: {}, rateLimit: undefined });

describe('ConsumerKeyIndex', () => {
  it('finds the consumer of a key by its SHA-256 digest, and nobody for an unknown, empty or near-miss key', () => {
    const index = new ConsumerKeyIndex([consumer('alice', ['a-1', 'a-2']), consumer('bob', ['b-1'])]);
    expect(['a-1', 'a-2', 'b-1', 'b-2', '', 'a-1 ', 'A-1'].map((key) => index.find(key)?.name)).toEqual(['alice', 'alice', 'bob', undefined, undefined, undefined, undefined]);
  });
});
