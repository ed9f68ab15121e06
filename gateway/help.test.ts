import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from './config-store/store-layout.ts';
import { GATEWAY_HELP } from './help.ts';

describe('switchboard --help', () => {
  it('names every kind of object switchboard config reads and writes', () => {
    const kinds = /kinds: ([a-z, ]+)\./.exec(GATEWAY_HELP.replace(/\s+/g, ' '))?.[1]?.split(', ');
    expect([...(kinds ?? [])].sort()).toEqual([...STORE_KINDS].sort());
  });
});
