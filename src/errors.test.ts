import { describe, expect, it } from 'vitest';
import { errorMessage } from './errors.ts';

describe('errorMessage', () => {
  it.each([
    {
      case: 'leaves out the empty resolution note grpc-js appends to a refused etcd connection',
      message: '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: ',
      expected: '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379.',
    },
    {
      case: 'leaves out an empty resolution note without a trailing space too',
      message: '14 UNAVAILABLE: No addresses resolved. Resolution note:',
      expected: '14 UNAVAILABLE: No addresses resolved.',
    },
    {
      case: 'keeps a resolution note that says something',
      message: '14 UNAVAILABLE: No addresses resolved. Resolution note: DNS lookup of etcd failed',
      expected: '14 UNAVAILABLE: No addresses resolved. Resolution note: DNS lookup of etcd failed',
    },
    { case: 'keeps any other message as it is', message: '14 UNAVAILABLE: Connection dropped', expected: '14 UNAVAILABLE: Connection dropped' },
  ])('$case', ({ message, expected }) => {
    expect(errorMessage(new Error(message))).toBe(expected);
  });

  it('takes time linear in a long run of whitespace in the message, which a backtracking pattern would take quadratic time over', () => {
    const run = ' '.repeat(200_000);
    const startedAt = performance.now();
    expect(errorMessage(new Error(`quoted:${run}end`))).toBe(`quoted:${run}end`);
    expect(errorMessage(new Error(`14 UNAVAILABLE: x.${run}Resolution note:${run}`))).toBe('14 UNAVAILABLE: x.');
    // About a minute with /\s*Resolution note:\s*$/ (quadratic in the run); milliseconds trimmed.
    expect(performance.now() - startedAt).toBeLessThan(1_000);
  });

  it('reads a thrown value that is not an Error as text', () => {
    expect(errorMessage('14 UNAVAILABLE: x. Resolution note: ')).toBe('14 UNAVAILABLE: x.');
    expect(errorMessage(42)).toBe('42');
  });
});
